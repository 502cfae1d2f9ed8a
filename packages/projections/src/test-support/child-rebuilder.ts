import { openPostgresEventStore } from '@muster/event-store-postgres';
import { openSqliteEventStore } from '@muster/event-store-sqlite';
import { createReadinessProjection } from '../readiness/projection.js';
import { startProjections } from '../runner.js';

/**
 * `muster projections rebuild readiness` in a process of its own, for tests that kill or stall it
 * beside a leader that keeps running: a runner that stands by for the projection and rebuilds it.
 * Arguments: `<sqlite path | postgres URL> <instance id> <lease ttl ms> <stall ms>`.
 * Prints `rebuilding <events>` after its first rebuild batch has committed, then blocks its event
 * loop for `stall ms` (renewing nothing, building nothing: a crash pinned to that point when the
 * test kills it then, a stall past its lease otherwise); then `rebuilt <generation>` or
 * `failed <code>`.
 */
const [target, instanceId, ttl, stall] = process.argv.slice(2);
if (!target || !instanceId || !ttl || !stall)
  throw new Error('usage: child-rebuilder <store> <instance> <ttl> <stall>');
const store = target.startsWith('postgres')
  ? await openPostgresEventStore({ connectionString: target })
  : await openSqliteEventStore({ path: target, pollIntervalMs: 20 });
const runner = await startProjections({
  store,
  sql: store.sql,
  projections: [createReadinessProjection({ store, snapshotEvery: 50, cacheSize: 3 })],
  instanceId,
  leaseTtlMs: Number(ttl),
  tickMs: 20,
  timeGraceMs: 0,
  backoff: { initialMs: 20, maxMs: 200 },
});
let stalled = false;
const outcome = await runner
  .rebuild('readiness', {
    onProgress: (progress) => {
      if (stalled || progress.phase !== 'building' || progress.events === 0) return;
      stalled = true;
      // Writes to a pipe are synchronous on Linux: the line is out before the loop stops.
      process.stdout.write(`rebuilding ${progress.events}\n`);
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, Number(stall));
    },
  })
  .then(
    (result) => `rebuilt ${result.generation}`,
    (error: unknown) => `failed ${(error as { code?: string }).code ?? String(error)}`,
  );
process.stdout.write(`${outcome}\n`);
await runner.close();
await store.close();
