import type { EventStore, RecordedEvent, SqlClient } from '@muster/event-store';
import {
  evaluateStatus,
  type MissionState,
  missionStreamName,
  nextChangeAfter,
  serializeStateParts,
} from '@muster/readiness';
import { appendChanges, changeFeedMigrations } from '../change-feed.js';
import { ProjectionError } from '../errors.js';
import type { Projection, ProjectionContext } from '../projection.js';
import { chunkLength, insertRows, upsertClause } from '../sql-rows.js';
import {
  MissionProcessor,
  type MissionRuntime,
  missionIdOfStream,
  newRuntime,
  newSink,
  type ProcessorSink,
} from './processor.js';
import { foldStream, latestSnapshot, num, stateOf } from './state-loader.js';
import {
  HISTORY,
  HISTORY_COLUMNS,
  MISSION_COLUMNS,
  MISSIONS,
  readinessTables,
  SNAPSHOT_COLUMNS,
  SNAPSHOT_PART_COLUMNS,
  SNAPSHOT_PARTS,
  SNAPSHOTS,
  VERDICT_COLUMNS,
  VERDICTS,
} from './tables.js';

export const READINESS_PROJECTION = 'readiness';
/**
 * Bump when the read models computed from the same log change: the runner then rebuilds them.
 * 2: verdicts count a unit a policy names twice once, and name evidence for a revoked fact and a
 * lapsed mandate (stored verdicts of version 1 would differ from what the audit recomputes).
 */
export const READINESS_PROJECTION_VERSION = 2;

export interface ReadinessProjectionOptions {
  store: EventStore;
  /** Most missions whose folded state stays in memory between batches (default 1,000)... */
  cacheSize?: number;
  /**
   * ...and most events folded into those states together (default 200,000; a state takes about
   * 250-370 bytes of heap per event, and its time-travel checkpoints about 100 more). The least
   * recently used go first; they come back from their
   * latest snapshot and a fold of the events after it.
   */
  cacheEvents?: number;
  /** A snapshot at least this many events after the previous one (default 5,000)... */
  snapshotEvery?: number;
  /**
   * ...and at least this fraction of the stream after it (default 0.5): a snapshot is the size
   * of the whole state, so a long stream keeps about a dozen rather than one per few thousand
   * events, and time travel folds at most a third of the stream past the nearest one.
   */
  snapshotRatio?: number;
  /**
   * A snapshot's text is written in parts of about this many characters (default 256 KiB), so that
   * the state of a long mission (18 MB of JSON at 100,000 events) is never one string in memory.
   */
  snapshotPartChars?: number;
  /** On shutdown, missions with at least this many events since their last snapshot get one (default 50). */
  flushMinEvents?: number;
  /**
   * In a rebuild, snapshots (periodic, and when it finishes) only for missions at least this many
   * events past their last one (default 50,000). A rebuild is a bulk fold whose states become the
   * live generation's at the swap, which then snapshots them at its own cadence; serialising every
   * mission's whole state on the way would cost about as much as the fold itself.
   */
  rebuildSnapshotEvery?: number;
  /**
   * In-memory states kept per mission for time travel in this process: one every this many events
   * (default 2,000)... States share their structure, so each costs only what changed since the one
   * before it.
   */
  checkpointEvery?: number;
  /** ...at most this many per mission (default 64): past that, every other one goes and the spacing doubles. */
  maxCheckpoints?: number;
}

interface CachedMission {
  rt: MissionRuntime;
  /** The evaluation of the verdict the verdict rows hold (`rt.verdictSeq` then). */
  written: number;
  snapshotRevision: number;
  /** Earlier states, oldest first, for time travel (see `checkpointEvery`). */
  checkpoints: SharedMissionState[];
  checkpointSpacing: number;
}

/** Per-context memory: the mission states of one generation of the tables. */
class MissionCache {
  private readonly missions = new Map<string, CachedMission>();
  /**
   * Missions forgotten since the last batch was written, to snapshot in that batch's transaction
   * (see `write`): a state that leaves memory comes back from a snapshot near its end rather than
   * by folding its whole stream again, which for a finished mission that time later touches (the
   * swap of a rebuild advances every mission to the live watermark) is most of it.
   */
  evicted: CachedMission[] = [];

  constructor(
    private readonly capacity: number,
    private readonly maxEvents: number,
  ) {}

  get(missionId: string): CachedMission | undefined {
    const found = this.missions.get(missionId);
    if (found) {
      this.missions.delete(missionId);
      this.missions.set(missionId, found);
    }
    return found;
  }

