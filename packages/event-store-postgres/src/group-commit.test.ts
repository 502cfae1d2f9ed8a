import { randomUUID } from 'node:crypto';
import {
  type AppendResult,
  type EventData,
  EventIdConflictError,
  type RecordedEvent,
  StoreUnavailableError,
  verifyStream,
  WrongExpectedRevisionError,
} from '@muster/event-store';
import { collect } from '@muster/event-store/contract';
import fc from 'fast-check';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openPostgresEventStore, type PostgresEventStore } from './index.js';
import { MIGRATIONS } from './schema.js';
import { createTestDatabase, type TestDatabase } from './test-support/database.js';
import { sleep } from './test-support/subscription-log.js';
import { TcpProxy } from './test-support/tcp-proxy.js';

const database = await createTestDatabase('batch');

const ev = (type: string, data: Record<string, unknown> = {}, id?: string): EventData => ({
  ...(id ? { id } : {}),
  type,
  data,
});

type Outcome = { ok: true; result: AppendResult } | { ok: false; error: unknown };
const settle = (p: Promise<AppendResult>): Promise<Outcome> =>
  p.then(
    (result) => ({ ok: true as const, result }),
    (error: unknown) => ({ ok: false as const, error }),
  );
const xidOf = (position: string) => position.split('-')[0];

