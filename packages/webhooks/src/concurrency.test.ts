import { describe, expect, it } from 'vitest';
import { postgresBackend, sqliteBackend } from './test-support/databases.js';
import { change, produce } from './test-support/feed.js';
import { harness } from './test-support/harness.js';
import type { Capture, Receiver } from './test-support/receiver.js';

async function until(check: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Counts how many requests for one webhook-id are open at the receiver at once. */
function trackOverlap(receiver: Receiver) {
  const open = new Map<string, number>();
  let maxOverlap = 0;
  receiver.respond = async (c: Capture) => {
    const n = (open.get(c.id) ?? 0) + 1;
    open.set(c.id, n);
    maxOverlap = Math.max(maxOverlap, n);
    await new Promise((r) => setTimeout(r, 1 + (c.index % 7)));
    open.set(c.id, (open.get(c.id) ?? 1) - 1);
    return { status: 200 };
  };
  return () => maxOverlap;
}

function assertOrdered(captures: Capture[]) {
  const last = new Map<string, number>();
  for (const c of captures) {
    const key = `${c.path}/${c.json.data.missionId}`;
    const version = Number(c.json.data.version);
    expect(version, key).toBe((last.get(key) ?? 0) + 1);
    last.set(key, version);
  }
}

describe.skipIf(postgresBackend.skip)(
  `competing dispatchers on postgres${postgresBackend.skip ? ` (skipped: ${postgresBackend.skip})` : ''}`,
  () => {
    const h = harness(postgresBackend);

    it('two dispatchers claim with SKIP LOCKED: nothing is sent twice or concurrently, order per mission holds', async () => {
      const { sql, openAnother } = await h.db();
      const receiver = await h.receiver();
      const overlap = trackOverlap(receiver);
      const a = await h.service(sql, { pollIntervalMs: 20, maxInFlight: 16, dispatcherId: 'dsp_a' });
      const b = await h.service(await openAnother(), {
        pollIntervalMs: 20,
        maxInFlight: 16,
        plan: false,
        dispatcherId: 'dsp_b',
      });
      for (const path of ['a', 'b', 'c']) {
        await a.createSubscription('kenya', { url: `${receiver.url}?${path}` });
      }
      await a.start();
      await b.start();
      const missions = Array.from({ length: 8 }, (_, i) => `m${i}`);
      for (let round = 0; round < 15; round++) {
        await produce(
          sql,
          missions.map((m) => change(m)),
        );
        a.notifyChanges();
      }
      const expected = 15 * missions.length * 3;
      await receiver.waitFor(expected, 30_000);
      await until(async () => {
        const [row] = await sql.query<{ n: number }>(
          `SELECT COUNT(*) AS n FROM webhook_deliveries WHERE status = 'delivered'`,
        );
        return Number(row?.n) === expected;
      });
      expect(receiver.captures).toHaveLength(expected);
      expect(new Set(receiver.captures.map((c) => c.id)).size).toBe(expected);
      expect(overlap()).toBe(1);
      assertOrdered(receiver.captures);
      // Both did some of the work.
      const owners = await sql.query<{ dispatcher_id: string; n: number }>(
        'SELECT dispatcher_id, COUNT(*) AS n FROM webhook_attempts GROUP BY dispatcher_id ORDER BY dispatcher_id',
      );
      expect(owners.map((o) => o.dispatcher_id)).toEqual(['dsp_a', 'dsp_b']);
      expect(owners.reduce((sum, o) => sum + Number(o.n), 0)).toBe(expected);
      expect(a.dispatcher.isLeader && b.dispatcher.isLeader).toBe(true);
    });
  },
);

describe('the SQLite dispatcher role', () => {
  const h = harness(sqliteBackend);

  it('one process dispatches under a lease row; another takes over when it stops', async () => {
    const { sql } = await h.db();
    const receiver = await h.receiver();
    const a = await h.service(sql, { pollIntervalMs: 20, dispatcherId: 'dsp_a' });
    const b = await h.service(sql, { pollIntervalMs: 20, dispatcherId: 'dsp_b', plan: false });
    await a.createSubscription('kenya', { url: receiver.url });
    await a.start();
    await until(() => a.dispatcher.isLeader);
    await b.start();
    await produce(sql, [change('m1'), change('m2'), change('m1')]);
    a.notifyChanges();
    await receiver.waitFor(3);
    expect(b.dispatcher.isLeader).toBe(false);
    const [lease] = await sql.query<{ owner: string }>('SELECT owner FROM webhook_leases');
    expect(lease?.owner).toBe('dsp_a');

    await a.stop();
    await until(() => b.dispatcher.isLeader, 5_000);
    await produce(sql, [change('m1')]);
    b.planner.wake();
    await b.planner.catchUp();
    b.dispatcher.wake();
    await receiver.waitFor(4);
    assertOrdered(receiver.captures);
  });
});
