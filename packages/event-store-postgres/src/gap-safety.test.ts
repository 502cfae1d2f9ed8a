import { randomUUID } from 'node:crypto';
import { DEFAULT_LIMITS, type EventData, prepareAppend, type RecordedEvent } from '@muster/event-store';
import { collect } from '@muster/event-store/contract';
import fc from 'fast-check';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AppendRow, buildBatchCall } from './append.js';
import { openPostgresEventStore, type PostgresEventStore } from './index.js';
import { createTestDatabase } from './test-support/database.js';
import { SubscriptionLog, sleep } from './test-support/subscription-log.js';

const database = await createTestDatabase('gap');

/**
 * An append made through the store's own function on a raw connection inside BEGIN, left open:
 * the slow transaction of a real system (a replica that stalls, a long GC pause mid-append).
 */
async function openAppend(
  client: pg.Client,
  stream: string,
  events: EventData[],
): Promise<{ position: string; ids: string[] }> {
  const prepared = prepareAppend(stream, events, 'any', DEFAULT_LIMITS, randomUUID);
  const recordedAt = new Date().toISOString();
  const { call } = buildBatchCall([prepared], recordedAt);
  await client.query('BEGIN');
  const { rows } = await client.query<AppendRow>(call);
  const last = rows[rows.length - 1] as AppendRow;
  expect(last.o_outcome).toBe('written');
  return {
    position: `${(last.o_transaction_id as string).padStart(20, '0')}-${(last.o_position as string).padStart(20, '0')}`,
    ids: prepared.events.map((e) => e.id),
  };
}

const ev = (type: string, data: Record<string, unknown> = {}): EventData => ({ type, data });
const globalPosition = (position: string) => BigInt(position.split('-')[1] as string);

function assertStrictlyIncreasing(events: RecordedEvent[]): void {
  for (let i = 1; i < events.length; i++) {
    expect((events[i - 1] as RecordedEvent).position < (events[i] as RecordedEvent).position).toBe(true);
  }
}

