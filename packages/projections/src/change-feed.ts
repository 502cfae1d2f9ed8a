import type { SqlClient, SqlMigration } from '@muster/event-store';
import { chunkLength } from './sql-rows.js';

/**
 * The readiness change feed: every verdict change, precondition change and pledge change of
 * every mission, in the order the readiness projection recorded them. Webhooks plan their
 * deliveries from it. The projection is its only writer (one active runner per database, under
 * a lease), so `seq` order is commit order and a reader checkpointing on `seq` never skips a row.
 * Changes no event causes (a mandate expiring) are written by the same runner at the instant they
 * take effect.
 */
export type ChangeKind = 'readiness.changed' | 'precondition.changed' | 'pledge.changed';

export const CHANGE_KINDS: readonly ChangeKind[] = [
  'readiness.changed',
  'precondition.changed',
  'pledge.changed',
];

export interface ReadinessChange {
  /** Position in the feed: 1, 2, 3, ... in commit order. */
  seq: number;
  /**
   * Stable identity of the change, the same after a rebuild: a hash of the mission, the kind,
   * the phase or pledge it concerns and its cause (event id, or the instant for time-based changes).
   */
  changeId: string;
  missionId: string;
  kind: ChangeKind;
  /** The phase (readiness/precondition changes) or the pledge id (pledge changes). */
  subject: string;
  /** Kind-specific JSON: verdict before and after, unmet preconditions, the pledge, ... */
  payload: Record<string, unknown>;
  /** The event that caused it; null when time alone did (a mandate expired). */
  causeEventId: string | null;
  /** Stream revision of the cause event, or of the last event folded before a time-based change. */
  causeRevision: number | null;
  /**
   * The cause event's link in the mission's hash chain (null for a time-based change, and for
   * changes written before this was kept): a receipt its receiver can check an export against.
   */
  causeHash: string | null;
  /** Store position of the cause event, or of the last event folded before a time-based change. */
  causePosition: string | null;
  /** World time (epoch ms) the change took effect. */
  occurredAt: number;
  /** Record time (epoch ms) of the cause event, or of the scheduler's detection for time-based changes. */
  recordedAt: number;
}

export const changeFeedMigrations: readonly SqlMigration[] = [
  {
    id: 'projections:change-feed:001',
    sqlite: `CREATE TABLE IF NOT EXISTS readiness_changes (
      seq INTEGER PRIMARY KEY,
      change_id TEXT NOT NULL UNIQUE,
      mission_id TEXT NOT NULL,
      kind TEXT NOT NULL,
      subject TEXT NOT NULL,
      payload TEXT NOT NULL,
      cause_event_id TEXT,
      cause_position TEXT,
      occurred_at BIGINT NOT NULL,
      recorded_at BIGINT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS readiness_changes_mission ON readiness_changes (mission_id, seq);`,
    postgres: `CREATE TABLE IF NOT EXISTS readiness_changes (
      seq BIGINT PRIMARY KEY,
      change_id TEXT NOT NULL UNIQUE,
      mission_id TEXT NOT NULL,
      kind TEXT NOT NULL,
      subject TEXT NOT NULL,
      payload TEXT NOT NULL,
      cause_event_id TEXT,
      cause_position TEXT,
      occurred_at BIGINT NOT NULL,
      recorded_at BIGINT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS readiness_changes_mission ON readiness_changes (mission_id, seq);`,
  },
  /*
   * A change id is a hash, so a unique index on it alone takes each new row to a random leaf: a
   * batch of a few hundred changes dirtied a few hundred pages of it, and writing them made up
   * about a third of a catch-up (decision 25). A change written twice would repeat its cause
   * position with its id (the cause event's, or the last one folded before the instant time
   * caused it at), so uniqueness is kept on (cause_position, change_id): new rows land at its end,
   * as positions only grow. It also answers the webhook replay's search of the feed by position
   * on its own (SQLite's indexes hold the rowid, `seq`; PostgreSQL's includes it).
   */
  {
    id: 'projections:change-feed:002',
    sqlite: `CREATE TABLE readiness_changes_002 (
      seq INTEGER PRIMARY KEY,
      change_id TEXT NOT NULL,
      mission_id TEXT NOT NULL,
      kind TEXT NOT NULL,
      subject TEXT NOT NULL,
      payload TEXT NOT NULL,
      cause_event_id TEXT,
      cause_position TEXT,
      occurred_at BIGINT NOT NULL,
      recorded_at BIGINT NOT NULL
    );
    INSERT INTO readiness_changes_002 SELECT seq, change_id, mission_id, kind, subject, payload, cause_event_id, cause_position, occurred_at, recorded_at FROM readiness_changes;
    DROP TABLE readiness_changes;
    ALTER TABLE readiness_changes_002 RENAME TO readiness_changes;
    CREATE INDEX readiness_changes_mission ON readiness_changes (mission_id, seq);
    CREATE UNIQUE INDEX readiness_changes_cause ON readiness_changes (cause_position, change_id);`,
    postgres: `ALTER TABLE readiness_changes DROP CONSTRAINT IF EXISTS readiness_changes_change_id_key;
    CREATE UNIQUE INDEX IF NOT EXISTS readiness_changes_cause ON readiness_changes (cause_position COLLATE "C", change_id) INCLUDE (seq);`,
  },
  /* The cause's revision and hash, for webhook receivers to keep as receipts (decision 46). */
  {
    id: 'projections:change-feed:003',
    sqlite: `ALTER TABLE readiness_changes ADD COLUMN cause_revision BIGINT;
    ALTER TABLE readiness_changes ADD COLUMN cause_hash TEXT;`,
    postgres: `ALTER TABLE readiness_changes ADD COLUMN IF NOT EXISTS cause_revision BIGINT;
    ALTER TABLE readiness_changes ADD COLUMN IF NOT EXISTS cause_hash TEXT;`,
  },
];