if (database.skip) {
  describe.skip(`postgres group commit (skipped: ${database.skip})`, () => {
    it('needs DATABASE_URL', () => {});
  });
  process.stderr.write(`[postgres] group commit tests skipped: ${database.skip}\n`);
} else {
  const url = database.url as string;
  const admin = new pg.Client({ connectionString: url });
  const extra: TestDatabase[] = [];

  /** Holds a stream's append lock on a connection of its own, so that a batch with it waits. */
  const holdStream = async (stream: string, connectionString = url) => {
    const client = new pg.Client({ connectionString });
    await client.connect();
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 7150735))', [stream]);
    const pid = (client as unknown as { processID: number }).processID;
    return {
      pid,
      release: async () => {
        await client.query('COMMIT').catch(() => {});
        await client.end().catch(() => {});
      },
    };
  };

  /** Backends of this database waiting on a lock, other than `except`. */
  const lockWaiters = async (except: number) => {
    const { rows } = await admin.query<{ pid: number }>(
      `SELECT pid FROM pg_stat_activity
        WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> $1`,
      [except],
    );
    return rows.map((r) => r.pid);
  };

  const until = async (what: string, predicate: () => Promise<boolean>, timeoutMs = 10_000) => {
    const deadline = Date.now() + timeoutMs;
    while (!(await predicate())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await sleep(20);
    }
  };

  describe('postgres group commit', () => {
    beforeAll(async () => {
      await admin.connect();
    });
    afterAll(async () => {
      await admin.end();
      for (const db of extra) await db.drop?.();
      await database.drop?.();
    });

    it('one batch: each append has its own outcome, and the refused ones leave nothing behind', async () => {
      // One batch at a time: appends issued in one turn of the event loop travel together.
      const store = await openPostgresEventStore({ connectionString: url, maxBatchesInFlight: 1 });
      const p = `mixed-${randomUUID().slice(0, 8)}`;
      try {
        const existing = [ev('Existing', { n: 0 }, randomUUID())];
        await store.appendToStream(`${p}-replayed`, existing, { expectedRevision: 'no_stream' });
        await store.appendToStream(`${p}-behind`, [ev('First')]);
        const takenId = randomUUID();
        await store.appendToStream(`${p}-owner`, [ev('Owns', {}, takenId)]);
        const twice = [ev('Twice', {}, randomUUID())];

        const outcomes = await Promise.all([
          settle(store.appendToStream(`${p}-new`, [ev('Fresh')], { expectedRevision: 'no_stream' })),
          settle(store.appendToStream(`${p}-behind`, [ev('Stale')], { expectedRevision: 5 })),
          settle(store.appendToStream(`${p}-replayed`, existing, { expectedRevision: 'no_stream' })),
          settle(store.appendToStream(`${p}-thief`, [ev('Steals', {}, takenId)])),
          // Two events, the second with a taken id: neither may be written.
          settle(
            store.appendToStream(`${p}-z`, [ev('Half', { k: 1 }), ev('Half', { k: 2 }, takenId)], {
              expectedRevision: 'no_stream',
            }),
          ),
          // The next append to that stream sees it untouched.
          settle(store.appendToStream(`${p}-z`, [ev('Whole')], { expectedRevision: 'no_stream' })),
          settle(store.appendToStream(`${p}-twice`, twice, { expectedRevision: 'no_stream' })),
          settle(store.appendToStream(`${p}-twice`, twice, { expectedRevision: 'no_stream' })),
          settle(store.appendToStream(`${p}-new`, [ev('Second'), ev('Third')], { expectedRevision: 0 })),
        ]);
        const [fresh, stale, replayed, thief, half, whole, twiceFirst, twiceAgain, second] = outcomes as [
          Outcome,
          Outcome,
          Outcome,
          Outcome,
          Outcome,
          Outcome,
          Outcome,
          Outcome,
          Outcome,
        ];

        expect(fresh.ok && fresh.result.nextExpectedRevision).toBe(0);
        expect(!stale.ok && stale.error).toBeInstanceOf(WrongExpectedRevisionError);
        expect(!stale.ok && (stale.error as WrongExpectedRevisionError).actual).toBe(0);
        expect(replayed.ok && replayed.result.idempotent).toBe(true);
        expect(!thief.ok && thief.error).toBeInstanceOf(EventIdConflictError);
        expect(!half.ok && half.error).toBeInstanceOf(EventIdConflictError);
        expect(whole.ok && whole.result.nextExpectedRevision).toBe(0);
        expect(twiceFirst.ok && twiceFirst.result.idempotent).toBe(false);
        expect(twiceAgain.ok && twiceAgain.result.idempotent).toBe(true);
        expect(twiceAgain.ok && twiceAgain.result.events.map((e) => e.id)).toEqual(twice.map((e) => e.id));
        expect(second.ok && second.result.nextExpectedRevision).toBe(2);

        // The written appends were one transaction: they share its id, in issue order.
        const written = [fresh, whole, twiceFirst, second].map((o) => (o.ok ? o.result : null));
        const xids = new Set(written.flatMap((r) => r?.events.map((e) => xidOf(e.position)) ?? []));
        expect(xids.size).toBe(1);
        const positions = written.flatMap((r) => r?.events.map((e) => e.position) ?? []);
        expect([...positions].sort()).toEqual(positions);

        const log = await collect(store.readAll({ filter: { streamPrefixes: [p] } }));
        const byStream = (s: string) => log.filter((e) => e.stream === s);
        expect(byStream(`${p}-new`).map((e) => e.type)).toEqual(['Fresh', 'Second', 'Third']);
        expect(byStream(`${p}-behind`).map((e) => e.type)).toEqual(['First']);
        expect(byStream(`${p}-replayed`).map((e) => e.type)).toEqual(['Existing']);
        expect(byStream(`${p}-thief`)).toEqual([]);
        expect(byStream(`${p}-z`).map((e) => e.type)).toEqual(['Whole']);
        expect(byStream(`${p}-twice`).map((e) => e.type)).toEqual(['Twice']);
        for (const stream of new Set(log.map((e) => e.stream))) {
          expect((await verifyStream(byStream(stream))).ok).toBe(true);
        }
        // What the appends returned is what the log holds.
        const returned = new Map(
          written.flatMap((r) => r?.events ?? []).map((e): [string, RecordedEvent] => [e.id, e]),
        );
        for (const event of log) if (returned.has(event.id)) expect(returned.get(event.id)).toEqual(event);
      } finally {
        await store.close();
      }
    });

    it('keeps every stream in issue order with several batches in flight (property)', async () => {
      const store = await openPostgresEventStore({ connectionString: url, maxBatchesInFlight: 4 });
      try {
        await fc.assert(
          fc.asyncProperty(
            fc.array(fc.integer({ min: 0, max: 4 }), { minLength: 20, maxLength: 120 }),
            fc.array(fc.boolean(), { minLength: 120, maxLength: 120 }),
            async (streamOfEach, exact) => {
              const p = `order-${randomUUID().slice(0, 8)}`;
              const next = [0, 0, 0, 0, 0];
              // Issued without waiting: each append to a stream expects the revision the one issued
              // just before it will produce (or 'any').
              const issued = streamOfEach.map((s, k) => {
                const revision = next[s] as number;
                next[s] = revision + 1;
                const expectedRevision = exact[k] ? (revision === 0 ? 'no_stream' : revision - 1) : 'any';
                return store.appendToStream(`${p}-${s}`, [ev('Ordered', { k, revision })], {
                  expectedRevision,
                });
              });
              const results = await Promise.all(issued);
              results.forEach((r, k) => {
                const s = streamOfEach[k] as number;
                const expected = streamOfEach.slice(0, k).filter((x) => x === s).length;
                expect(r.nextExpectedRevision).toBe(expected);
              });
              for (let s = 0; s < 5; s++) {
                const count = next[s] as number;
                if (count === 0) continue;
                const events = await collect(store.readStream(`${p}-${s}`));
                expect(events.map((e) => (e.data as { revision: number }).revision)).toEqual(
                  Array.from({ length: count }, (_, i) => i),
                );
                expect((await verifyStream(events)).ok).toBe(true);
              }
              // The global order agrees with every stream's order.
              const all = await collect(store.readAll({ filter: { streamPrefixes: [p] } }));
              expect(all.length).toBe(streamOfEach.length);
              for (let s = 0; s < 5; s++) {
                const revisions = all.filter((e) => e.stream === `${p}-${s}`).map((e) => e.revision);
                expect(revisions).toEqual([...revisions].sort((a, b) => a - b));
              }
            },
          ),
          { numRuns: 15 },
        );
      } finally {
        await store.close();
      }
    });

    it('a stream is never in two batches at once: its next append waits for the batch in flight', async () => {
      const store = await openPostgresEventStore({ connectionString: url, maxBatchesInFlight: 4 });
      const p = `wait-${randomUUID().slice(0, 8)}`;
      const held = await holdStream(`${p}-held`);
      try {
        const first = settle(
          store.appendToStream(`${p}-held`, [ev('One')], { expectedRevision: 'no_stream' }),
        );
        await until(
          'the first append to wait on the lock',
          async () => (await lockWaiters(held.pid)).length > 0,
        );
        const secondDone = { value: false };
        const second = settle(
          store.appendToStream(`${p}-held`, [ev('Two')], { expectedRevision: 0 }),
        ).finally(() => {
          secondDone.value = true;
        });
        // Other streams are not held up by it.
        const other = await store.appendToStream(`${p}-free`, [ev('Free')]);
        expect(other.nextExpectedRevision).toBe(0);
        await sleep(100);
        // Only one backend waits: the second append was not sent ahead of the first.
        expect(await lockWaiters(held.pid)).toHaveLength(1);
        expect(secondDone.value).toBe(false);
        await held.release();
        const [a, b] = await Promise.all([first, second]);
        expect(a.ok && a.result.nextExpectedRevision).toBe(0);
        expect(b.ok && b.result.nextExpectedRevision).toBe(1);
      } finally {
        await held.release();
        await store.close();
      }
    });

    it('a batch whose backend is terminated: every append of it fails typed, none is written; retried, each is written once', async () => {
      const store = await openPostgresEventStore({ connectionString: url, maxBatchesInFlight: 1 });
      const p = `killed-${randomUUID().slice(0, 8)}`;
      await store.ping();
      const held = await holdStream(`${p}-0`);
      try {
        const appends = Array.from({ length: 6 }, (_, i) => ({
          stream: `${p}-${i % 3}`,
          events: [ev('Doomed', { i }, randomUUID()), ev('Doomed', { i, second: true }, randomUUID())],
        }));
        const pending = appends.map((a) => settle(store.appendToStream(a.stream, a.events)));
        let kills = 0;
        let settled = false;
        void Promise.all(pending).then(() => {
          settled = true;
        });
        // The first attempt runs on a reused connection and is retried once on a fresh one: end both.
        while (!settled && kills < 50) {
          await sleep(50);
          for (const pid of await lockWaiters(held.pid)) {
            await admin.query('SELECT pg_terminate_backend($1)', [pid]);
            kills++;
          }
        }
        const outcomes = await Promise.all(pending);
        expect(kills).toBeGreaterThan(0);
        for (const outcome of outcomes) {
          expect(outcome.ok).toBe(false);
          expect(!outcome.ok && outcome.error).toBeInstanceOf(StoreUnavailableError);
        }
        await held.release();
        const ids = appends.flatMap((a) => a.events.map((e) => e.id as string));
        const { rows } = await admin.query(
          'SELECT count(*)::int AS n FROM muster_events WHERE id = ANY($1)',
          [ids],
        );
        expect(rows[0].n).toBe(0);

        const retried = await Promise.all(appends.map((a) => store.appendToStream(a.stream, a.events)));
        expect(retried.every((r) => !r.idempotent)).toBe(true);
        const again = await Promise.all(appends.map((a) => store.appendToStream(a.stream, a.events)));
        expect(again.every((r) => r.idempotent)).toBe(true);
        const logged = await collect(store.readAll({ filter: { streamPrefixes: [p] } }));
        expect(logged.map((e) => e.id).sort()).toEqual([...ids].sort());
      } finally {
        await held.release();
        await store.close();
      }
    });

    it('a batch cut off by a connection loss may still commit: all of it or none, never half; retries write each once', async () => {
      const target = new URL(url);
      const proxy = new TcpProxy(target.hostname, Number(target.port || 5432));
      await proxy.start();
      const store = await openPostgresEventStore({
        connectionString: proxy.url(url),
        maxBatchesInFlight: 1,
        connectTimeoutMs: 1000,
      });
      const p = `cut-${randomUUID().slice(0, 8)}`;
      const held = await holdStream(`${p}-0`);
      try {
        await store.appendToStream(`${p}-1`, [ev('Before')]);
        const appends = [
          {
            stream: `${p}-0`,
            events: [ev('Cut', { i: 0 }, randomUUID())],
            expectedRevision: 'no_stream' as const,
          },
          { stream: `${p}-1`, events: [ev('Cut', { i: 1 }, randomUUID())], expectedRevision: 0 },
          // Refused inside the batch; after the cut it reports the cut like the others.
          { stream: `${p}-1`, events: [ev('Cut', { i: 2 }, randomUUID())], expectedRevision: 7 },
          {
            stream: `${p}-2`,
            events: [ev('Cut', { i: 3 }, randomUUID()), ev('Cut', { i: 4 }, randomUUID())],
            expectedRevision: 'any' as const,
          },
        ];
        const pending = appends.map((a) =>
          settle(store.appendToStream(a.stream, a.events, { expectedRevision: a.expectedRevision })),
        );
        await until('the batch to wait on the lock', async () => (await lockWaiters(held.pid)).length > 0);
        await proxy.stop();
        const outcomes = await Promise.all(pending);
        for (const outcome of outcomes) {
          expect(!outcome.ok && outcome.error).toBeInstanceOf(StoreUnavailableError);
        }
        // The server never heard that its client left: once the lock is free, it commits the batch.
        await held.release();
        const ids = appends
          .slice(0, 2)
          .concat(appends.slice(3))
          .flatMap((a) => a.events.map((e) => e.id as string));
        const count = async () =>
          (await admin.query('SELECT count(*)::int AS n FROM muster_events WHERE id = ANY($1)', [ids]))
            .rows[0].n;
        await until('the orphaned batch to finish', async () => (await lockWaiters(held.pid)).length === 0);
        await sleep(200);
        expect([0, ids.length]).toContain(await count());

        await proxy.start();
        await until('the store to reach the server again', async () =>
          store.ping().then(
            () => true,
            () => false,
          ),
        );
        const retried = await Promise.all(
          appends.map((a) =>
            settle(store.appendToStream(a.stream, a.events, { expectedRevision: a.expectedRevision })),
          ),
        );
        expect(retried.map((o) => o.ok)).toEqual([true, true, false, true]);
        expect(!retried[2]?.ok && (retried[2] as { error: unknown }).error).toBeInstanceOf(
          WrongExpectedRevisionError,
        );
        expect(await count()).toBe(ids.length);
        const events = await collect(store.readAll({ filter: { streamPrefixes: [p] } }));
        expect(
          events
            .filter((e) => e.type === 'Cut')
            .map((e) => (e.data as { i: number }).i)
            .sort(),
        ).toEqual([0, 1, 3, 4]);
      } finally {
        await held.release();
        await store.close();
        await proxy.stop();
      }
    });

    it('a batch refused as a whole is written one append at a time: the one that fails, fails alone', async () => {
      const own = await createTestDatabase('batch_timeout');
      extra.push(own);
      const ownUrl = own.url as string;
      const setup = new pg.Client({ connectionString: ownUrl });
      await setup.connect();
      await setup.query(`ALTER DATABASE ${own.name} SET lock_timeout = '300ms'`);
      await setup.end();
      const store = await openPostgresEventStore({ connectionString: ownUrl, maxBatchesInFlight: 1 });
      const held = await holdStream('timeout-0', ownUrl);
      try {
        const outcomes = await Promise.all(
          ['timeout-1', 'timeout-0', 'timeout-2', 'timeout-1'].map((s) =>
            settle(store.appendToStream(s, [ev('Timed', { s })])),
          ),
        );
        expect(outcomes.map((o) => o.ok)).toEqual([true, false, true, true]);
        const failed = outcomes[1] as { ok: false; error: unknown };
        expect(failed.error).toBeInstanceOf(StoreUnavailableError);
        expect((failed.error as Error).message).toMatch(/55P03|lock timeout/);
        expect(outcomes.map((o) => (o.ok ? o.result.nextExpectedRevision : null))).toEqual([0, null, 0, 1]);
      } finally {
        await held.release();
        await store.close();
      }
    });

    describe('pipelined appends and another writer (chainPipelinedAppends)', () => {
      /**
       * Replica B's append and replica A's two pipelined appends (P expecting r, Q expecting what P
       * would produce) queue behind the stream's lock; B's goes first. P then fails its revision
       * check, and Q's expected revision is held by B's event.
       */
      const race = async (chain: boolean, qAfterLaunch: boolean, withReplay = false) => {
        const a = await openPostgresEventStore({ connectionString: url, chainPipelinedAppends: chain });
        const b = await openPostgresEventStore({ connectionString: url });
        const stream = `chain-${randomUUID().slice(0, 8)}`;
        try {
          const start = [ev('Start', {}, randomUUID())];
          await a.appendToStream(stream, start, { expectedRevision: 'no_stream' });
          const held = await holdStream(stream);
          let outcomes: Outcome[];
          try {
            // As many events as P has: B's last one takes the revision Q expects.
            const other = settle(
              b.appendToStream(stream, [ev('Other'), ev('Other')], { expectedRevision: 0 }),
            );
            await until('B to wait', async () => (await lockWaiters(held.pid)).length >= 1);
            // A retried append in the batch sends the function down its careful path.
            const replay = withReplay
              ? settle(a.appendToStream(stream, start, { expectedRevision: 'no_stream' }))
              : null;
            const p = settle(a.appendToStream(stream, [ev('P1'), ev('P2')], { expectedRevision: 0 }));
            // Either in the same batch as P, or behind P's batch, which is in flight.
            if (qAfterLaunch) await until('A to wait', async () => (await lockWaiters(held.pid)).length >= 2);
            const q = settle(a.appendToStream(stream, [ev('Q')], { expectedRevision: 2 }));
            if (!qAfterLaunch)
              await until('A to wait', async () => (await lockWaiters(held.pid)).length >= 2);
            await held.release();
            outcomes = await Promise.all([other, p, q]);
            if (replay) expect((await replay).ok).toBe(true);
          } finally {
            await held.release();
          }
          const log = await collect(a.readStream(stream));
          return { outcomes, types: log.map((e) => e.type) };
        } finally {
          await a.close();
          await b.close();
        }
      };

      for (const [qAfterLaunch, withReplay] of [
        [false, false],
        [true, false],
        [false, true],
      ] as const) {
        const where = withReplay
          ? 'in the same batch, careful path'
          : qAfterLaunch
            ? 'in the next batch'
            : 'in the same batch';
        it(`on: a pipelined append whose predecessor failed is not written (${where})`, async () => {
          const { outcomes, types } = await race(true, qAfterLaunch, withReplay);
          const [other, p, q] = outcomes as [Outcome, Outcome, Outcome];
          expect(other.ok).toBe(true);
          expect(!p.ok && p.error).toBeInstanceOf(WrongExpectedRevisionError);
          expect(!q.ok && q.error).toBeInstanceOf(WrongExpectedRevisionError);
          expect(!q.ok && (q.error as WrongExpectedRevisionError).actual).toBe(2);
          expect(!q.ok && (q.error as Error).message).toMatch(/issued behind/);
          expect(types).toEqual(['Start', 'Other', 'Other']);
        });
      }

      it("off (the default): that append lands on the other writer's event", async () => {
        const { outcomes, types } = await race(false, false);
        expect(outcomes.map((o) => o.ok)).toEqual([true, false, true]);
        expect(types).toEqual(['Start', 'Other', 'Other', 'Q']);
      });

      it('on: chained appends whose predecessors succeed are written as usual, also in later batches', async () => {
        const a = await openPostgresEventStore({ connectionString: url, chainPipelinedAppends: true });
        const stream = `chained-${randomUUID().slice(0, 8)}`;
        try {
          const results = await Promise.all(
            Array.from({ length: 40 }, (_, i) =>
              a.appendToStream(stream, [ev('Link', { i }), ev('Link', { i, second: true })], {
                expectedRevision: i === 0 ? 'no_stream' : 2 * i - 1,
              }),
            ),
          );
          expect(results.map((r) => r.nextExpectedRevision)).toEqual(
            Array.from({ length: 40 }, (_, i) => 2 * i + 1),
          );
          const events = await collect(a.readStream(stream));
          expect((await verifyStream(events)).ok).toBe(true);
        } finally {
          await a.close();
        }
      });
    });

    it('upgrades a database of schema version 1; the append functions of both versions share one chain', async () => {
      const old = await createTestDatabase('batch_upgrade');
      extra.push(old);
      const oldUrl = old.url as string;
      const client = new pg.Client({ connectionString: oldUrl });
      await client.connect();
      try {
        // What release 1 left behind.
        await client.query(
          'CREATE TABLE muster_event_store_schema (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())',
        );
        await client.query((MIGRATIONS[0] as { sql: string }).sql);
        await client.query('INSERT INTO muster_event_store_schema (version) VALUES (1)');

        const store: PostgresEventStore = await openPostgresEventStore({ connectionString: oldUrl });
        try {
          const { rows } = await client.query(
            'SELECT version FROM muster_event_store_schema ORDER BY version',
          );
          expect(rows.map((r) => r.version)).toEqual(MIGRATIONS.map((m) => m.version));
          await store.appendToStream('upgraded', [ev('ByBatch')], { expectedRevision: 'no_stream' });
          // A replica still on release 1 appends with the old function meanwhile.
          const { buildLegacyCall } = await import('./test-support/legacy-append.js');
          await client.query(buildLegacyCall('upgraded', 0, ev('ByOldRelease')));
          await store.appendToStream('upgraded', [ev('ByBatchAgain')], { expectedRevision: 1 });
          const events = await collect(store.readStream('upgraded'));
          expect(events.map((e) => e.type)).toEqual(['ByBatch', 'ByOldRelease', 'ByBatchAgain']);
          expect((await verifyStream(events)).ok).toBe(true);
        } finally {
          await store.close();
        }
      } finally {
        await client.end();
      }
    });
  });
}