if (database.skip) {
  describe.skip(`postgres gap safety (skipped: ${database.skip})`, () => {
    it('needs DATABASE_URL', () => {});
  });
  process.stderr.write(`[postgres] gap safety skipped: ${database.skip}\n`);
} else {
  const url = database.url as string;

  describe('postgres gap safety', () => {
    let reader: PostgresEventStore;
    let writer: PostgresEventStore;
    const raw: pg.Client[] = [];

    const rawClient = async () => {
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      raw.push(client);
      return client;
    };

    beforeAll(async () => {
      // A minute-long poll: anything delivered in seconds was woken by NOTIFY or by the
      // held-back re-check, never by the fallback poll.
      reader = await openPostgresEventStore({
        connectionString: url,
        pollIntervalMs: 60_000,
        visibilityWaitMs: 200,
      });
      writer = await openPostgresEventStore({ connectionString: url, pollIntervalMs: 60_000 });
    });
    afterAll(async () => {
      for (const client of raw) await client.end().catch(() => {});
      await reader?.close();
      await writer?.close();
      await database.drop?.();
    });

    const subscribe = async (prefix: string) => {
      const log = new SubscriptionLog(
        reader.subscribeToAll({
          fromPosition: (await reader.headPosition()) ?? 'start',
          filter: { streamPrefixes: [prefix] },
        }),
      );
      await log.until('caught-up', (l) => l.caughtUp);
      return log;
    };

    it('holds delivery behind an open append, then delivers everything once, in commit order', async () => {
      const prefix = `gap-${randomUUID().slice(0, 8)}`;
      const log = await subscribe(prefix);
      try {
        const slowClient = await rawClient();
        const slow = await openAppend(slowClient, `${prefix}-slow`, [
          ev('Slow', { n: 0 }),
          ev('Slow', { n: 1 }),
        ]);

        const fast: RecordedEvent[] = [];
        for (let i = 0; i < 5; i++) {
          const r = await writer.appendToStream(`${prefix}-fast-${i % 2}`, [ev('Fast', { i })]);
          fast.push(...r.events);
        }
        // The later appends drew later transaction ids: they sort after the open one.
        for (const e of fast) expect(e.position > slow.position).toBe(true);
        // They are committed and readable by stream ...
        expect(await collect(writer.readStream(`${prefix}-fast-0`))).toHaveLength(3);

        // ... but a subscriber delivers nothing past the open transaction while it is open.
        await sleep(500);
        expect(log.events).toEqual([]);
        expect(log.error).toBeNull();
        expect(await collect(reader.readAll({ filter: { streamPrefixes: [prefix] } }))).toEqual([]);
        const head = await reader.headPosition();
        expect(head === null || head < slow.position).toBe(true);

        await slowClient.query('COMMIT');
        await log.until('7 events', (l) => l.events.length >= 7);
        await sleep(300);

        expect(log.events.map((e) => e.id)).toEqual([...slow.ids, ...fast.map((e) => e.id)]);
        assertStrictlyIncreasing(log.events);
        const logged = await collect(reader.readAll({ filter: { streamPrefixes: [prefix] } }));
        expect(log.events.map((e) => e.id)).toEqual(logged.map((e) => e.id));
        expect(log.events).toEqual(logged);
        expect(log.error).toBeNull();
      } finally {
        await log.close();
      }
    });

    it('a subscriber that restarts from any checkpoint it was given never skips a late commit', async () => {
      const prefix = `gapck-${randomUUID().slice(0, 8)}`;
      const start = (await reader.headPosition()) ?? 'start';
      const slowClient = await rawClient();
      const slow = await openAppend(slowClient, `${prefix}-slow`, [ev('Slow')]);
      await writer.appendToStream(`${prefix}-fast`, [ev('Fast', { i: 0 }), ev('Fast', { i: 1 })]);

      // Checkpoints handed out while the slow transaction is open stay below it.
      const first = new SubscriptionLog(
        reader.subscribeToAll({ fromPosition: start, filter: { streamPrefixes: [prefix] } }),
      );
      await first.until('caught-up', (l) => l.caughtUp);
      expect(first.events).toEqual([]);
      const checkpoint = first.checkpoint ?? start;
      expect(checkpoint === 'start' || checkpoint < slow.position).toBe(true);
      await first.close();

      await slowClient.query('COMMIT');
      const resumed = new SubscriptionLog(
        reader.subscribeToAll({ fromPosition: checkpoint, filter: { streamPrefixes: [prefix] } }),
      );
      try {
        await resumed.until('3 events', (l) => l.events.length >= 3);
        expect(resumed.events.map((e) => e.type)).toEqual(['Slow', 'Fast', 'Fast']);
        expect(resumed.events[0]?.id).toBe(slow.ids[0]);
      } finally {
        await resumed.close();
      }
    });

    it('a rolled-back append leaves a sequence gap that no one waits on', async () => {
      const prefix = `rollback-${randomUUID().slice(0, 8)}`;
      const log = await subscribe(prefix);
      try {
        const client = await rawClient();
        const rolled = await openAppend(client, `${prefix}-rolled`, [ev('Doomed')]);
        const after = await writer.appendToStream(`${prefix}-after`, [ev('After')]);
        await sleep(200);
        expect(log.events).toEqual([]);

        // A rollback sends no notification; the reader's poll is a minute away.
        await client.query('ROLLBACK');
        await log.until('the event after the rollback', (l) => l.events.length >= 1, 5000);
        expect(log.events.map((e) => e.id)).toEqual([after.events[0]?.id]);

        // The rolled-back row drew a sequence value that no event will ever have.
        const rolledPos = globalPosition(rolled.position);
        expect(globalPosition(after.position) > rolledPos).toBe(true);
        const all = await collect(reader.readAll({ fromPosition: 'start' }));
        expect(all.some((e) => globalPosition(e.position) === rolledPos)).toBe(false);
        expect(all.some((e) => e.id === rolled.ids[0])).toBe(false);
        // Its id was never recorded: it can be used again.
        const reused = await writer.appendToStream(`${prefix}-rolled`, [
          { id: rolled.ids[0] as string, type: 'Retried', data: {} },
        ]);
        expect(reused.idempotent).toBe(false);
        await log.until('the reused id', (l) => l.events.length >= 2);
        expect(log.events.map((e) => e.type)).toEqual(['After', 'Retried']);
      } finally {
        await log.close();
      }
    });

    it('live subscriptions of one store are woken by appends of another through NOTIFY', async () => {
      const prefix = `notify-${randomUUID().slice(0, 8)}`;
      const log = await subscribe(prefix);
      try {
        const started = Date.now();
        await writer.appendToStream(`${prefix}-1`, [ev('Notified')]);
        await log.until('the notified event', (l) => l.events.length === 1, 5000);
        // Far below the reader's 60 s poll.
        expect(Date.now() - started).toBeLessThan(5000);

        // Kill the reader's listening connection: it reconnects and still hears about appends.
        const admin = await rawClient();
        const killed = await admin.query(
          `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
            WHERE datname = current_database() AND pid <> pg_backend_pid()
              AND (query LIKE 'LISTEN%' OR query LIKE 'SELECT pg_notify%')`,
        );
        expect(killed.rowCount).toBeGreaterThanOrEqual(1);
        await sleep(500);
        await writer.appendToStream(`${prefix}-1`, [ev('NotifiedAgain')]);
        await log.until('the second notified event', (l) => l.events.length === 2, 5000);
        expect(log.error).toBeNull();
      } finally {
        await log.close();
      }
    });

    it('under any commit order of concurrent open appends, delivery is complete, unique and ordered', async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.integer({ min: 2, max: 4 }).chain((n) =>
            fc.record({
              n: fc.constant(n),
              commitOrder: fc.shuffledSubarray(
                Array.from({ length: n }, (_, i) => i),
                { minLength: n, maxLength: n },
              ),
              rollback: fc.array(fc.boolean(), { minLength: n, maxLength: n }),
              between: fc.array(fc.integer({ min: 0, max: 2 }), { minLength: n, maxLength: n }),
            }),
          ),
          async ({ n, commitOrder, rollback, between }) => {
            const prefix = `prop-${randomUUID().slice(0, 8)}`;
            const log = await subscribe(prefix);
            const clients = await Promise.all(Array.from({ length: n }, () => rawClient()));
            try {
              const kept = new Set<string>();
              for (let i = 0; i < n; i++) {
                const open = await openAppend(clients[i] as pg.Client, `${prefix}-open-${i}`, [
                  ev('Open', { i }),
                ]);
                if (!rollback[i]) for (const id of open.ids) kept.add(id);
                for (let j = 0; j < (between[i] ?? 0); j++) {
                  const r = await writer.appendToStream(`${prefix}-between`, [ev('Between', { i, j })]);
                  kept.add(r.events[0]?.id as string);
                }
              }
              for (const i of commitOrder) {
                const client = clients[i] as pg.Client;
                await client.query(rollback[i] ? 'ROLLBACK' : 'COMMIT');
                // As the store does after each append it commits (a rollback notifies no one).
                if (!rollback[i]) await client.query(`SELECT pg_notify('muster_events', 'raw')`);
                await sleep(20);
              }
              await log.until(`${kept.size} events`, (l) => l.events.length >= kept.size);
              await sleep(100);
              expect(new Set(log.events.map((e) => e.id))).toEqual(kept);
              expect(log.events).toHaveLength(kept.size);
              assertStrictlyIncreasing(log.events);
              const logged = await collect(reader.readAll({ filter: { streamPrefixes: [prefix] } }));
              expect(log.events.map((e) => e.id)).toEqual(logged.map((e) => e.id));
            } finally {
              await log.close();
              for (const client of clients) await client.end().catch(() => {});
            }
          },
        ),
        { numRuns: 10 },
      );
    }, 120_000);
  });
}
