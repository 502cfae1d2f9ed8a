import {
  comparePositions,
  type EventStore,
  InvalidReadOptionsError,
  type Position,
  type SqlClient,
} from '@muster/event-store';
import {
  evaluate,
  type MissionState,
  type MissionVerdict,
  missionStreamName,
  type PhaseStatus,
  type PhaseVerdict,
} from '@muster/readiness';
import { ProjectionError } from '../errors.js';
import { parseInstant } from '../instants.js';
import { type HistoryEntry, MISSION_STREAM_PREFIX } from './processor.js';
import type { ReadinessProjection, SharedMissionState } from './projection.js';
import {
  foldStream,
  latestSnapshot,
  num,
  snapshotAtOrBeforePosition,
  snapshotKnownBy,
  stateOf,
} from './state-loader.js';
import { HISTORY, MISSIONS, SNAPSHOT_PARTS, SNAPSHOTS, VERDICTS } from './tables.js';

const LIVE_SNAPSHOTS = { snapshots: SNAPSHOTS, parts: SNAPSHOT_PARTS };

export interface MissionSummary {
  missionId: string;
  name: string;
  leadNation: string;
  baseCurrency: string;
  template: string | null;
  /** When the mission was defined, in the world (ISO). */
  definedAt: string;
  /** When the log recorded its definition (ISO). */
  createdAt: string;
  createdPosition: string;
  /** Last stream revision the read model has folded. */
  revision: number;
  lastPosition: string;
  /** The instant the current verdict was evaluated at (ISO). */
  evaluatedAt: string | null;
  /** The next instant at which time alone may change the verdict (ISO). */
  nextChangeAt: string | null;
  policyVersion: number | null;
  statuses: Record<string, PhaseStatus>;
}

export interface MissionPageOptions {
  /** The id the previous page ended with (its `next`). */
  after?: string;
  /** At most this many missions (1 to 1,000; default 100). */
  limit?: number;
  /** Only these missions (a scoped key's); all when absent. */
  only?: readonly string[];
}

export interface MissionPage {
  missions: MissionSummary[];
  /** Pass as `after` for the next page; null when this page is the last. */
  next: string | null;
}

export interface CurrentVerdict {
  missionId: string;
  at: string | null;
  revision: number;
  position: string;
  policyVersion: number | null;
  phases: PhaseVerdict[];
}

export interface HistoryPage {
  missionId: string;
  entries: HistoryEntry[];
  /** Pass as `afterSeq` for the next page; null when this page is the last. */
  nextAfterSeq: number | null;
}

/** A verdict computed for an audit question, with what it was computed from. */
export interface TimeTravelVerdict extends MissionVerdict {
  basis: {
    mode: 'as-of' | 'known-at' | 'at-position';
    /** Last stream revision folded. */
    revision: number;
    position: string | null;
    /** recordedAt of the last event folded (ISO). */
    recordedAt: string | null;
    /** Events folded past the snapshot this answer started from (0: memory or snapshot alone). */
    folded: number;
    snapshotRevision: number | null;
  };
}

export interface ReadinessQueries {
  /**
   * Defined missions in the order the log defined them, a page at a time. Null when `after` is
   * not a defined mission (of `only`, when given): a cursor that names nothing is refused, not
   * answered with the first page.
   */
  listMissions(options?: MissionPageOptions): Promise<MissionPage | null>;
  getMission(missionId: string): Promise<MissionSummary | null>;
  currentVerdict(missionId: string): Promise<CurrentVerdict | null>;
  history(missionId: string, options?: { afterSeq?: number; limit?: number }): Promise<HistoryPage | null>;
  /** World time: the verdict at `instant` from everything the log holds now. */
  verdictAsOf(missionId: string, instant: string): Promise<TimeTravelVerdict | null>;
  /** Record time: the verdict at `instant` from only the events recorded by then. */
  verdictKnownAt(missionId: string, instant: string): Promise<TimeTravelVerdict | null>;
  /**
   * The verdict once the log reached `position`: the mission's events at or before it, evaluated
   * at the recordedAt of the log's last event at or before it (of any stream).
   */
  verdictAtPosition(missionId: string, position: Position): Promise<TimeTravelVerdict | null>;
}

