import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { sqliteBackend } from './test-support/databases.js';
import { change, produce } from './test-support/feed.js';
import { drain, harness, settle } from './test-support/harness.js';

describe('ordered queues', () => {
  const h = harness(sqliteBackend);

  it('keeps one head per non-empty queue and delivers each queue in version order, whatever fails and whatever is replayed (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({
            missions: fc.array(fc.constantFrom('m1', 'm2', 'm3'), { minLength: 0, maxLength: 4 }),
            failureRate: fc.constantFrom(0, 0.5, 1),
            replay: fc.boolean(),
            advanceMs: fc.constantFrom(0, 5_000, 600_000),
          }),
          { minLength: 1, maxLength: 6 },
        ),
        fc.infiniteStream(fc.double({ min: 0, max: 1, noNaN: true })),
        async (steps, coins) => {
          const { sql } = await h.db();
          const clock = h.clock();
          const receiver = await h.receiver(clock);
          const service = await h.service(sql, { clock, retryScheduleMs: [5_000, 600_000] });
          const sub = await service.createSubscription('kenya', { url: receiver.url });
          const flips = coins[Symbol.iterator]();
          let failureRate = 0;
          receiver.respond = () => ({ status: (flips.next().value as number) < failureRate ? 503 : 200 });
          const invariant = async () => {
            const rows = await sql.query<{ queue: string; status: string; head: number }>(
              'SELECT queue, status, head FROM webhook_deliveries',
            );
            const queues = new Map<string, { pending: number; heads: number }>();
            for (const row of rows) {
              if (row.status !== 'pending') {
                expect(Number(row.head)).toBe(0);
                continue;
              }
              const q = queues.get(row.queue) ?? { pending: 0, heads: 0 };
              q.pending++;
              q.heads += Number(row.head);
              queues.set(row.queue, q);
            }
            for (const q of queues.values()) expect(q.heads).toBe(1);
            // What a listing shows: only a head has a next attempt; the rest say they wait.
            const heads = new Set(
              (await sql.query<{ id: string }>('SELECT id FROM webhook_deliveries WHERE head = 1')).map(
                (r) => r.id,
              ),
            );
            for (const d of (await service.listDeliveries('kenya', sub.id, { limit: 200 })).items) {
              const pending = d.status === 'pending';
              expect({ due: d.nextAttemptAt !== null, waiting: d.waitingBehindEarlier }).toEqual({
                due: pending && heads.has(d.id),
                waiting: pending && !heads.has(d.id),
              });
            }
          };
          for (const step of steps) {
            failureRate = step.failureRate;
            if (step.missions.length > 0)
              await produce(
                sql,
                step.missions.map((m) => change(m)),
              );
            await drain(service);
            await invariant();
            if (step.replay) {
              const [last] = (await service.listDeliveries('kenya', sub.id, { limit: 1 })).items;
              if (last) await service.replayDelivery('kenya', last.id);
              await invariant();
            }
            clock.advance(step.advanceMs);
          }
          failureRate = 0;
          await settle(service, sql, clock);
          await invariant();
          // Everything scheduled was delivered, and each mission's first deliveries came in order.
          const pending = await sql.query(`SELECT id FROM webhook_deliveries WHERE status = 'pending'`);
          expect(pending).toEqual([]);
          const firstSeen = new Map<string, number[]>();
          const seen = new Set<string>();
          for (const c of receiver.captures) {
            if (seen.has(c.id)) continue;
            seen.add(c.id);
            const mission = String(c.json.data.missionId);
            firstSeen.set(mission, [...(firstSeen.get(mission) ?? []), Number(c.json.data.version)]);
          }
          for (const versions of firstSeen.values()) {
            expect(versions).toEqual(versions.map((_, i) => i + 1));
          }
        },
      ),
      { numRuns: 12 },
    );
  }, 120_000);

  it('purges what is older than the retention period, keeping what still waits', async () => {
    const { sql } = await h.db();
    const clock = h.clock();
    const receiver = await h.receiver(clock);
    const service = await h.service(sql, { clock, retentionMs: 24 * 3600_000 });
    const sub = await service.createSubscription('kenya', { url: receiver.url });
    await produce(sql, [change('m1'), change('m2')]);
    receiver.respond = (c) => ({ status: c.json.data.missionId === 'm1' ? 200 : 500 });
    await drain(service);
    clock.advance(2 * 24 * 3600_000);
    const purged = await service.purgeExpired();
    expect(purged).toEqual({ messages: 1, deliveries: 1, attempts: 2 });
    const left = (await service.listDeliveries('kenya', sub.id)).items;
    expect(left.map((d) => [d.missionId, d.status])).toEqual([['m2', 'pending']]);
  });
});
