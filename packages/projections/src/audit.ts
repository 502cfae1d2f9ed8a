import {
  type ChainVerdict,
  ChainVerifier,
  CorruptEventError,
  comparePositions,
  type EventStore,
  type SqlClient,
  type SqlRow,
  StreamNotFoundError,
} from '@muster/event-store';
import { missionStreamName, serializeStateParts } from '@muster/readiness';
import {
  type HistoryEntry,
  MissionProcessor,
  type MissionRuntime,
  newRuntime,
  newSink,
} from './readiness/processor.js';
import { READINESS_PROJECTION } from './readiness/projection.js';
import { createReadinessQueries } from './readiness/queries.js';
import { snapshotTextParts } from './readiness/state-loader.js';
import { MISSION_COLUMNS, MISSIONS, SNAPSHOT_PARTS, SNAPSHOTS, VERDICTS } from './readiness/tables.js';
import { type CheckpointRow, readCheckpoint } from './runner-schema.js';
import { num } from './sql-rows.js';

export type AuditMismatchKind =
  | 'chain'
  | 'position-order'
  | 'unreadable-event'
  | 'mission-missing'
  | 'mission-behind-checkpoint'
  | 'mission-differs'
  | 'history-missing'
  | 'history-extra'
  | 'history-differs'
  | 'verdict-missing'
  | 'verdict-extra'
  | 'verdict-differs'
  | 'snapshot-differs';

export interface AuditMismatch {
  kind: AuditMismatchKind;
  detail: string;
  seq?: number;
  phase?: string;
  revision?: number | null;
  eventId?: string | null;
  fields?: string[];
  expected?: unknown;
  actual?: unknown;
}

export interface AuditReport {
  missionId: string;
  /** No mismatch: the log's chain holds and the read models say what the log says. */
  ok: boolean;
  /** Events in the stream. */
  events: number;
  chain: ChainVerdict;
  /**
   * The projection's checkpoint had not reached the stream's last event, so the read model was
   * compared up to what it had folded. A read model behind its own checkpoint is not this but a
   * `mission-behind-checkpoint` mismatch.
   */
  projectionBehind: boolean;
  comparedUpTo: { revision: number; timeUntil: string | null };
  history: { stored: number; recomputed: number };
  /** Snapshots of the mission stored (live generation), and how many were compared with the fold. */
  snapshots: { stored: number; compared: number };
  mismatches: AuditMismatch[];
}

const MAX_MISMATCHES = 1000;
const LIVE_SNAPSHOTS = { snapshots: SNAPSHOTS, parts: SNAPSHOT_PARTS };
/** The fold's state is made in parts of this many characters to compare with a snapshot's. */
const STATE_PART_CHARS = 256 * 1024;

/**
 * Where two texts, each given in parts of any lengths, first differ (a character offset); -1 when
 * they are equal. Only a part of each is held at a time.
 */
async function firstDifference(ours: Iterable<string>, theirs: AsyncIterable<string>): Promise<number> {
  const mine = ours[Symbol.iterator]();
  let a = '';
  let ai = 0;
  let offset = 0;
  for await (const b of theirs) {
    let bi = 0;
    while (bi < b.length) {
      if (ai === a.length) {
        const next = mine.next();
        if (next.done) return offset;
        a = next.value;
        ai = 0;
        continue;
      }
      const n = Math.min(a.length - ai, b.length - bi);
      if (a.slice(ai, ai + n) !== b.slice(bi, bi + n)) {
        let same = 0;
        while (a.charCodeAt(ai + same) === b.charCodeAt(bi + same)) same++;
        return offset + same;
      }
      ai += n;
      bi += n;
      offset += n;
    }
  }
  if (ai < a.length) return offset;
  for (let next = mine.next(); !next.done; next = mine.next()) if (next.value.length > 0) return offset;
  return -1;
}

const snapshotWithoutFold = (snapshot: StoredSnapshot, why: string): AuditMismatch => ({
  kind: 'snapshot-differs',
  detail: `a snapshot at revision ${snapshot.revision} matches no state of the log's fold: ${why}`,
  revision: snapshot.revision,
});

interface StoredSnapshot {
  revision: number;
  position: unknown;
  recorded_at: unknown;
  max_recorded_at: unknown;
}

