import { openSqliteEventStore } from '@muster/event-store-sqlite';
import { createReadinessProjection, startProjections } from '../src/index.js';

const path = process.argv[2]!;
const store = await openSqliteEventStore({ path });
await store.sql.script(
  'DROP TABLE IF EXISTS readiness_missions; DROP TABLE IF EXISTS readiness_verdicts; DROP TABLE IF EXISTS readiness_history; DROP TABLE IF EXISTS readiness_snapshots; DELETE FROM projection_checkpoints; DELETE FROM readiness_changes; DELETE FROM projection_leases; DELETE FROM projection_rebuilds;',
);
const t0 = performance.now();
const runner = await startProjections({
  store,
  sql: store.sql,
  projections: [createReadinessProjection({ store })],
  batchSize: 1000,
  clock: () => new Date('2024-03-01T00:00:00Z'),
});
await runner.waitForPosition((await store.headPosition())!, 3_600_000);
const s = (performance.now() - t0) / 1000;
process.stderr.write(`catch-up ${s}s\n`);
await runner.close();
await store.close();
