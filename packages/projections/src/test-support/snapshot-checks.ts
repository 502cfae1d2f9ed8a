import type { EventStore, SqlClient } from '@muster/event-store';
import { initialState, serializeState } from '@muster/readiness';
import { expect } from 'vitest';
import { foldStream, latestSnapshot } from '../readiness/state-loader.js';
import { SNAPSHOT_PARTS, SNAPSHOTS } from '../readiness/tables.js';

const TABLES = { snapshots: SNAPSHOTS, parts: SNAPSHOT_PARTS };

/** Every stored snapshot, checked against a fold of the log up to its revision. */
export async function expectSnapshotsMatchTheLog(store: EventStore, sql: SqlClient): Promise<void> {
  const rows = await sql.query(`SELECT mission_id, revision FROM ${SNAPSHOTS}`);
  expect(rows.length).toBeGreaterThan(0);
  for (const row of rows) {
    const id = String(row.mission_id);
    const revision = Number(row.revision);
    const snapshot = await latestSnapshot(sql, TABLES, id, revision);
    const folded = await foldStream(
      store,
      id,
      { state: initialState(), revision: -1 },
      { maxRevision: revision },
    );
    expect(snapshot?.revision).toBe(revision);
    expect(snapshot?.state).toBe(serializeState(folded.state));
  }
}