/**
 * Compares a stored snapshot with the fold at its revision: its columns, and its text with the
 * state's, part by part (a long mission's state is many megabytes of JSON).
 */
async function snapshotMismatch(
  sql: SqlClient,
  runtime: MissionRuntime,
  snapshot: StoredSnapshot,
): Promise<AuditMismatch | null> {
  const expected = {
    position: runtime.position,
    recorded_at: runtime.lastRecordedAt,
    max_recorded_at: runtime.maxRecordedAt,
  };
  const actual = {
    position: snapshot.position ?? null,
    recorded_at: num(snapshot.recorded_at),
    max_recorded_at: num(snapshot.max_recorded_at),
  };
  const fields = differingFields(expected, actual);
  const at = await firstDifference(
    serializeStateParts(runtime.state, STATE_PART_CHARS),
    snapshotTextParts(sql, LIVE_SNAPSHOTS, runtime.missionId, snapshot.revision),
  );
  if (at >= 0) fields.push('state');
  if (fields.length === 0) return null;
  return {
    kind: 'snapshot-differs',
    detail: `the snapshot at revision ${snapshot.revision} differs from the log's fold in ${fields.join(', ')}${at >= 0 ? ` (its state from character ${at})` : ''}`,
    revision: snapshot.revision,
    fields,
    expected: { ...expected, ...(at >= 0 ? { stateDiffersAt: at } : {}) },
    actual,
  };
}

function differingFields(expected: Record<string, unknown>, actual: Record<string, unknown>): string[] {
  return Object.keys(expected).filter((k) => JSON.stringify(expected[k]) !== JSON.stringify(actual[k]));
}

/** The mission row against the fold: every column, as the projection would have written it. */
function missionRowMismatch(runtime: MissionRuntime, row: Record<string, unknown>): AuditMismatch | null {
  const info = runtime.state.mission;
  // Every column: what the API serves, and what the projection and time travel read back (a
  // mission loaded again resumes from them; `recorded_monotonic` decides how a known-at fold ends).
  const expected: Record<(typeof MISSION_COLUMNS)[number], unknown> = {
    mission_id: runtime.missionId,
    name: info?.name ?? null,
    lead_nation: info?.leadNation ?? null,
    base_currency: info?.baseCurrency ?? null,
    template: info?.template ?? null,
    defined_at: info?.definedAt ?? null,
    created_position: runtime.createdPosition,
    created_recorded_at: runtime.createdRecordedAt,
    revision: runtime.revision,
    last_position: runtime.position,
    last_recorded_at: runtime.lastRecordedAt,
    max_recorded_at: runtime.maxRecordedAt,
    max_pledge_at: runtime.maxPledgeAt,
    recorded_monotonic: runtime.recordedMonotonic ? 1 : 0,
    evaluated_at: runtime.evaluatedAt,
    next_change_at: runtime.nextAt,
    policy_version: runtime.verdict?.policyVersion ?? null,
    history_seq: runtime.historySeq,
    skipped_events: runtime.skippedEvents,
  };
  const actual: Record<string, unknown> = {};
  for (const column of MISSION_COLUMNS) {
    const value = row[column] ?? null;
    // BIGINT comes back from PostgreSQL as a string.
    actual[column] = typeof expected[column] === 'number' && value !== null ? Number(value) : value;
  }
  const fields = differingFields(expected, actual);
  if (fields.length === 0) return null;
  return {
    kind: 'mission-differs',
    detail: `mission row differs in ${fields.join(', ')}`,
    fields,
    expected,
    actual,
  };
}

/** What the read models hold for one mission, all as of one commit (see `readModels`). */
interface ReadModels {
  checkpoint: CheckpointRow | null;
  row: Record<string, unknown> | undefined;
  /** The snapshots' columns; their texts are read during the replay. */
  snapshots: StoredSnapshot[];
  history: HistoryEntry[];
  verdicts: SqlRow[];
}

/**
 * The checkpoint, the mission row, its snapshots, current verdicts and whole history, in one read
 * snapshot. A batch of the projection writes its rows, snapshots and checkpoint in one
 * transaction, so what one snapshot holds agrees with itself; read in separate statements while
 * the projection commits, the parts came from different batches and a healthy mission was
 * reported (history entries that "follow from no event", verdicts that differ). The snapshots'
 * texts (megabytes each) are left out, and the snapshot is closed before the replay: held
 * through a long replay it would keep SQLite from checkpointing its log, and PostgreSQL's vacuum
 * from removing old rows, all that time.
 */
