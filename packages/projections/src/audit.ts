import {
  type ChainVerdict,
  ChainVerifier,
  CorruptEventError,
  comparePositions,
  type EventStore,
  type SqlClient,
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

/**
 * The projection's checkpoint and the mission's row as of one moment: read checkpoint, row,
 * checkpoint again until the checkpoint stood still (a batch writes the row and moves the
 * checkpoint in one transaction). Failing that, the first checkpoint: the row is then at least
 * as far along as it, never wrongly found behind it.
 */
async function readModelState(
  sql: SqlClient,
  missionId: string,
): Promise<{ checkpoint: CheckpointRow | null; row: Record<string, unknown> | undefined }> {
  for (let attempt = 1; ; attempt++) {
    const checkpoint = await readCheckpoint(sql, READINESS_PROJECTION);
    const [row] = await sql.query(`SELECT * FROM ${MISSIONS} WHERE mission_id = $1`, [missionId]);
    const again = await readCheckpoint(sql, READINESS_PROJECTION);
    const still = checkpoint?.position === again?.position && checkpoint?.watermark === again?.watermark;
    if (still || attempt === 5) return { checkpoint, row };
  }
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
  // The history and verdicts are read after the replay, so a batch of the projection (a change
  // time caused, say) can land between the mission row and them: then the rows disagree with the
  // row the replay was compared against, and the audit is done again on the new row.
  for (let attempt = 1; ; attempt++) {
    const { report, row } = await auditAgainstRow(options);
    if (report === null || attempt === AUDIT_ATTEMPTS) return report;
    const { row: now } = await readModelState(options.sql, options.missionId);
    if (JSON.stringify(now ?? null) === JSON.stringify(row ?? null)) return report;
  }
}

/** Audits tried before a mission that keeps moving is reported as found. */
const AUDIT_ATTEMPTS = 3;

async function auditAgainstRow(options: {
  store: EventStore;
  sql: SqlClient;
  missionId: string;
}): Promise<{ report: AuditReport | null; row: Record<string, unknown> | undefined }> {
  const { store, sql, missionId } = options;
  // Listed before the row is read: every snapshot then predates it, and is within what it folded.
  const snapshots = (
    await sql.query(
      `SELECT revision, position, recorded_at, max_recorded_at FROM ${SNAPSHOTS} WHERE mission_id = $1 ORDER BY revision`,
      [missionId],
    )
  ).map((r) => ({ ...r, revision: Number(r.revision) }) as StoredSnapshot);
  let nextSnapshot = 0;
  let snapshotsCompared = 0;
  const { checkpoint, row } = await readModelState(sql, missionId);
  // What the read model must have folded: every event up to its own revision, and every event the
  // checkpoint says the projection has processed (its batch and the checkpoint commit together).
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
  if (events === 0 && !row && snapshots.length === 0) return { report: null, row };
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
  const queries = createReadinessQueries({ store, sql });
  const stored: HistoryEntry[] = [];
  let after: number | null = 0;
  while (after !== null) {
    const page = await queries.history(missionId, { afterSeq: after, limit: 1000 });
    if (!page) break;
    stored.push(...page.entries);
    after = page.nextAfterSeq;
  }
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

  const verdictRows = cutShort
    ? []
    : await sql.query(`SELECT * FROM ${VERDICTS} WHERE mission_id = $1 ORDER BY ord`, [missionId]);
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
  return { report, row };
}