  /** Remembers a mission, forgetting the least recently used past the limits (never `missionId`). */
  set(missionId: string, entry: CachedMission): void {
    this.missions.delete(missionId);
    this.missions.set(missionId, entry);
    this.trim(new Set([missionId]));
  }

  /**
   * Forgets the least recently used missions until the limits hold again, except those in `keep`.
   * Also called once per batch: missions grow in place as their events are folded, so checking
   * only when one is added let a steady set of busy missions outgrow the limit without end.
   */
  trim(keep: ReadonlySet<string>): void {
    let events = 0;
    for (const e of this.missions.values()) events += e.rt.state.eventCount;
    for (const [id, oldest] of this.missions) {
      if (this.missions.size <= this.capacity && events <= this.maxEvents) break;
      if (keep.has(id)) continue;
      this.missions.delete(id);
      this.evicted.push(oldest);
      events -= oldest.rt.state.eventCount;
    }
  }

  values(): IterableIterator<CachedMission> {
    return this.missions.values();
  }

  /** A look without touching the order. */
  peek(missionId: string): CachedMission | undefined {
    return this.missions.get(missionId);
  }
}

/** A mission's folded state as the live projection holds it in memory (immutable: safe to share). */
export interface SharedMissionState {
  state: MissionState;
  revision: number;
  position: string | null;
  recordedAt: number | null;
  maxRecordedAt: number | null;
}

export interface ReadinessProjection extends Projection {
  /** The live projection's in-memory state of a mission, for queries in the same process. */
  latestState(missionId: string): SharedMissionState | undefined;
  /**
   * The live projection's in-memory states of a mission at earlier revisions (oldest first), then
   * its latest: where time travel in the same process starts its fold.
   */
  checkpoints(missionId: string): readonly SharedMissionState[];
}

const MEMORY_KEY = 'readiness:missions';
/** Missions moved by time per statement (see `advanceTime`). */
const ADVANCE_CHUNK = 16;

