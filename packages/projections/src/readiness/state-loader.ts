import {
  type EventStore,
  type RecordedEvent,
  type SqlClient,
  StreamNotFoundError,
} from '@muster/event-store';
import {
  deserializeState,
  evolve,
  fromStoredEvent,
  initialState,
  isDomainError,
  type MissionEvent,
  type MissionState,
  missionStreamName,
} from '@muster/readiness';
import { num } from '../sql-rows.js';

/**
 * Folding a mission's stream from the nearest snapshot instead of from zero: the restart path of
 * the projection and every time-travel query go through here.
 */
export interface FoldedState {
  state: MissionState;
  /** Last revision folded (-1: none). */
  revision: number;
  /** The last event folded, when any was read past the snapshot. */
  last: RecordedEvent | null;
  position: string | null;
  recordedAt: number | null;
  /** Events read from the store past the snapshot. */
  folded: number;
  /** The latest recordedAt among the events folded (epoch ms). */
  maxRecordedAt: number | null;
}

export interface SnapshotRow {
  revision: number;
  position: string;
  recordedAt: number;
  maxRecordedAt: number;
  state: string;
}

export function readableEvent(event: RecordedEvent): MissionEvent | null {
  try {
    return fromStoredEvent(event);
  } catch (error) {
    if (isDomainError(error)) return null;
    throw error;
  }
}

/** Where a generation keeps its snapshots: one row each, and the rest of a large one's text. */
export interface SnapshotTables {
  readonly snapshots: string;
  readonly parts: string;
}

/** A mission's latest snapshot whose `column` is at most `bound`, its parts joined. */
async function latestWhere(
  sql: SqlClient,
  tables: SnapshotTables,
  missionId: string,
  column: 'revision' | 'position' | 'max_recorded_at',
  bound: number | string,
): Promise<SnapshotRow | null> {
  const [row] = await sql.query(
    `SELECT revision, position, recorded_at, max_recorded_at, state FROM ${tables.snapshots}
     WHERE mission_id = $1 AND ${column} <= $2 ORDER BY revision DESC LIMIT 1`,
    [missionId, bound],
  );
  if (!row) return null;
  const revision = Number(row.revision);
  // Joined here rather than by the database: SQLite's group_concat took twice as long for the
  // 17 MB state of a 100,000-event mission (67-129 ms against 30-48 ms).
  const rest = await sql.query(
    `SELECT state FROM ${tables.parts} WHERE mission_id = $1 AND revision = $2 ORDER BY part`,
    [missionId, revision],
  );
  return {
    revision,
    position: String(row.position),
    recordedAt: Number(row.recorded_at),
    maxRecordedAt: Number(row.max_recorded_at),
    state:
      rest.length === 0 ? String(row.state) : String(row.state) + rest.map((r) => String(r.state)).join(''),
  };
}

export function latestSnapshot(
  sql: SqlClient,
  tables: SnapshotTables,
  missionId: string,
  maxRevision: number,
): Promise<SnapshotRow | null> {
  return latestWhere(sql, tables, missionId, 'revision', maxRevision);
}

export function snapshotAtOrBeforePosition(
  sql: SqlClient,
  tables: SnapshotTables,
  missionId: string,
  position: string,
): Promise<SnapshotRow | null> {
  return latestWhere(sql, tables, missionId, 'position', position);
}

export function snapshotKnownBy(
  sql: SqlClient,
  tables: SnapshotTables,
  missionId: string,
  instant: number,
): Promise<SnapshotRow | null> {
  return latestWhere(sql, tables, missionId, 'max_recorded_at', instant);
}

/** Parts of a snapshot's text per query of {@link snapshotTextParts}: about 1 MiB at the default size. */
const PARTS_PER_READ = 4;

/**
 * A snapshot's text as stored: its row's part, then the rest in order, a few parts per query, so
 * that a snapshot of many megabytes is checked without ever being one string. Nothing when there
 * is no such snapshot.
 */
export async function* snapshotTextParts(
  sql: SqlClient,
  tables: SnapshotTables,
  missionId: string,
  revision: number,
): AsyncGenerator<string, void, undefined> {
  const [row] = await sql.query(
    `SELECT state FROM ${tables.snapshots} WHERE mission_id = $1 AND revision = $2`,
    [missionId, revision],
  );
  if (!row) return;
  yield String(row.state);
  let after = 0;
  for (;;) {
    const rows = await sql.query(
      `SELECT part, state FROM ${tables.parts} WHERE mission_id = $1 AND revision = $2 AND part > $3
       ORDER BY part LIMIT ${PARTS_PER_READ}`,
      [missionId, revision, after],
    );
    for (const part of rows) yield String(part.state);
    if (rows.length < PARTS_PER_READ) return;
    after = Number(rows[rows.length - 1]?.part);
  }
}

export type FoldDecision = 'take' | 'skip' | 'stop';

/**
 * Folds the stream's events after `base` while `decide` says so. Unreadable events are skipped,
 * as the projection skips them.
 */
export async function foldStream(
  store: EventStore,
  missionId: string,
  base: { state: MissionState; revision: number },
  options: { maxRevision?: number; decide?: (event: RecordedEvent) => FoldDecision } = {},
): Promise<FoldedState> {
  let state = base.state;
  let revision = base.revision;
  let last: RecordedEvent | null = null;
  let folded = 0;
  let maxRecordedAt: number | null = null;
  const maxCount =
    options.maxRevision === undefined ? Number.MAX_SAFE_INTEGER : options.maxRevision - base.revision;
  if (maxCount <= 0)
    return { state, revision, last, position: null, recordedAt: null, folded, maxRecordedAt };
  try {
    for await (const event of store.readStream(missionStreamName(missionId), {
      fromRevision: base.revision + 1,
      maxCount,
    })) {
      const decision = options.decide ? options.decide(event) : 'take';
      if (decision === 'stop') break;
      if (decision === 'skip') continue;
      const domain = readableEvent(event);
      if (domain !== null) state = evolve(state, domain);
      revision = event.revision;
      last = event;
      folded++;
      const recordedAt = Date.parse(event.recordedAt);
      if (maxRecordedAt === null || recordedAt > maxRecordedAt) maxRecordedAt = recordedAt;
    }
  } catch (error) {
    if (!(error instanceof StreamNotFoundError)) throw error;
  }
  return {
    state,
    revision,
    last,
    position: last?.position ?? null,
    recordedAt: last ? Date.parse(last.recordedAt) : null,
    folded,
    maxRecordedAt,
  };
}

export function stateOf(snapshot: SnapshotRow | null): { state: MissionState; revision: number } {
  return snapshot === null
    ? { state: initialState(), revision: -1 }
    : { state: deserializeState(snapshot.state), revision: snapshot.revision };
}

export { num };