function readModels(store: EventStore, sql: SqlClient, missionId: string): Promise<ReadModels> {
  return sql.readSnapshot(async (tx) => {
    const checkpoint = await readCheckpoint(tx, READINESS_PROJECTION);
    const [row] = await tx.query(`SELECT * FROM ${MISSIONS} WHERE mission_id = $1`, [missionId]);
    const snapshots = (
      await tx.query(
        `SELECT revision, position, recorded_at, max_recorded_at FROM ${SNAPSHOTS} WHERE mission_id = $1 ORDER BY revision`,
        [missionId],
      )
    ).map((r) => ({ ...r, revision: Number(r.revision) }) as StoredSnapshot);
    const queries = createReadinessQueries({ store, sql: tx });
    const history: HistoryEntry[] = [];
    let after: number | null = 0;
    while (after !== null) {
      const page = await queries.history(missionId, { afterSeq: after, limit: 1000 });
      if (!page) break;
      history.push(...page.entries);
      after = page.nextAfterSeq;
    }
    const verdicts = await tx.query(`SELECT * FROM ${VERDICTS} WHERE mission_id = $1 ORDER BY ord`, [
      missionId,
    ]);
    return { checkpoint, row, snapshots, history, verdicts };
  });
}

/**
 * Replays a mission from the log alone, verifies its hash chain, recomputes every verdict change,
 * and compares the result with what the readiness read models hold: the mission row, its current
 * verdicts and its whole history. Null when neither the log nor the read models know the mission.
 */
export async function auditMission(options: {
  store: EventStore;
  sql: SqlClient;
  missionId: string;
}): Promise<AuditReport | null> {
  const { store, sql, missionId } = options;
  for (let attempt = 1; ; attempt++) {
    const models = await readModels(store, sql, missionId);
    const report = await compareWithLog(store, sql, missionId, models);
    if (report === null || report.ok || attempt === AUDIT_ATTEMPTS) return report;
    // Only the snapshots' texts are read outside the read snapshot, and within a generation of
    // the tables a snapshot never changes once written: a difference there is found, not raced.
    // A rebuild swapped in meanwhile replaces the tables, though: a snapshot listed may then be
    // gone (which revisions hold one depends on batching), and on PostgreSQL a swap committed
    // between two statements of the read snapshot shows its new tables to the later ones. Only
    // then is the audit done again, on the new generation.
    const now = await readCheckpoint(sql, READINESS_PROJECTION);
    if (now?.generation === models.checkpoint?.generation) return report;
  }
}

/** Audits tried when rebuilds keep being swapped in while the audit runs. */
const AUDIT_ATTEMPTS = 3;

