import { openPostgresEventStore } from '@muster/event-store-postgres';
import { openSqliteEventStore } from '@muster/event-store-sqlite';
import { createReadinessProjection } from '../readiness/projection.js';
import { startProjections } from '../runner.js';
import { countingProjection } from './counting-projection.js';

/**
 * A projection runner in a process of its own, for tests that SIGKILL it. Arguments:
 * `<sqlite path | postgres URL> <readiness|counting> <instance id> <lease ttl ms> <batch size>`.
 * Prints `leader` once it holds the lease and `at <position>` after every batch.
 */
const [target, kind, instanceId, ttl, batch] = process.argv.slice(2);
if (!target || !kind || !instanceId)
  throw new Error('usage: child-runner <store> <kind> <instance> [ttl] [batch]');
const store = target.startsWith('postgres')
  ? await openPostgresEventStore({ connectionString: target })
  : await openSqliteEventStore({ path: target, pollIntervalMs: 20 });
const projection =
  kind === 'readiness'
    ? createReadinessProjection({ store, snapshotEvery: 50, cacheSize: 3 })
    : countingProjection({ owner: instanceId });
const runner = await startProjections({
  store,
  sql: store.sql,
  projections: [projection],
  instanceId,
  leaseTtlMs: Number(ttl ?? 1000),
  batchSize: Number(batch ?? 20),
  tickMs: 20,
  timeGraceMs: 0,
  backoff: { initialMs: 20, maxMs: 200 },
});
let leader = false;
let last: string | null = null;
const timer = setInterval(async () => {
  const [status] = await runner.status();
  if (status?.isLeader && !leader) {
    leader = true;
    process.stdout.write('leader\n');
  }
  if (status?.position && status.position !== last) {
    last = status.position;
    process.stdout.write(`at ${last}\n`);
  }
}, 10);
process.on('SIGTERM', async () => {
  clearInterval(timer);
  await runner.close();
  await store.close();
  process.exit(0);
});
