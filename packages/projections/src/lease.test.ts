import type { EventStore, RecordedEvent, SqlClient } from '@muster/event-store';
import { openPostgresEventStore, type PostgresEventStore } from '@muster/event-store-postgres';
import { afterEach, describe, expect, it } from 'vitest';
import { type ProjectionsHandle, startProjections } from './runner.js';
import { type ChildRunner, spawnRunner } from './test-support/child.js';
import { countingProjection } from './test-support/counting-projection.js';
import { eventually, openSqliteFixture } from './test-support/harness.js';
import { createPostgresDatabase, postgresSkipReason } from './test-support/postgres.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function append(store: EventStore, count: number): Promise<string> {
  let position = '';
  for (let i = 0; i < count; i += 10) {
    const result = await store.appendToStream(
      `thing-${i % 3}`,
      Array.from({ length: Math.min(10, count - i) }, (_, j) => ({ type: 'Happened', data: { n: i + j } })),
    );
    position = result.position;
  }
  return position;
}

async function owners(sql: SqlClient): Promise<Record<string, number>> {
  const rows = await sql.query(
    'SELECT owner, COUNT(*) AS n FROM counting_rows GROUP BY owner ORDER BY owner',
  );
  return Object.fromEntries(rows.map((r) => [String(r.owner), Number(r.n)]));
}

async function rowsAre(sql: SqlClient, n: number): Promise<void> {
  await eventually(
    async () => {
      try {
        const [row] = await sql.query('SELECT COUNT(*) AS n FROM counting_rows');
        return Number(row?.n) === n;
      } catch {
        return false;
      }
    },
    30_000,
    `${n} rows`,
  );
}

function children(target: string, ttl: number): { a: ChildRunner; b: ChildRunner } {
  const a = spawnRunner([target, 'counting', 'A', String(ttl), '10']);
  const b = spawnRunner([target, 'counting', 'B', String(ttl), '10']);
  cleanups.push(
    () => a.kill('SIGKILL'),
    () => b.kill('SIGKILL'),
  );
  return { a, b };
}

async function leaderOf(
  a: ChildRunner,
  b: ChildRunner,
): Promise<{ leader: ChildRunner; standby: ChildRunner; name: string }> {
  await Promise.race([a.waitFor((l) => l === 'leader'), b.waitFor((l) => l === 'leader')]);
  await new Promise((r) => setTimeout(r, 300));
  const aLeads = a.lines.includes('leader');
  const bLeads = b.lines.includes('leader');
  expect(aLeads !== bLeads).toBe(true);
  return aLeads ? { leader: a, standby: b, name: 'A' } : { leader: b, standby: a, name: 'B' };
}

/** The same two scenarios on each database, with the runners in processes of their own. */
function leaseScenarios(open: () => Promise<{ store: EventStore; sql: SqlClient; target: string }>) {
  it('lets one runner process while the other stands by, and hands over when the first stops', async () => {
    const { store, sql, target } = await open();
    const { a, b } = children(target, 1000);
    const first = await leaderOf(a, b);
    await append(store, 60);
    await rowsAre(sql, 60);
    expect(await owners(sql)).toEqual({ [first.name]: 60 });
    await first.leader.kill('SIGTERM');
    await first.standby.waitFor((l) => l === 'leader');
    await append(store, 40);
    await rowsAre(sql, 100);
    const other = first.name === 'A' ? 'B' : 'A';
    expect(await owners(sql)).toEqual({ [first.name]: 60, [other]: 40 });
  }, 120_000);

  it('takes over once the lease expires when the leader dies without letting go', async () => {
    const { store, sql, target } = await open();
    const { a, b } = children(target, 1500);
    const first = await leaderOf(a, b);
    await append(store, 30);
    await rowsAre(sql, 30);
    await first.leader.kill('SIGKILL');
    const killedAt = Date.now();
    await first.standby.waitFor((l) => l === 'leader', 30_000);
    // Not before the lease ran out (allowing for the last renewal up to a third of it earlier).
    expect(Date.now() - killedAt).toBeGreaterThanOrEqual(900);
    await append(store, 30);
    await rowsAre(sql, 60);
    const counts = await owners(sql);
    expect(counts[first.name]).toBe(30);
    expect(Object.values(counts).reduce((x, y) => x + y, 0)).toBe(60);
  }, 120_000);
}

describe('leases on a shared SQLite file', () => {
  leaseScenarios(async () => {
    const fx = await openSqliteFixture('lease-sqlite');
    cleanups.push(fx.close);
    // The schema must exist before the children race to create it.
    const runner = await startProjections({
      store: fx.store,
      sql: fx.sql,
      projections: [countingProjection()],
    });
    await runner.close();
    return { store: fx.store, sql: fx.sql, target: fx.path };
  });
});

describe.skipIf(postgresSkipReason !== null)(
  `leases on PostgreSQL${postgresSkipReason ? ` (${postgresSkipReason})` : ''}`,
  () => {
    /** A database of its own per test, and stores on it closed before it is dropped. */
    const freshDatabase = async () => {
      const { url, drop } = await createPostgresDatabase('lease');
      const stores: PostgresEventStore[] = [];
      cleanups.push(async () => {
        for (const s of stores) await s.close();
        await drop();
      });
      const openStore = async () => {
        const store = await openPostgresEventStore({ connectionString: url });
        stores.push(store);
        return store;
      };
      return { url, openStore };
    };

    leaseScenarios(async () => {
      const { url, openStore } = await freshDatabase();
      const store = await openStore();
      const runner = await startProjections({ store, sql: store.sql, projections: [countingProjection()] });
      await runner.close();
      return { store, sql: store.sql, target: url };
    });

    it('fences out a leader stalled past its lease: no batch is ever committed by both', async () => {
      const { openStore } = await freshDatabase();
      const store = await openStore();
      const committed = new Map<string, string>();
      const duplicates: string[] = [];
      const makeRunner = async (owner: string, stallOnce: boolean): Promise<ProjectionsHandle> => {
        let stalled = !stallOnce;
        const runner = await startProjections({
          store: await openStore(),
          sql: (await openStore()).sql,
          instanceId: owner,
          leaseTtlMs: 400,
          tickMs: 20,
          batchSize: 10,
          backoff: { initialMs: 20, maxMs: 100 },
          projections: [
            countingProjection({
              owner,
              inside: async (events: readonly RecordedEvent[]) => {
                if (!stalled && events.length > 0) {
                  stalled = true;
                  // Longer than the lease: the standby's takeover waits on this transaction's row lock.
                  await new Promise((r) => setTimeout(r, 1500));
                }
              },
              handled: (events) => {
                for (const e of events) {
                  if (committed.has(e.id)) duplicates.push(e.id);
                  committed.set(e.id, owner);
                }
              },
            }),
          ],
        });
        cleanups.push(() => runner.close());
        return runner;
      };
      const a = await makeRunner('A', true);
      await eventually(async () => (await a.status())[0]?.isLeader);
      const b = await makeRunner('B', false);
      await append(store, 100);
      await rowsAre(store.sql, 100);
      expect(duplicates).toEqual([]);
      const counts = await owners(store.sql);
      expect(Object.values(counts).reduce((x, y) => x + y, 0)).toBe(100);
      const statuses = [(await a.status())[0], (await b.status())[0]];
      expect(statuses.filter((s) => s?.isLeader).length).toBe(1);
    }, 120_000);
  },
);
