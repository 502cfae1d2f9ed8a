import { randomUUID } from 'node:crypto';
import {
  type EventData,
  StoreUnavailableError,
  type StreamTail,
  verifyStream,
  WrongExpectedRevisionError,
} from '@muster/event-store';
import { collect, MessageReader } from '@muster/event-store/contract';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openPostgresEventStore } from './index.js';
import { createTestDatabase } from './test-support/database.js';
import { sleep } from './test-support/subscription-log.js';
import { TcpProxy } from './test-support/tcp-proxy.js';

/**
 * `appendUnderLock` where the contract suite cannot look: another replica on the same database,
 * the lock held elsewhere, lost connections, wake-ups of other processes, and the stamp.
 */
const database = await createTestDatabase('locked');

const ev = (type: string, data: Record<string, unknown> = {}): EventData => ({ type, data });

if (database.skip) {
  describe.skip(`postgres appendUnderLock (skipped: ${database.skip})`, () => {
    it('needs DATABASE_URL', () => {});
  });
  process.stderr.write(`[postgres] appendUnderLock tests skipped: ${database.skip}\n`);
} else {
  const url = database.url as string;
  const admin = new pg.Client({ connectionString: url });

  /** A connection of its own that holds a lock (the stream's append lock, or a table lock). */
  const hold = async (sql: string, values: unknown[] = []) => {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    await client.query('BEGIN');
    await client.query(sql, values);
    const pid = (client as unknown as { processID: number }).processID;
    let released = false;
    return {
      pid,
      release: async () => {
        if (released) return;
        released = true;
        await client.query('COMMIT').catch(() => {});
        await client.end().catch(() => {});
      },
    };
  };
  const holdStream = (stream: string) =>
    hold('SELECT pg_advisory_xact_lock(hashtextextended($1, 7150735))', [stream]);
  /** Every INSERT into the events waits (SELECTs do not): an append stops inside its statement. */
  const holdInserts = () => hold('LOCK TABLE muster_events IN SHARE MODE');

  /** Backends of this database waiting on a lock, other than the holders'. */
  const lockWaiters = async (...except: number[]) => {
    const { rows } = await admin.query<{ pid: number }>(
      `SELECT pid FROM pg_stat_activity
        WHERE datname = current_database() AND wait_event_type = 'Lock' AND NOT (pid = ANY($1))`,
      [except],
    );
    return rows.map((r) => r.pid);
  };
  const until = async (what: string, predicate: () => Promise<boolean>, timeoutMs = 10_000) => {
    const deadline = Date.now() + timeoutMs;
    while (!(await predicate())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await sleep(10);
    }
  };
  const waiting = (n: number, ...except: number[]) =>
    until(`${n} backends waiting on a lock`, async () => (await lockWaiters(...except)).length >= n);

  describe('postgres appendUnderLock', () => {
    beforeAll(async () => {
      await admin.connect();
      // Creates the schema before the first test holds a table lock on it.
      await (await openPostgresEventStore({ connectionString: url })).close();
    });
    afterAll(async () => {
      await admin.end();
      await database.drop?.();
    });

    it('decides on what another replica wrote: while it appends without pause, no locked decision conflicts or is lost', async () => {
      const [busy, quiet] = await Promise.all([
        openPostgresEventStore({ connectionString: url, poolSize: 4 }),
        openPostgresEventStore({ connectionString: url, poolSize: 4 }),
      ]);
      const stream = `contended-${randomUUID().slice(0, 8)}`;
      let stop = false;
      let busyWrites = 0;
      let busyConflicts = 0;
      try {
        // The busy replica reads the revision and appends on it, as a writer would, without pause.
        const hammer = Array.from({ length: 3 }, async (_, w) => {
          while (!stop) {
            const revision = await busy.streamRevision(stream);
            try {
              await busy.appendToStream(stream, [ev('Busy', { w })], {
                expectedRevision: revision ?? 'no_stream',
              });
              busyWrites++;
            } catch (error) {
              if (!(error instanceof WrongExpectedRevisionError)) throw error;
              busyConflicts++;
            }
          }
        });
        const decided: Array<{ after: number | null; told: number }> = [];
        let known: number | null = null;
        for (let i = 0; i < 30; i++) {
          // Behind the other replica by at least one write, every time.
          const seen = busyWrites;
          await until('a write of the busy replica', async () => busyWrites > seen);
          const result = await quiet.appendUnderLock(stream, { knownRevision: known }, (tail) => {
            decided.push({ after: tail.revision, told: tail.events.length });
            return [ev('Quiet', { i, after: tail.revision })];
          });
          known = result?.nextExpectedRevision ?? null;
        }
        stop = true;
        await Promise.all(hammer);
        const log = await collect(quiet.readStream(stream));
        expect(await verifyStream(log)).toMatchObject({ ok: true, count: log.length });
        expect(log.filter((e) => e.type === 'Busy')).toHaveLength(busyWrites);
        const mine = log.filter((e) => e.type === 'Quiet');
        expect(mine.map((e) => (e.data as { i: number }).i)).toEqual(Array.from({ length: 30 }, (_, i) => i));
        // Each was decided on the event just before it, whoever wrote that.
        for (const e of mine) {
          expect((e.data as { after: number | null }).after).toBe(e.revision === 0 ? null : e.revision - 1);
        }
        // Every decision was told of the other replica's events since the last one.
        expect(decided.filter((d) => d.told === 0)).toEqual([]);
        process.stderr.write(
          `[postgres] appendUnderLock: 30 locked decisions beside ${busyWrites} busy appends (${busyConflicts} of theirs conflicted)\n`,
        );
      } finally {
        stop = true;
        await busy.close();
        await quiet.close();
      }
    });

    it('waits for the lock, stamps recordedAt only once it holds it (a batch stamps before), and gives up typed after queryTimeoutMs', async () => {
      let now = Date.parse('2031-01-01T00:00:00.000Z');
      const store = await openPostgresEventStore({ connectionString: url, clock: () => new Date(now) });
      const stream = `stamped-${randomUUID().slice(0, 8)}`;
      const iso = (ms: number) => new Date(ms).toISOString();
      try {
        const lockedHeld = await holdStream(stream);
        const locked = store.appendUnderLock(stream, { knownRevision: null }, (tail) => [
          ev('Locked', { after: tail.revision }),
        ]);
        await waiting(1, lockedHeld.pid);
        now += 5000;
        const t1 = now;
        await lockedHeld.release();
        expect((await locked)?.events[0]).toMatchObject({
          recordedAt: iso(t1),
          revision: 0,
          data: { after: null },
        });

        const batchHeld = await holdStream(stream);
        now += 5000;
        const t2 = now;
        const batched = store.appendToStream(stream, [ev('Batched')]);
        await waiting(1, batchHeld.pid);
        now += 5000;
        await batchHeld.release();
        expect((await batched).events[0]).toMatchObject({ recordedAt: iso(t2), revision: 1 });
      } finally {
        await store.close();
      }

      const impatient = await openPostgresEventStore({
        connectionString: url,
        queryTimeoutMs: 300,
        poolSize: 1,
      });
      const again = await holdStream(stream);
      try {
        let called = 0;
        const error = await impatient
          .appendUnderLock(stream, { knownRevision: null }, () => {
            called++;
            return [ev('Never')];
          })
          .catch((e) => e);
        expect(error).toBeInstanceOf(StoreUnavailableError);
        expect(called).toBe(0);
        await again.release();
        expect(await impatient.streamRevision(stream)).toBe(1);
        const after = await impatient.appendUnderLock(stream, { knownRevision: 1 }, () => [ev('Later')]);
        expect(after?.nextExpectedRevision).toBe(2);
      } finally {
        await again.release();
        await impatient.close();
      }
    });

    it('a connection lost mid-transaction: the append is sent again on a fresh one and written once, decided once', async () => {
      const store = await openPostgresEventStore({ connectionString: url, poolSize: 1 });
      const stream = `lost-${randomUUID().slice(0, 8)}`;
      await store.appendToStream(stream, [ev('First')]);
      const inserts = await holdInserts();
      try {
        const tails: StreamTail[] = [];
        const pending = store.appendUnderLock(stream, { knownRevision: 0 }, (tail) => {
          tails.push(tail);
          return [ev('Locked', { after: tail.revision })];
        });
        await waiting(1, inserts.pid);
        // Its append waits inside its statement, after decide: end that backend.
        const victim = (await lockWaiters(inserts.pid))[0] as number;
        await admin.query('SELECT pg_terminate_backend($1)', [victim]);
        await until('the retry to wait', async () =>
          (await lockWaiters(inserts.pid)).some((p) => p !== victim),
        );
        await inserts.release();
        const result = await pending;
        expect(tails).toHaveLength(1);
        expect(result).toMatchObject({ idempotent: false, nextExpectedRevision: 1 });
        const log = await collect(store.readStream(stream));
        expect(log.map((e) => e.type)).toEqual(['First', 'Locked']);
        expect(result?.events).toEqual(log.slice(1));
      } finally {
        await inserts.release();
        await store.close();
      }
    });

    it('a connection lost mid-transaction while another replica waits: its write comes first, and the decision is made again on it', async () => {
      const [store, other] = await Promise.all([
        openPostgresEventStore({ connectionString: url, poolSize: 1 }),
        openPostgresEventStore({ connectionString: url }),
      ]);
      const stream = `redecided-${randomUUID().slice(0, 8)}`;
      await store.appendToStream(stream, [ev('First')]);
      const inserts = await holdInserts();
      try {
        const tails: StreamTail[] = [];
        const pending = store.appendUnderLock(stream, { knownRevision: 0 }, (tail) => {
          tails.push(tail);
          return [ev('Locked', { after: tail.revision })];
        });
        await waiting(1, inserts.pid);
        const victim = (await lockWaiters(inserts.pid))[0] as number;
        // The other replica queues for the stream's lock behind the locked decision.
        const plain = other.appendToStream(stream, [ev('Other')], { expectedRevision: 0 });
        await waiting(2, inserts.pid);
        await admin.query('SELECT pg_terminate_backend($1)', [victim]);
        // It takes the lock first and waits to insert; the retry waits for the lock.
        await until('the other append and the retry to wait', async () => {
          const pids = await lockWaiters(inserts.pid);
          return pids.length >= 2 && !pids.includes(victim);
        });
        await inserts.release();
        const [written, result] = await Promise.all([plain, pending]);
        expect(written.nextExpectedRevision).toBe(1);
        expect(tails.map((t) => [t.revision, t.events.map((e) => e.type)])).toEqual([
          [0, []],
          [1, ['Other']],
        ]);
        expect(result?.events.map((e) => [e.revision, e.data])).toEqual([[2, { after: 1 }]]);
        const log = await collect(store.readStream(stream));
        expect(log.map((e) => e.type)).toEqual(['First', 'Other', 'Locked']);
        expect(await verifyStream(log)).toMatchObject({ ok: true, count: 3 });
      } finally {
        await inserts.release();
        await store.close();
        await other.close();
      }
    });

    it('wakes live subscriptions at once: in its own process directly, in others through NOTIFY', async () => {
      // Polls far apart: only a wake-up delivers within the reader's timeout.
      const [writer, elsewhere] = await Promise.all([
        openPostgresEventStore({ connectionString: url, pollIntervalMs: 60_000 }),
        openPostgresEventStore({ connectionString: url, pollIntervalMs: 60_000 }),
      ]);
      const prefix = `woken-${randomUUID().slice(0, 8)}`;
      const here = writer.subscribeToAll({ fromPosition: 'end', filter: { streamPrefixes: [prefix] } });
      const there = elsewhere.subscribeToAll({ fromPosition: 'end', filter: { streamPrefixes: [prefix] } });
      try {
        const readers = [new MessageReader(here, 5000), new MessageReader(there, 5000)];
        for (const reader of readers) await reader.eventsUntilCaughtUp();
        const written = await writer.appendUnderLock(`${prefix}-1`, { knownRevision: null }, () => [
          ev('Woke'),
        ]);
        for (const reader of readers) expect((await reader.events(1))[0]?.id).toBe(written?.events[0]?.id);
      } finally {
        await here.close();
        await there.close();
        await writer.close();
        await elsewhere.close();
      }
    });

    it('a subscription from the end asked for before it delivers it, while an older transaction holds the end back', async () => {
      const store = await openPostgresEventStore({ connectionString: url, pollIntervalMs: 200 });
      const older = new pg.Client({ connectionString: url });
      await older.connect();
      const prefix = `end-locked-${randomUUID().slice(0, 8)}`;
      try {
        await older.query('BEGIN');
        await older.query('SELECT pg_current_xact_id()');
        await store.appendToStream(`${prefix}-other`, [ev('Before')]);
        const sub = store.subscribeToAll({
          fromPosition: 'end',
          filter: { streamPrefixes: [`${prefix}-mine`] },
        });
        try {
          const written = await store.appendUnderLock(`${prefix}-mine`, { knownRevision: null }, () => [
            ev('After'),
          ]);
          setTimeout(() => void older.query('COMMIT'), 100);
          const [event] = await new MessageReader(sub, 5000).events(1);
          expect(event?.position).toBe(written?.position);
        } finally {
          await sub.close();
        }
      } finally {
        await older.end();
        await store.close();
      }
    });

    it('a replica lost mid-decision (its host gone, the server never told) does not keep the stream locked for long', async () => {
      // A batch is one statement: the server commits it and holds nothing once the client is gone.
      // A decision under the lock spans several statements; between them the server waits for the
      // client, holding the stream's lock, until it learns the client is gone (TCP keepalive: two
      // hours by default). Every replica's appends to the stream would fail meanwhile.
      const target = new URL(url);
      const proxy = new TcpProxy(target.hostname, Number(target.port || 5432));
      await proxy.start();
      const lost = await openPostgresEventStore({
        connectionString: proxy.url(url),
        poolSize: 1,
        queryTimeoutMs: 500,
        connectTimeoutMs: 500,
      });
      const other = await openPostgresEventStore({ connectionString: url, queryTimeoutMs: 1000 });
      const stream = `lost-host-${randomUUID().slice(0, 8)}`;
      const advisoryLocksHeld = async () => {
        const { rows } = await admin.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM pg_locks l JOIN pg_database d ON d.oid = l.database
            WHERE l.locktype = 'advisory' AND l.granted AND d.datname = current_database()`,
        );
        return rows[0]?.n ?? 0;
      };
      try {
        await other.appendToStream(stream, [ev('First')]);
        // The link goes silent once the lock is held and the tail read: the append never arrives.
        const error = await lost
          .appendUnderLock(stream, { knownRevision: 0 }, () => {
            proxy.freeze();
            return [ev('Lost')];
          })
          .catch((e) => e);
        expect(error).toBeInstanceOf(StoreUnavailableError);
        // The server lets go of the lock once the session has waited for its client past the
        // statement limit the store was opened with.
        await until(
          'the lost session to let go of the stream',
          async () => (await advisoryLocksHeld()) === 0,
          5000,
        );
        const after = await other.appendToStream(stream, [ev('After')], { expectedRevision: 0 });
        expect(after.nextExpectedRevision).toBe(1);
        expect((await collect(other.readStream(stream))).map((e) => e.type)).toEqual(['First', 'After']);
      } finally {
        await proxy.stop();
        await lost.close();
        await other.close();
      }
    });

    it('close refuses the decisions still waiting for their turn; the one under way finishes', async () => {
      const store = await openPostgresEventStore({ connectionString: url });
      const stream = `closing-${randomUUID().slice(0, 8)}`;
      const held = await holdStream(stream);
      try {
        const first = store.appendUnderLock(stream, { knownRevision: null }, () => [ev('Running')]);
        const second = store.appendUnderLock(stream, { knownRevision: null }, () => [ev('Waiting')]);
        await waiting(1, held.pid);
        const closing = store.close();
        await expect(second).rejects.toMatchObject({ code: 'store-closed' });
        await held.release();
        await closing;
        expect((await first)?.nextExpectedRevision).toBe(0);
      } finally {
        await held.release();
        await store.close();
      }
    });
  });
}