interface ChangeRow {
  seq: number | string;
  change_id: string;
  mission_id: string;
  kind: ChangeKind;
  subject: string;
  payload: string;
  cause_event_id: string | null;
  cause_revision: number | string | null;
  cause_hash: string | null;
  cause_position: string | null;
  occurred_at: number | string;
  recorded_at: number | string;
}

export function toChange(row: ChangeRow): ReadinessChange {
  return {
    seq: Number(row.seq),
    changeId: row.change_id,
    missionId: row.mission_id,
    kind: row.kind,
    subject: row.subject,
    payload: JSON.parse(row.payload),
    causeEventId: row.cause_event_id,
    causeRevision: row.cause_revision === null ? null : Number(row.cause_revision),
    causeHash: row.cause_hash,
    causePosition: row.cause_position,
    occurredAt: Number(row.occurred_at),
    recordedAt: Number(row.recorded_at),
  };
}

/** Changes strictly after `afterSeq`, oldest first. */
export async function readChangeFeed(
  sql: SqlClient,
  afterSeq: number,
  limit = 500,
): Promise<ReadinessChange[]> {
  const rows = await sql.query<ChangeRow & Record<string, unknown>>(
    'SELECT seq, change_id, mission_id, kind, subject, payload, cause_event_id, cause_revision, cause_hash, cause_position, occurred_at, recorded_at FROM readiness_changes WHERE seq > $1 ORDER BY seq LIMIT $2',
    [afterSeq, limit],
  );
  return rows.map(toChange);
}

/** Appends changes at the end of the feed, numbering them; call inside the writer's transaction. */
export async function appendChanges(
  tx: SqlClient,
  changes: ReadonlyArray<Omit<ReadinessChange, 'seq'>>,
): Promise<ReadinessChange[]> {
  if (changes.length === 0) return [];
  const [{ last } = { last: 0 }] = await tx.query<{ last: number | string | null }>(
    'SELECT COALESCE(MAX(seq), 0) AS last FROM readiness_changes',
  );
  let seq = Number(last ?? 0);
  const written: ReadinessChange[] = changes.map((change) => ({ ...change, seq: ++seq }));
  // Several rows per statement: one round trip per hundred changes rather than one per change,
  // in lengths from a small set (`chunkLength`).
  for (let start = 0; start < written.length; ) {
    const length = chunkLength(written.length - start, 100);
    const chunk = written.slice(start, start + length);
    start += length;
    const params: unknown[] = [];
    const tuples = chunk.map((change) => {
      const base = params.length;
      params.push(
        change.seq,
        change.changeId,
        change.missionId,
        change.kind,
        change.subject,
        JSON.stringify(change.payload),
        change.causeEventId,
        change.causeRevision,
        change.causeHash,
        change.causePosition,
        change.occurredAt,
        change.recordedAt,
      );
      return `(${Array.from({ length: 12 }, (_, i) => `$${base + i + 1}`).join(', ')})`;
    });
    await tx.execute(
      `INSERT INTO readiness_changes (seq, change_id, mission_id, kind, subject, payload, cause_event_id, cause_revision, cause_hash, cause_position, occurred_at, recorded_at) VALUES ${tuples.join(', ')}`,
      params,
    );
  }
  return written;
}