/** The replay of the log, and its comparison with the read models as `readModels` read them. */
async function compareWithLog(
  store: EventStore,
  sql: SqlClient,
  missionId: string,
  models: ReadModels,
): Promise<AuditReport | null> {
  const { checkpoint, row, snapshots } = models;
  let nextSnapshot = 0;
  let snapshotsCompared = 0;
  // What the read model must have folded: every event up to its own revision, and every event the
  // checkpoint says the projection has processed (its batch and the checkpoint commit together).
  // The log is read after the read models, but it is only ever appended to: the events appended
  // since lie past both limits, and the fold stops before them.
  const rowRevision = row ? Number(row.revision) : -1;
  const processedUpTo = checkpoint?.position ?? null;
  const mismatches: AuditMismatch[] = [];
  const add = (m: AuditMismatch) => {
    if (mismatches.length < MAX_MISMATCHES) mismatches.push(m);
  };
  const verifier = new ChainVerifier();
  let chain: ChainVerdict | null = null;
  const processor = new MissionProcessor();
  const runtime = newRuntime(missionId);
  const sink = newSink({ changes: false });
  let events = 0;
  /** The last revision the checkpoint covers (-1: none). */
  let coveredRevision = -1;
  let coveredPosition: string | null = null;
  /** Whether the fold stopped before the stream's end: the rest is past the read model. */
  let stopped = false;
  /**
   * Whether an event the read model must have folded cannot be read: the fold ends before it, and
   * only what it reached is compared (anything later would differ for that reason alone).
   */
  let cutShort = false;
  let previousPosition: string | null = null;
  const mustFold = (revision: number, position: string) =>
    revision <= rowRevision || (processedUpTo !== null && comparePositions(position, processedUpTo) <= 0);
  try {
    for await (const event of store.readStream(missionStreamName(missionId))) {
      events++;
      if (chain === null) {
        const broken = verifier.push(event);
        if (broken) {
          chain = broken;
          add({
            kind: 'chain',
            detail: `the hash chain breaks at revision ${broken.brokenAt.revision} (${broken.reason})`,
            revision: broken.brokenAt.revision,
            eventId: broken.brokenAt.eventId,
            expected: broken.expected,
            actual: broken.actual,
          });
        }
      }
      // Positions are outside the hash chain (each store assigns its own), but every reader of the
      // log orders by them: time travel to a position, the export's verification.
      if (previousPosition !== null && comparePositions(event.position, previousPosition) <= 0) {
        add({
          kind: 'position-order',
          detail: `the event at revision ${event.revision} has position ${event.position}, not after ${previousPosition} of the event before it`,
          revision: event.revision,
          eventId: event.id,
          expected: `after ${previousPosition}`,
          actual: event.position,
        });
      }
      previousPosition = event.position;
      const covered = processedUpTo !== null && comparePositions(event.position, processedUpTo) <= 0;
      if (covered) {
        coveredRevision = event.revision;
        coveredPosition = event.position;
      }
      // A prefix of the stream only: the processor folds revisions in order.
      if (stopped || !(event.revision <= rowRevision || covered)) {
        stopped = true;
        continue;
      }
      processor.apply(runtime, event, sink);
      // Snapshots feed time travel: each must be the fold at its revision, checked on the way
      // rather than by folding again, and read one at a time.
      for (; nextSnapshot < snapshots.length; nextSnapshot++) {
        const snapshot = snapshots[nextSnapshot] as StoredSnapshot;
        if (snapshot.revision > runtime.revision) break;
        if (snapshot.revision < runtime.revision) {
          add(snapshotWithoutFold(snapshot, 'the log has no event at that revision'));
          continue;
        }
        snapshotsCompared++;
        const mismatch = await snapshotMismatch(sql, runtime, snapshot);
        if (mismatch) add(mismatch);
      }
    }
  } catch (error) {
    if (error instanceof CorruptEventError) {
      // The store names the event it cannot read; the events before it were read and checked.
      const { revision, position, eventId } = error;
      add({
        kind: 'chain',
        detail: `the stored event at revision ${revision ?? '?'} (position ${position}) cannot be read: its text is not an event's`,
        revision,
        eventId,
      });
      chain ??= {
        ok: false,
        stream: missionStreamName(missionId),
        count: events,
        brokenAt: { index: events, revision, eventId },
        reason: 'malformed',
      };
      if (revision === null || mustFold(revision, position)) cutShort = !stopped;
      else stopped = true;
      // How many the stream holds, the unreadable one and any after it included.
      const head = await store.streamRevision(missionStreamName(missionId));
      if (head !== null && head + 1 > events) events = head + 1;
    } else if (error instanceof SyntaxError) {
      // A store that cannot say which event it could not read: nothing after it can be trusted.
      add({
        kind: 'chain',
        detail: `the stored event after revision ${runtime.revision} cannot be read: ${error.message}`,
      });
      chain ??= {
        ok: false,
        stream: missionStreamName(missionId),
        count: events,
        brokenAt: { index: events, revision: null, eventId: null },
        reason: 'malformed',
      };
      cutShort = !stopped;
    } else if (!(error instanceof StreamNotFoundError)) throw error;
  }
  if (events === 0 && !row && snapshots.length === 0) return null;
  chain ??= verifier.result();
  if (!cutShort) {
    for (const snapshot of snapshots.slice(nextSnapshot)) {
      add(snapshotWithoutFold(snapshot, `the read model has folded up to revision ${runtime.revision}`));
    }
  }
  // Cut short, the record time of the unreadable event is unknown: changes time caused before it
  // cannot be told from those after it.
  const timeUntil = cutShort ? null : (checkpoint?.watermark ?? null);
  if (timeUntil !== null) processor.advance(runtime, timeUntil, sink);
  for (const skipped of sink.skipped) {
    add({
      kind: 'unreadable-event',
      detail: `event at revision ${skipped.revision} cannot be read by the domain (${skipped.reason})`,
      revision: skipped.revision,
      eventId: skipped.eventId,
    });
  }

  // Cut short, the mission row and the current verdicts, which stand for the whole log, are not
  // compared: they would differ for that reason alone.
  if (!cutShort && row && coveredRevision > rowRevision) {
    add({
      kind: 'mission-behind-checkpoint',
      detail: `the read model has folded up to revision ${rowRevision}, but the projection's checkpoint (${processedUpTo}) is past revision ${coveredRevision}`,
      revision: coveredRevision,
      expected: { revision: coveredRevision, position: coveredPosition },
      actual: { revision: rowRevision, position: row.last_position ?? null },
    });
  }
  if (!cutShort && !row && coveredRevision >= 0) {
    // Only a mission the checkpoint says was processed must be there.
    add({ kind: 'mission-missing', detail: 'the log holds the mission but the read model does not' });
  }
  const rowMismatch = !cutShort && row ? missionRowMismatch(runtime, row) : null;
  if (rowMismatch) add(rowMismatch);
  const stored = models.history;
  const recomputed = sink.history;
  // Cut short, the history recomputed is that of the events before the unreadable one: a prefix.
  const compareUpTo = cutShort ? recomputed.length : Math.max(stored.length, recomputed.length);
  for (let i = 0; i < compareUpTo; i++) {
    const mine = recomputed[i];
    const theirs = stored[i];
    if (mine && !theirs) {
      add({
        kind: 'history-missing',
        detail: `history entry ${mine.seq} is missing`,
        seq: mine.seq,
        expected: mine,
      });
    } else if (!mine && theirs) {
      add({
        kind: 'history-extra',
        detail: `history entry ${theirs.seq} follows from no event`,
        seq: theirs.seq,
        actual: theirs,
      });
    } else if (mine && theirs) {
      const fields = differingFields(
        mine as unknown as Record<string, unknown>,
        theirs as unknown as Record<string, unknown>,
      );
      if (fields.length > 0) {
        add({
          kind: 'history-differs',
          detail: `history entry ${mine.seq} differs in ${fields.join(', ')}`,
          seq: mine.seq,
          phase: mine.phase,
          fields,
          expected: mine,
          actual: theirs,
        });
      }
    }
  }

  const verdictRows = cutShort ? [] : models.verdicts;
  const storedPhases = new Map(verdictRows.map((r) => [String(r.phase), r]));
  const phases = cutShort ? [] : (runtime.verdict?.phases ?? []);
  phases.forEach((phase, ord) => {
    const r = storedPhases.get(phase.phase);
    if (!r) {
      add({
        kind: 'verdict-missing',
        detail: `no current verdict for phase ${phase.phase}`,
        phase: phase.phase,
      });
      return;
    }
    const expected = {
      ord,
      status: phase.status,
      policy_version: runtime.verdict?.policyVersion ?? null,
      verdict: JSON.stringify(phase),
    };
    const actual = {
      ord: Number(r.ord),
      status: r.status,
      policy_version: num(r.policy_version),
      verdict: r.verdict,
    };
    const fields = differingFields(expected, actual);
    if (fields.length > 0) {
      add({
        kind: 'verdict-differs',
        detail: `current verdict of phase ${phase.phase} differs in ${fields.join(', ')}`,
        phase: phase.phase,
        fields,
        expected: { ...expected, verdict: phase },
        actual: { ...actual, verdict: JSON.parse(String(r.verdict)) },
      });
    }
    storedPhases.delete(phase.phase);
  });
  for (const phase of storedPhases.keys()) {
    add({
      kind: 'verdict-extra',
      detail: `a current verdict for phase ${phase} the policy does not have`,
      phase,
    });
  }

  const report: AuditReport = {
    missionId,
    ok: mismatches.length === 0,
    events,
    chain,
    projectionBehind: stopped,
    comparedUpTo: {
      revision: runtime.revision,
      timeUntil: timeUntil === null ? null : new Date(timeUntil).toISOString(),
    },
    history: { stored: stored.length, recomputed: recomputed.length },
    snapshots: { stored: snapshots.length, compared: snapshotsCompared },
    mismatches,
  };
  return report;
}