export interface ReadinessQueriesOptions {
  store: EventStore;
  sql: SqlClient;
  /**
   * The readiness projection running in this process, if any: its in-memory states of active
   * missions answer world-time and record-time questions without reading a snapshot.
   */
  projection?: Pick<ReadinessProjection, 'latestState'> & Partial<Pick<ReadinessProjection, 'checkpoints'>>;
  /** Missions whose latest state stays in memory for world-time questions (default 64). */
  cacheSize?: number;
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

function toHistoryEntry(row: Record<string, unknown>): HistoryEntry {
  return {
    missionId: String(row.mission_id),
    seq: Number(row.seq),
    phase: String(row.phase),
    title: String(row.title),
    from: (row.from_status as PhaseStatus | null) ?? null,
    to: (row.to_status as PhaseStatus | null) ?? null,
    occurredAt: Number(row.occurred_at),
    recordedAt: Number(row.recorded_at),
    evaluatedAt: Number(row.evaluated_at),
    cause: row.cause === 'time' ? 'time' : 'event',
    causeEventId: (row.cause_event_id as string | null) ?? null,
    causeEventType: (row.cause_event_type as string | null) ?? null,
    causeRevision: num(row.cause_revision),
    causePosition: (row.cause_position as string | null) ?? null,
    policyVersion: num(row.policy_version),
    unmetBefore: JSON.parse(String(row.unmet_before)),
    unmetAfter: JSON.parse(String(row.unmet_after)),
    changeId: String(row.change_id),
  };
}

interface Latest {
  state: MissionState;
  revision: number;
  position: string | null;
  recordedAt: number | null;
  maxRecordedAt: number | null;
}

export function createReadinessQueries(options: ReadinessQueriesOptions): ReadinessQueries {
  const { store, sql } = options;
  const capacity = options.cacheSize ?? 64;
  const latest = new Map<string, Latest>();

  const remember = (missionId: string, entry: Latest) => {
    latest.delete(missionId);
    latest.set(missionId, entry);
    while (latest.size > capacity) {
      const oldest = latest.keys().next().value;
      if (oldest === undefined) break;
      latest.delete(oldest);
    }
  };

  const summaries = async (where: string, params: unknown[], limit?: number): Promise<MissionSummary[]> => {
    const rows = await sql.query(
      `SELECT * FROM ${MISSIONS} WHERE name IS NOT NULL${where} ORDER BY created_position, mission_id${limit === undefined ? '' : ` LIMIT ${limit}`}`,
      params,
    );
    if (rows.length === 0) return [];
    const ids = rows.map((r) => String(r.mission_id));
    const statusRows = await sql.query(
      `SELECT mission_id, phase, status FROM ${VERDICTS} WHERE mission_id IN (${ids.map((_, i) => `$${i + 1}`).join(', ')}) ORDER BY mission_id, ord`,
      ids,
    );
    const statuses = new Map<string, Record<string, PhaseStatus>>();
    for (const row of statusRows) {
      const id = String(row.mission_id);
      const map = statuses.get(id) ?? {};
      map[String(row.phase)] = row.status as PhaseStatus;
      statuses.set(id, map);
    }
    return rows.map((row) => ({
      missionId: String(row.mission_id),
      name: String(row.name),
      leadNation: String(row.lead_nation),
      baseCurrency: String(row.base_currency),
      template: (row.template as string | null) ?? null,
      definedAt: iso(Number(row.defined_at)) as string,
      createdAt: iso(Number(row.created_recorded_at)) as string,
      createdPosition: String(row.created_position),
      revision: Number(row.revision),
      lastPosition: String(row.last_position),
      evaluatedAt: iso(num(row.evaluated_at)),
      nextChangeAt: iso(num(row.next_change_at)),
      policyVersion: num(row.policy_version),
      statuses: statuses.get(String(row.mission_id)) ?? {},
    }));
  };

  /** The state from every event the stream holds now: memory, else the latest snapshot, plus the tail. */
  const latestState = async (
    missionId: string,
  ): Promise<(Latest & { folded: number; snapshot: number | null }) | null> => {
    const head = await store.streamRevision(missionStreamName(missionId));
    if (head === null) return null;
    const own = latest.get(missionId);
    const shared = options.projection?.latestState(missionId);
    // Whichever is further along: this object's cache or the live projection's memory.
    const cached =
      shared && shared.revision <= head && (!own || shared.revision > own.revision) ? shared : own;
    let base: { state: MissionState; revision: number };
    let snapshot: number | null = null;
    let known: Latest | undefined = cached;
    if (cached && cached.revision <= head) {
      base = { state: cached.state, revision: cached.revision };
    } else {
      const row = await latestSnapshot(sql, LIVE_SNAPSHOTS, missionId, head);
      base = stateOf(row);
      snapshot = row?.revision ?? null;
      known = row
        ? {
            state: base.state,
            revision: row.revision,
            position: row.position,
            recordedAt: row.recordedAt,
            maxRecordedAt: row.maxRecordedAt,
          }
        : undefined;
    }
    const folded = await foldStream(store, missionId, base, { maxRevision: head });
    const known0 = known?.maxRecordedAt ?? null;
    const entry: Latest = {
      state: folded.state,
      revision: folded.revision,
      position: folded.position ?? known?.position ?? null,
      recordedAt: folded.recordedAt ?? known?.recordedAt ?? null,
      maxRecordedAt:
        folded.maxRecordedAt === null
          ? known0
          : known0 === null
            ? folded.maxRecordedAt
            : Math.max(known0, folded.maxRecordedAt),
    };
    remember(missionId, entry);
    return { ...entry, folded: folded.folded, snapshot };
  };

  /** The latest in-memory state of the live projection (in this process) that `fits`. */
  const latestCheckpoint = (
    missionId: string,
    head: number,
    fits: (c: SharedMissionState) => boolean,
  ): (SharedMissionState & { position: string; recordedAt: number; maxRecordedAt: number }) | null => {
    const checkpoints = options.projection?.checkpoints?.(missionId) ?? [];
    for (let i = checkpoints.length - 1; i >= 0; i--) {
      const c = checkpoints[i] as SharedMissionState;
      if (
        c.revision <= head &&
        c.position !== null &&
        c.recordedAt !== null &&
        c.maxRecordedAt !== null &&
        fits(c)
      ) {
        return c as SharedMissionState & { position: string; recordedAt: number; maxRecordedAt: number };
      }
    }
    return null;
  };

  const answer = (
    missionId: string,
    state: MissionState,
    at: number,
    basis: TimeTravelVerdict['basis'],
  ): TimeTravelVerdict | null => {
    if (state.mission === null) return null;
    return { ...evaluate(state, new Date(at).toISOString()), missionId, basis };
  };

  return {
    async listMissions(page = {}) {
      const limit = Math.min(1000, Math.max(1, Math.floor(page.limit ?? 100)));
      const params: unknown[] = [];
      let where = '';
      if (page.only) {
        if (page.only.length === 0 || (page.after !== undefined && !page.only.includes(page.after))) {
          return page.after === undefined ? { missions: [], next: null } : null;
        }
        where += ` AND mission_id IN (${page.only.map((id) => `$${params.push(id)}`).join(', ')})`;
      }
      if (page.after !== undefined) {
        const [start] = await sql.query(
          `SELECT created_position FROM ${MISSIONS} WHERE mission_id = $1 AND name IS NOT NULL`,
          [page.after],
        );
        if (!start) return null;
        const position = `$${params.push(start.created_position)}`;
        const id = `$${params.push(page.after)}`;
        where += ` AND (created_position > ${position} OR (created_position = ${position} AND mission_id > ${id}))`;
      }
      const rows = await summaries(where, params, limit + 1);
      const missions = rows.slice(0, limit);
      return {
        missions,
        next: rows.length > limit ? (missions[missions.length - 1]?.missionId ?? null) : null,
      };
    },

    async getMission(missionId) {
      const [found] = await summaries(' AND mission_id = $1', [missionId]);
      return found ?? null;
    },

    async currentVerdict(missionId) {
      const [row] = await sql.query(`SELECT * FROM ${MISSIONS} WHERE mission_id = $1 AND name IS NOT NULL`, [
        missionId,
      ]);
      if (!row) return null;
      const phases = await sql.query(`SELECT verdict FROM ${VERDICTS} WHERE mission_id = $1 ORDER BY ord`, [
        missionId,
      ]);
      return {
        missionId,
        at: iso(num(row.evaluated_at)),
        revision: Number(row.revision),
        position: String(row.last_position),
        policyVersion: num(row.policy_version),
        phases: phases.map((p) => JSON.parse(String(p.verdict)) as PhaseVerdict),
      };
    },

    async history(missionId, options = {}) {
      const [row] = await sql.query(`SELECT history_seq FROM ${MISSIONS} WHERE mission_id = $1`, [missionId]);
      if (!row) return null;
      const afterSeq = Math.max(0, Math.floor(options.afterSeq ?? 0));
      const limit = Math.min(1000, Math.max(1, Math.floor(options.limit ?? 100)));
      const rows = await sql.query(
        `SELECT * FROM ${HISTORY} WHERE mission_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`,
        [missionId, afterSeq, limit + 1],
      );
      const entries = rows.slice(0, limit).map(toHistoryEntry);
      return {
        missionId,
        entries,
        nextAfterSeq: rows.length > limit ? (entries[entries.length - 1]?.seq ?? null) : null,
      };
    },

    async verdictAsOf(missionId, instant) {
      const at = parseInstant(instant);
      const found = await latestState(missionId);
      if (!found) return null;
      return answer(missionId, found.state, at, {
        mode: 'as-of',
        revision: found.revision,
        position: found.position,
        recordedAt: iso(found.recordedAt),
        folded: found.folded,
        snapshotRevision: found.snapshot,
      });
    },

    async verdictKnownAt(missionId, instant) {
      const at = parseInstant(instant);
      const stream = missionStreamName(missionId);
      const head = await store.streamRevision(stream);
      if (head === null) return null;
      const shared = options.projection?.latestState(missionId);
      const cached = shared?.revision === head ? shared : latest.get(missionId);
      if (cached && cached.revision === head && cached.maxRecordedAt !== null && cached.maxRecordedAt <= at) {
        return answer(missionId, cached.state, at, {
          mode: 'known-at',
          revision: cached.revision,
          position: cached.position,
          recordedAt: iso(cached.recordedAt),
          folded: 0,
          snapshotRevision: null,
        });
      }
      const [row] = await sql.query(
        `SELECT revision, recorded_monotonic FROM ${MISSIONS} WHERE mission_id = $1`,
        [missionId],
      );
      // Where the log's record times never went backwards, the first event after `at` ends the fold.
      const monotonicUpTo = row && Number(row.recorded_monotonic) === 1 ? Number(row.revision) : -1;
      // The live projection's latest in-memory state whose events were all recorded by then, else
      // the latest stored snapshot of that kind.
      const checkpoint = latestCheckpoint(
        missionId,
        head,
        (c) => c.maxRecordedAt !== null && c.maxRecordedAt <= at,
      );
      const stored = checkpoint ? null : await snapshotKnownBy(sql, LIVE_SNAPSHOTS, missionId, at);
      const snapshot = checkpoint ?? stored;
      let last: { revision: number; position: string; recordedAt: string } | null = null;
      const folded = await foldStream(store, missionId, checkpoint ?? stateOf(stored), {
        decide: (event) => {
          if (Date.parse(event.recordedAt) <= at) {
            last = { revision: event.revision, position: event.position, recordedAt: event.recordedAt };
            return 'take';
          }
          return event.revision <= monotonicUpTo ? 'stop' : 'skip';
        },
      });
      const basisLast = last as { revision: number; position: string; recordedAt: string } | null;
      return answer(missionId, folded.state, at, {
        mode: 'known-at',
        revision: basisLast?.revision ?? snapshot?.revision ?? -1,
        position: basisLast?.position ?? snapshot?.position ?? null,
        recordedAt: basisLast?.recordedAt ?? iso(snapshot?.recordedAt ?? null),
        folded: folded.folded,
        snapshotRevision: snapshot?.revision ?? null,
      });
    },

    async verdictAtPosition(missionId, given) {
      const position = canonicalPosition(store, given);
      // A position the log has not reached has no recorded instant yet: answering it from today's
      // log would be contradicted once the log gets there (a mandate expiring in between).
      const logHead = await store.headPosition();
      if (logHead === null || comparePositions(position, logHead) > 0) {
        throw new ProjectionError('invalid-position', {
          value: String(given).slice(0, 60),
          detail: `the log has not reached it (its last position is ${logHead ?? 'none'})`,
        });
      }
      const stream = missionStreamName(missionId);
      const head = await store.streamRevision(stream);
      if (head === null) return null;
      const cached = latest.get(missionId);
      let base: { state: MissionState; revision: number };
      let snapshotRevision: number | null = null;
      let baseLast: { position: string | null; recordedAt: number | null } = {
        position: null,
        recordedAt: null,
      };
      if (cached && cached.position !== null && cached.position <= position && cached.revision <= head) {
        base = { state: cached.state, revision: cached.revision };
        baseLast = { position: cached.position, recordedAt: cached.recordedAt };
      } else {
        const checkpoint = latestCheckpoint(
          missionId,
          head,
          (c) => c.position !== null && c.position <= position,
        );
        const stored = checkpoint
          ? null
          : await snapshotAtOrBeforePosition(sql, LIVE_SNAPSHOTS, missionId, position);
        const snapshot = checkpoint ?? stored;
        base = checkpoint ?? stateOf(stored);
        snapshotRevision = snapshot?.revision ?? null;
        if (snapshot) baseLast = { position: snapshot.position, recordedAt: snapshot.recordedAt };
      }
      const folded = await foldStream(store, missionId, base, {
        decide: (event) => (event.position <= position ? 'take' : 'stop'),
      });
      const lastPosition = folded.position ?? baseLast.position;
      const lastRecordedAt = folded.recordedAt ?? baseLast.recordedAt;
      if (lastPosition === null || lastRecordedAt === null) return null;
      // "Once the log reached the position" is the instant the log's own event there was recorded,
      // which may be long after this mission's last event: a mandate that expired in between has
      // expired in the answer too, as it has for knownAt at that instant.
      let reachedAt = lastRecordedAt;
      for await (const event of store.readAll({
        fromPosition: position,
        direction: 'backwards',
        maxCount: 1,
      })) {
        reachedAt = Math.max(reachedAt, Date.parse(event.recordedAt));
      }
      return answer(missionId, folded.state, reachedAt, {
        mode: 'at-position',
        revision: folded.revision,
        position: lastPosition,
        recordedAt: iso(lastRecordedAt),
        folded: folded.folded,
        snapshotRevision,
      });
    },
  };
}

/**
 * Positions are compared as strings below, which orders only the form the store emits: on SQLite
 * '5' is position 5 but sorts after every emitted '000…0019'.
 */
function canonicalPosition(store: EventStore, position: unknown): Position {
  if (typeof position === 'string' && position.length > 0 && position.length <= 100) {
    try {
      return store.canonicalPosition(position);
    } catch (error) {
      if (!(error instanceof InvalidReadOptionsError)) throw error;
    }
  }
  throw new ProjectionError('invalid-position', { value: String(position).slice(0, 60) });
}

export const isMissionStream = (stream: string): boolean => stream.startsWith(MISSION_STREAM_PREFIX);