export function createReadinessProjection(options: ReadinessProjectionOptions): ReadinessProjection {
  const { store } = options;
  const cacheSize = options.cacheSize ?? 1000;
  const cacheEvents = options.cacheEvents ?? 200_000;
  const snapshotEvery = options.snapshotEvery ?? 5000;
  const snapshotRatio = options.snapshotRatio ?? 0.5;
  const flushMinEvents = options.flushMinEvents ?? 50;
  const rebuildSnapshotEvery = options.rebuildSnapshotEvery ?? 50_000;
  const snapshotPartChars = options.snapshotPartChars ?? 256 * 1024;
  const checkpointEvery = Math.max(1, options.checkpointEvery ?? 2000);
  const maxCheckpoints = Math.max(2, options.maxCheckpoints ?? 64);
  const processor = new MissionProcessor();
  /** The live context the runner attached, whose memory `latestState` reads. */
  let live: ProjectionContext | null = null;

  const cacheOf = (ctx: ProjectionContext): MissionCache => {
    let cache = ctx.memory.get(MEMORY_KEY) as MissionCache | undefined;
    if (!cache) {
      cache = new MissionCache(cacheSize, cacheEvents);
      ctx.memory.set(MEMORY_KEY, cache);
    }
    return cache;
  };

  /**
   * A mission's entry: from memory, else from its row, latest snapshot and the events after it.
   * `keep: false` (time alone moving a mission that is not in memory) leaves memory as it was:
   * such a mission is written and forgotten rather than pushing out the missions events keep
   * busy, which is what a rebuild's swap would otherwise do to them, the largest first.
   */
  const load = async (
    tx: SqlClient,
    ctx: ProjectionContext,
    missionId: string,
    keep = true,
  ): Promise<CachedMission> => {
    const cache = cacheOf(ctx);
    const cached = keep ? cache.get(missionId) : cache.peek(missionId);
    if (cached) return cached;
    const [row] = await tx.query(`SELECT * FROM ${ctx.table(MISSIONS)} WHERE mission_id = $1`, [missionId]);
    let entry: CachedMission;
    if (!row) {
      const rt = newRuntime(missionId);
      entry = {
        rt,
        written: rt.verdictSeq,
        snapshotRevision: -1,
        checkpoints: [],
        checkpointSpacing: checkpointEvery,
      };
    } else {
      const revision = Number(row.revision);
      const snapshot = await latestSnapshot(tx, snapshotTables(ctx), missionId, revision);
      const folded = await foldStream(store, missionId, stateOf(snapshot), { maxRevision: revision });
      const rt = newRuntime(missionId);
      rt.state = folded.state;
      rt.revision = folded.revision;
      rt.position = String(row.last_position);
      rt.lastRecordedAt = Number(row.last_recorded_at);
      rt.maxRecordedAt = Number(row.max_recorded_at);
      rt.maxPledgeAt = num(row.max_pledge_at);
      rt.recordedMonotonic = Number(row.recorded_monotonic) === 1;
      rt.evaluatedAt = num(row.evaluated_at);
      rt.historySeq = Number(row.history_seq);
      rt.skippedEvents = Number(row.skipped_events);
      rt.createdPosition = row.created_position === null ? null : String(row.created_position);
      rt.createdRecordedAt = num(row.created_recorded_at);
      if (rt.evaluatedAt !== null && rt.state.mission !== null) {
        rt.status = evaluateStatus(rt.state, rt.evaluatedAt);
        rt.evaluated(rt.evaluatedAt);
        rt.nextAt = nextChangeAfter(rt.state, rt.evaluatedAt);
      }
      entry = {
        rt,
        written: rt.verdictSeq,
        snapshotRevision: snapshot?.revision ?? -1,
        checkpoints: [],
        checkpointSpacing: checkpointEvery,
      };
    }
    if (keep) cache.set(missionId, entry);
    return entry;
  };

  const snapshotDue = (entry: CachedMission, ctx: ProjectionContext): boolean => {
    const since = entry.rt.revision - entry.snapshotRevision;
    const every = ctx.mode === 'rebuild' ? rebuildSnapshotEvery : snapshotEvery;
    return since >= Math.max(every, Math.floor((entry.snapshotRevision + 1) * snapshotRatio));
  };

  const shared = (rt: MissionRuntime): SharedMissionState => ({
    state: rt.state,
    revision: rt.revision,
    position: rt.position,
    recordedAt: rt.lastRecordedAt,
    maxRecordedAt: rt.maxRecordedAt,
  });

  const checkpoint = (entry: CachedMission): void => {
    const { checkpoints } = entry;
    const last = checkpoints[checkpoints.length - 1];
    if (entry.rt.revision - (last?.revision ?? -1) < entry.checkpointSpacing) return;
    checkpoints.push(shared(entry.rt));
    if (checkpoints.length > maxCheckpoints) {
      entry.checkpoints = checkpoints.filter((_, i) => i % 2 === 1);
      entry.checkpointSpacing *= 2;
    }
  };

  const snapshotTables = (ctx: ProjectionContext) => ({
    snapshots: ctx.table(SNAPSHOTS),
    parts: ctx.table(SNAPSHOT_PARTS),
  });

  // One statement per part, each made just before it is written: a state can weigh megabytes.
  const writeSnapshot = async (tx: SqlClient, ctx: ProjectionContext, rt: MissionRuntime): Promise<void> => {
    const parts = serializeStateParts(rt.state, snapshotPartChars);
    const first = parts.next();
    const row = [rt.missionId, rt.revision, rt.position, rt.lastRecordedAt, rt.maxRecordedAt];
    const added = await tx.execute(
      `INSERT INTO ${ctx.table(SNAPSHOTS)} (${SNAPSHOT_COLUMNS.join(', ')}) VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT DO NOTHING`,
      [...row, first.done ? '' : first.value],
    );
    // Already there: the same revision folds to the same state, parts included.
    if (added === 0) return;
    const replace = upsertClause(['mission_id', 'revision', 'part'], SNAPSHOT_PART_COLUMNS);
    let part = 0;
    for (const text of parts) {
      part++;
      await insertRows(
        tx,
        ctx.table(SNAPSHOT_PARTS),
        SNAPSHOT_PART_COLUMNS,
        [[rt.missionId, rt.revision, part, text]],
        replace,
      );
    }
  };

  /**
   * Moves a mission that left a rebuild's memory to the live watermark, when time will move it
   * there at the swap anyway and its stream holds no event past its state (see `liveWatermark`).
   * True if it moved.
   */
  const advanceEarly = async (
    ctx: ProjectionContext,
    rt: MissionRuntime,
    sink: ProcessorSink,
  ): Promise<boolean> => {
    const until = ctx.liveWatermark?.() ?? null;
    if (until === null || rt.nextAt === null || rt.nextAt > until || rt.status === null) return false;
    if ((await store.streamRevision(missionStreamName(rt.missionId))) !== rt.revision) return false;
    processor.advance(rt, until, sink);
    return true;
  };

  const write = async (
    tx: SqlClient,
    ctx: ProjectionContext,
    touched: Map<string, CachedMission>,
    sink: ProcessorSink,
  ): Promise<void> => {
    const cache = cacheOf(ctx);
    cache.trim(new Set(touched.keys()));
    const evicted = cache.evicted;
    cache.evicted = [];
    let written = touched;
    for (const entry of evicted) {
      const { rt } = entry;
      if (rt.state.mission === null) continue;
      // Only a rebuild moves missions early. The change feed is shared by every generation and
      // unique on (cause position, change id): were the live generation to record time changes
      // past its watermark, a rebuild swapped in (advanced to that watermark only) would record
      // them again, and its batch would fail on the feed's key.
      if (ctx.mode === 'rebuild') {
        // In a rebuild, a mission that left memory (the least recently used: one gone quiet) comes
        // back surely only if time moves it at the swap, to the live watermark just before now.
        // When its stream holds nothing past its state, it is moved to the live watermark now,
        // as the swap would (the same changes in the same order: advancing is incremental), and
        // then mostly needs neither a snapshot now nor a load at the swap.
        if (await advanceEarly(ctx, rt, sink)) {
          if (written === touched) written = new Map(touched);
          written.set(rt.missionId, entry);
        }
        // Other snapshots would mostly go unread; a later event folds from the last one, as before.
        if (rt.nextAt === null || rt.nextAt > ctx.clock().getTime()) continue;
      }
      if (rt.revision - entry.snapshotRevision < flushMinEvents) continue;
      await writeSnapshot(tx, ctx, rt);
      entry.snapshotRevision = rt.revision;
    }
    if (written.size === 0) return;
    const missions: unknown[][] = [];
    const verdictMissions: string[] = [];
    const verdictRows: unknown[][] = [];
    const snapshots: MissionRuntime[] = [];
    for (const entry of written.values()) {
      const { rt } = entry;
      const info = rt.state.mission;
      missions.push([
        rt.missionId,
        info?.name ?? null,
        info?.leadNation ?? null,
        info?.baseCurrency ?? null,
        info?.template ?? null,
        info?.definedAt ?? null,
        rt.createdPosition,
        rt.createdRecordedAt,
        rt.revision,
        rt.position,
        rt.lastRecordedAt,
        rt.maxRecordedAt,
        rt.maxPledgeAt,
        rt.recordedMonotonic ? 1 : 0,
        rt.evaluatedAt,
        rt.nextAt,
        rt.status?.policyVersion ?? null,
        rt.historySeq,
        rt.skippedEvents,
      ]);
      if (rt.verdictSeq !== entry.written) {
        verdictMissions.push(rt.missionId);
        const verdict = rt.verdict;
        verdict?.phases.forEach((phase, ord) => {
          verdictRows.push([
            rt.missionId,
            phase.phase,
            ord,
            phase.title,
            phase.status,
            verdict.policyVersion,
            JSON.stringify(phase),
          ]);
        });
        entry.written = rt.verdictSeq;
      }
      if (snapshotDue(entry, ctx)) {
        snapshots.push(rt);
        entry.snapshotRevision = rt.revision;
      }
    }
    await insertRows(
      tx,
      ctx.table(MISSIONS),
      MISSION_COLUMNS,
      missions,
      upsertClause(['mission_id'], MISSION_COLUMNS),
    );
    if (verdictMissions.length > 0) {
      for (let i = 0; i < verdictMissions.length; ) {
        const ids = verdictMissions.slice(i, i + chunkLength(verdictMissions.length - i, 512));
        i += ids.length;
        await tx.execute(
          `DELETE FROM ${ctx.table(VERDICTS)} WHERE mission_id IN (${ids.map((_, j) => `$${j + 1}`).join(', ')})`,
          ids,
        );
      }
      await insertRows(tx, ctx.table(VERDICTS), VERDICT_COLUMNS, verdictRows);
    }
    if (sink.history.length > 0) {
      await insertRows(
        tx,
        ctx.table(HISTORY),
        HISTORY_COLUMNS,
        sink.history.map((h) => [
          h.missionId,
          h.seq,
          h.phase,
          h.title,
          h.from,
          h.to,
          h.occurredAt,
          h.recordedAt,
          h.evaluatedAt,
          h.cause,
          h.causeEventId,
          h.causeEventType,
          h.causeRevision,
          h.causePosition,
          h.policyVersion,
          JSON.stringify(h.unmetBefore),
          JSON.stringify(h.unmetAfter),
          h.changeId,
        ]),
      );
    }
    for (const rt of snapshots) await writeSnapshot(tx, ctx, rt);
    // A rebuild recomputes history but never replays notifications: the feed is append-only.
    if (ctx.mode === 'live' && sink.changes.length > 0) {
      ctx.publish(await appendChanges(tx, sink.changes));
    }
    for (const skipped of sink.skipped) {
      ctx.logger.warn(
        { ...skipped, projection: READINESS_PROJECTION },
        'event the domain cannot read skipped',
      );
    }
  };

  return {
    name: READINESS_PROJECTION,
    version: READINESS_PROJECTION_VERSION,
    filter: { streamPrefixes: ['mission-'] },
    tables: readinessTables,
    migrations: changeFeedMigrations,

    attach(ctx: ProjectionContext | null): void {
      live = ctx;
    },

    latestState(missionId: string): SharedMissionState | undefined {
      const cache = live?.memory.get(MEMORY_KEY) as MissionCache | undefined;
      const rt = cache?.peek(missionId)?.rt;
      if (!rt || rt.state.mission === null) return undefined;
      return shared(rt);
    },

    checkpoints(missionId: string): readonly SharedMissionState[] {
      const cache = live?.memory.get(MEMORY_KEY) as MissionCache | undefined;
      const entry = cache?.peek(missionId);
      if (!entry || entry.rt.state.mission === null) return [];
      return [...entry.checkpoints, shared(entry.rt)];
    },

    async handle(events: readonly RecordedEvent[], tx: SqlClient, ctx: ProjectionContext): Promise<void> {
      const touched = new Map<string, CachedMission>();
      // A rebuild recomputes history but never replays notifications: no change-feed drafts.
      const sink = newSink({ changes: ctx.mode === 'live' });
      for (const event of events) {
        const missionId = missionIdOfStream(event.stream);
        if (missionId === null) continue;
        const entry = touched.get(missionId) ?? (await load(tx, ctx, missionId));
        touched.set(missionId, entry);
        if (event.revision <= entry.rt.revision) continue;
        if (event.revision !== entry.rt.revision + 1) {
          throw new ProjectionError('revision-gap', {
            missionId,
            expected: entry.rt.revision + 1,
            actual: event.revision,
          });
        }
        processor.apply(entry.rt, event, sink);
        checkpoint(entry);
      }
      await write(tx, ctx, touched, sink);
    },

    async nextDue(sql: SqlClient, ctx: ProjectionContext): Promise<number | null> {
      const [row] = await sql.query(`SELECT MIN(next_change_at) AS due FROM ${ctx.table(MISSIONS)}`);
      return num(row?.due);
    },

    async advanceTime(until: number, tx: SqlClient, ctx: ProjectionContext): Promise<void> {
      const done = new Set<string>();
      for (;;) {
        // A few missions at a time: one that is not in memory is loaded for this and forgotten
        // once written, so the chunk bounds how many such states are alive together (at the end
        // of a long catch-up, every mission's: 200 at a time had tripled the live heap).
        const rows = await tx.query(
          `SELECT mission_id FROM ${ctx.table(MISSIONS)} WHERE next_change_at IS NOT NULL AND next_change_at <= $1
           ORDER BY next_change_at, mission_id LIMIT ${ADVANCE_CHUNK}`,
          [until],
        );
        const fresh = rows.map((row) => String(row.mission_id)).filter((id) => !done.has(id));
        if (fresh.length === 0) return;
        const touched = new Map<string, CachedMission>();
        const sink = newSink({ changes: ctx.mode === 'live' });
        for (const missionId of fresh) {
          done.add(missionId);
          const entry = await load(tx, ctx, missionId, false);
          processor.advance(entry.rt, until, sink);
          touched.set(missionId, entry);
        }
        await write(tx, ctx, touched, sink);
      }
    },

    async flush(tx: SqlClient, ctx: ProjectionContext): Promise<void> {
      const cache = ctx.memory.get(MEMORY_KEY) as MissionCache | undefined;
      if (!cache) return;
      const min = ctx.mode === 'rebuild' ? rebuildSnapshotEvery : flushMinEvents;
      for (const entry of [...cache.values()]) {
        if (entry.rt.revision - entry.snapshotRevision >= min) {
          await writeSnapshot(tx, ctx, entry.rt);
          entry.snapshotRevision = entry.rt.revision;
        }
      }
    },
  };
}
