import { randomUUID } from 'node:crypto';
import net from 'node:net';
import {
  type EventData,
  InvalidReadOptionsError,
  type RecordedEvent,
  StoreClosedError,
  StoreUnavailableError,
  verifyStream,
} from '@muster/event-store';
import { collect } from '@muster/event-store/contract';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidConnectionStringError, openPostgresEventStore, openPostgresSql } from './index.js';
import { createTestDatabase } from './test-support/database.js';
import { SubscriptionLog, sleep } from './test-support/subscription-log.js';
import { TcpProxy } from './test-support/tcp-proxy.js';

const ev = (type: string, data: Record<string, unknown> = {}): EventData => ({ type, data });

/** A loopback port with nothing listening on it. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A store whose every connection goes through a TCP proxy the test can stop or freeze. */
async function behindProxy(
  url: string,
  options: { queryTimeoutMs?: number } = {},
): Promise<{ proxy: TcpProxy; store: Awaited<ReturnType<typeof openPostgresEventStore>> }> {
  const target = new URL(url);
  const proxy = new TcpProxy(target.hostname, Number(target.port || 5432));
  await proxy.start();
  const store = await openPostgresEventStore({
    connectionString: proxy.url(url),
    poolSize: 3,
    pollIntervalMs: 100,
    connectTimeoutMs: 1000,
    ...options,
  });
  return { proxy, store };
}

/** Pings until the store answers again; only StoreUnavailableError is expected meanwhile. */
async function untilReachable(store: { ping(): Promise<void> }, withinMs = 10_000): Promise<void> {
  const deadline = Date.now() + withinMs;
  for (;;) {
    try {
      await store.ping();
      return;
    } catch (error) {
      expect(error).toBeInstanceOf(StoreUnavailableError);
      if (Date.now() > deadline) throw error;
      await sleep(50);
    }
  }
}

describe('connection strings (no server needed)', () => {
  const open = (connectionString: unknown) =>
    openPostgresEventStore({ connectionString: connectionString as string }).catch((e) => e);

  it('rejects a malformed connection string with a clear, non-retryable error', async () => {
    for (const bad of ['', '   ', undefined, 42, 'not a url', 'localhost:5432/muster', 'mysql://u@h/db']) {
      const error = await open(bad);
      expect(error).toBeInstanceOf(InvalidConnectionStringError);
      expect(error.code).toBe('invalid-connection-string');
      expect(error.retryable).toBe(false);
      expect(error.message).toMatch(/PostgreSQL connection string/);
    }
    expect((await open('not a url')).message).toMatch(/not a URL/);
    expect((await open('mysql://u@h/db')).message).toMatch(/postgres:\/\//);
    const sqlError = await openPostgresSql('not a url').catch((e) => e);
    expect(sqlError).toBeInstanceOf(InvalidConnectionStringError);
  });

  it('reports an unreachable server as retryable, naming the target but never the password', async () => {
    const port = await closedPort();
    const error = await open(`postgres://muster:s3cret-pw@127.0.0.1:${port}/muster`);
    expect(error).toBeInstanceOf(StoreUnavailableError);
    expect(error.retryable).toBe(true);
    expect(error.message).toContain(`postgres://muster@127.0.0.1:${port}/muster`);
    expect(error.message).toMatch(/unreachable/);
    expect(error.message).not.toContain('s3cret-pw');
    const sqlError = await openPostgresSql(`postgres://muster:s3cret-pw@127.0.0.1:${port}/muster`).catch(
      (e) => e,
    );
    expect(sqlError).toBeInstanceOf(StoreUnavailableError);
    expect(sqlError.message).not.toContain('s3cret-pw');
  });
});

const database = await createTestDatabase('faults');

if (database.skip) {
  describe.skip(`postgres faults (skipped: ${database.skip})`, () => {
    it('needs DATABASE_URL', () => {});
  });
  process.stderr.write(`[postgres] fault tests skipped: ${database.skip}\n`);
} else {
  const url = database.url as string;
  const admin = new pg.Client({ connectionString: url });

  /** Ends every other connection to the test database, as an administrator or a failover would. */
  const terminateAll = async () => {
    const { rowCount } = await admin.query(
      'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()',
    );
    return rowCount ?? 0;
  };

  describe('postgres faults', () => {
    beforeAll(async () => {
      await admin.connect();
    });
    afterAll(async () => {
      await admin.end();
      await database.drop?.();
    });

    it('a database that does not exist is a configuration error', async () => {
      const missing = new URL(url);
      missing.pathname = `/muster_missing_${randomUUID().slice(0, 8)}`;
      missing.password = 'pw-not-shown';
      const error = await openPostgresEventStore({ connectionString: missing.toString() }).catch((e) => e);
      expect(error).toBeInstanceOf(InvalidConnectionStringError);
      expect(error.message).toMatch(/does not exist/);
      expect(error.message).not.toContain('pw-not-shown');
    });

    it('after every pooled connection was terminated, a read finds a live one (not only a second try)', async () => {
      const store = await openPostgresEventStore({ connectionString: url, poolSize: 4, pollIntervalMs: 100 });
      try {
        // Four reads at once leave four used connections in the pool.
        await Promise.all(Array.from({ length: 4 }, () => store.headPosition()));
        expect(await terminateAll()).toBeGreaterThanOrEqual(4);
        // At once: the pool may not yet have heard that its idle connections died.
        await expect(store.ping()).resolves.toBeUndefined();
      } finally {
        await store.close();
      }
    });

    it('connections terminated mid-run: appends fail typed or succeed, nothing is lost or doubled', async () => {
      const store = await openPostgresEventStore({ connectionString: url, poolSize: 4, pollIntervalMs: 100 });
      const prefix = `terminated-${randomUUID().slice(0, 8)}`;
      const start = (await store.headPosition()) ?? 'start';
      const delivered: RecordedEvent[] = [];
      let subscriptionErrors = 0;
      let stop = false;
      let current: SubscriptionLog | null = null;
      // A subscriber that restarts from its checkpoint whenever its subscription fails.
      const subscriber = (async () => {
        let from = start;
        while (!stop) {
          const log = new SubscriptionLog(
            store.subscribeToAll({ fromPosition: from, filter: { streamPrefixes: [prefix] } }),
          );
          current = log;
          while (!log.ended && !stop) await sleep(10);
          await log.close();
          delivered.push(...log.events);
          from = log.checkpoint ?? from;
          if (log.error) {
            expect(log.error).toBeInstanceOf(StoreUnavailableError);
            subscriptionErrors++;
          }
        }
      })();

      const writers = 4;
      const perWriter = 25;
      const failures: unknown[] = [];
      let unavailable = 0;
      const appends = Array.from({ length: writers }, async (_, w) => {
        for (let i = 0; i < perWriter; i++) {
          const event = { id: randomUUID(), ...ev('Survived', { w, i }) };
          for (let attempt = 0; ; attempt++) {
            try {
              await store.appendToStream(`${prefix}-${w}`, [event], {
                expectedRevision: i === 0 ? 'no_stream' : i - 1,
              });
              break;
            } catch (error) {
              if (error instanceof StoreUnavailableError) unavailable++;
              else failures.push(error);
              if (attempt > 50 || !(error instanceof StoreUnavailableError)) throw error;
              await sleep(20);
            }
          }
        }
      });
      let terminated = 0;
      for (let k = 0; k < 4; k++) {
        await sleep(60);
        terminated += await terminateAll();
      }
      await Promise.all(appends);
      expect(failures).toEqual([]);
      expect(terminated).toBeGreaterThan(0);

      await expect(store.ping()).resolves.toBeUndefined();
      for (let w = 0; w < writers; w++) {
        const events = await collect(store.readStream(`${prefix}-${w}`));
        expect(events.map((e) => (e.data as { i: number }).i)).toEqual(
          Array.from({ length: perWriter }, (_, i) => i),
        );
        expect((await verifyStream(events)).ok).toBe(true);
      }
      const logged = await collect(
        store.readAll({ fromPosition: start, filter: { streamPrefixes: [prefix] } }),
      );
      const deadline = Date.now() + 10_000;
      const deliveredCount = () =>
        delivered.length + ((current as SubscriptionLog | null)?.events.length ?? 0);
      while (deliveredCount() < logged.length && Date.now() < deadline) await sleep(20);
      process.stderr.write(
        `[faults] terminated ${terminated} connections; ${unavailable} appends failed as unavailable; ${subscriptionErrors} subscription restarts\n`,
      );
      stop = true;
      await subscriber;
      expect(delivered.map((e) => e.id)).toEqual(logged.map((e) => e.id));
      await store.close();
    });

    it('an append whose connection is terminated mid-statement rejects typed; retrying it writes it once', async () => {
      const store = await openPostgresEventStore({ connectionString: url, poolSize: 2 });
      const stream = `midflight-${randomUUID().slice(0, 8)}`;
      const blocker = new pg.Client({ connectionString: url });
      await blocker.connect();
      try {
        // Hold the stream's append lock, so the store's append waits inside the function.
        await blocker.query('BEGIN');
        await blocker.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 7150735))', [stream]);
        const event = { id: randomUUID(), ...ev('Interrupted') };
        let settled = false;
        const pending = store.appendToStream(stream, [event]).then(
          (result) => ({ result }),
          (error: unknown) => ({ error }),
        );
        void pending.then(() => {
          settled = true;
        });
        let kills = 0;
        while (!settled && kills < 50) {
          await sleep(100);
          const { rowCount } = await admin.query(
            `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
              WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> $1`,
            [(blocker as unknown as { processID: number }).processID],
          );
          kills += rowCount ?? 0;
        }
        const outcome = await pending;
        expect(kills).toBeGreaterThan(0);
        expect('error' in outcome && outcome.error).toBeInstanceOf(StoreUnavailableError);
        await blocker.query('COMMIT');

        // The caller retries with the same ids: the event is written exactly once.
        const retried = await store.appendToStream(stream, [event]);
        const again = await store.appendToStream(stream, [event]);
        expect(retried.idempotent).toBe(false);
        expect(again.idempotent).toBe(true);
        expect((await collect(store.readStream(stream))).map((e) => e.id)).toEqual([event.id]);
      } finally {
        await blocker.end().catch(() => {});
        await store.close();
      }
    });

    it('the database going away and coming back: typed errors while down, recovery after', async () => {
      const { proxy, store } = await behindProxy(url);
      const prefix = `outage-${randomUUID().slice(0, 8)}`;
      try {
        const before = await store.appendToStream(`${prefix}-1`, [ev('BeforeOutage')]);
        const log = new SubscriptionLog(
          store.subscribeToAll({ fromPosition: 'start', filter: { streamPrefixes: [prefix] } }),
        );
        await log.until('the first event', (l) => l.events.length === 1);

        await proxy.stop();
        const appendError = await store.appendToStream(`${prefix}-1`, [ev('DuringOutage')]).catch((e) => e);
        expect(appendError).toBeInstanceOf(StoreUnavailableError);
        expect(appendError.retryable).toBe(true);
        expect(appendError.code).toBe('store-unavailable');
        await expect(store.ping()).rejects.toBeInstanceOf(StoreUnavailableError);
        await expect(store.streamRevision(`${prefix}-1`)).rejects.toBeInstanceOf(StoreUnavailableError);
        await expect(collect(store.readAll())).rejects.toBeInstanceOf(StoreUnavailableError);
        await expect(store.sql.query('SELECT 1')).rejects.toBeInstanceOf(StoreUnavailableError);
        // The subscription ends with the same typed error; its checkpoint is where to restart.
        await log.until('the subscription error', (l) => l.ended);
        expect(log.error).toBeInstanceOf(StoreUnavailableError);
        const checkpoint = log.checkpoint;
        expect(checkpoint).toBe(before.position);
        await log.close();

        await proxy.start();
        await untilReachable(store);
        const after = await store.appendToStream(`${prefix}-1`, [ev('AfterOutage')], { expectedRevision: 0 });
        expect(after.nextExpectedRevision).toBe(1);
        const resumed = new SubscriptionLog(
          store.subscribeToAll({ fromPosition: checkpoint as string, filter: { streamPrefixes: [prefix] } }),
        );
        try {
          await resumed.until('the event after the outage', (l) => l.events.length === 1);
          expect(resumed.events.map((e) => e.type)).toEqual(['AfterOutage']);
        } finally {
          await resumed.close();
        }
      } finally {
        await store.close();
        await proxy.stop();
      }
    });

    it('a server that stops answering: statements give up typed after queryTimeoutMs, a retried append lands once', async () => {
      const { proxy, store } = await behindProxy(url, { queryTimeoutMs: 500 });
      const stream = `silent-${randomUUID().slice(0, 8)}`;
      const during = { ...ev('DuringSilence'), id: randomUUID() };
      try {
        await store.appendToStream(stream, [ev('BeforeSilence')]);
        proxy.freeze();
        const started = Date.now();
        const outcomes = await Promise.all([
          store.appendToStream(stream, [during]).catch((e) => e),
          store.sql.query('SELECT 1').catch((e) => e),
          store.streamRevision(stream).catch((e) => e),
          store.ping().catch((e) => e),
        ]);
        const waited = Date.now() - started;
        for (const outcome of outcomes) {
          expect(outcome).toBeInstanceOf(StoreUnavailableError);
          expect(outcome.retryable).toBe(true);
        }
        expect(waited).toBeLessThan(5000);

        proxy.thaw();
        await untilReachable(store);
        // The timed-out append may or may not have reached the server: a retry with the same id
        // settles it, and the stream holds it once.
        await store.appendToStream(stream, [during]);
        await sleep(300);
        const types = (await collect(store.readStream(stream))).map((e) => e.type);
        expect(types).toEqual(['BeforeSilence', 'DuringSilence']);
      } finally {
        proxy.thaw();
        await store.close();
        await proxy.stop();
      }
    });

    it('queryTimeoutMs bounds statements but never scripts (migrations), in or out of a transaction', async () => {
      const store = await openPostgresEventStore({ connectionString: url, poolSize: 2, queryTimeoutMs: 300 });
      try {
        await expect(store.sql.query('SELECT pg_sleep(0.8)')).rejects.toBeInstanceOf(StoreUnavailableError);
        await expect(store.sql.script('SELECT pg_sleep(0.8)')).resolves.toBeUndefined();
        await expect(
          store.sql.transaction(async (tx) => {
            await tx.script('SELECT pg_sleep(0.8)');
            return (await tx.query<{ one: number }>('SELECT 1 AS one'))[0]?.one;
          }),
        ).resolves.toBe(1);
        expect(await store.sql.query<{ one: number }>('SELECT 1 AS one')).toEqual([{ one: 1 }]);
      } finally {
        await store.close();
      }
    });

    it('a statement past queryTimeoutMs is cancelled by the server too, and its connection is kept', async () => {
      const store = await openPostgresEventStore({ connectionString: url, poolSize: 1, queryTimeoutMs: 300 });
      const tag = `muster_slow_${randomUUID().slice(0, 8)}`;
      const admin = new pg.Client({ connectionString: url });
      await admin.connect();
      try {
        const [{ pid } = { pid: 0 }] = await store.sql.query<{ pid: number }>(
          'SELECT pg_backend_pid() AS pid',
        );
        const started = Date.now();
        await expect(store.sql.query(`SELECT pg_sleep(5) /* ${tag} */`)).rejects.toBeInstanceOf(
          StoreUnavailableError,
        );
        expect(Date.now() - started).toBeLessThan(5000);
        // Nothing of it runs on: the client stopping to wait would not stop the server's sleep.
        const running = await admin.query(
          `SELECT count(*)::int AS n FROM pg_stat_activity WHERE state = 'active' AND query LIKE $1`,
          [`%${tag}%`],
        );
        expect(running.rows[0].n).toBe(0);
        // The server answered the cancellation, so the only connection of the pool is the same one.
        expect(await store.sql.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).toEqual([{ pid }]);
      } finally {
        await admin.end();
        await store.close();
      }
    });

    it('a script lifts the limit for itself only: the connection has it again after', async () => {
      const store = await openPostgresEventStore({ connectionString: url, poolSize: 1, queryTimeoutMs: 300 });
      try {
        const limit = async () =>
          (await store.sql.query<{ statement_timeout: string }>('SHOW statement_timeout'))[0]
            ?.statement_timeout;
        expect(await limit()).toBe('300ms');
        await store.sql.script('SELECT pg_sleep(0.5)');
        expect(await limit()).toBe('300ms');
        await expect(store.sql.script('SELECT pg_sleep(0.5); SELECT no_such_column')).rejects.toThrow();
        expect(await limit()).toBe('300ms');
        const within = await store.sql.transaction(async (tx) => {
          await tx.script('SELECT pg_sleep(0.5)');
          return (await tx.query<{ statement_timeout: string }>('SHOW statement_timeout'))[0]
            ?.statement_timeout;
        });
        expect(within).toBe('300ms');
        expect(await limit()).toBe('300ms');
        await expect(store.sql.query('SELECT pg_sleep(0.5)')).rejects.toBeInstanceOf(StoreUnavailableError);
      } finally {
        await store.close();
      }
    });

    it('a position of another store is InvalidReadOptionsError, on read and on subscribe', async () => {
      const store = await openPostgresEventStore({ connectionString: url });
      try {
        for (const bad of [
          '00000000000000000042',
          'not-a-position',
          '00000000000000000001/00000000000000000002',
        ]) {
          await expect(collect(store.readAll({ fromPosition: bad }))).rejects.toBeInstanceOf(
            InvalidReadOptionsError,
          );
          const log = new SubscriptionLog(store.subscribeToAll({ fromPosition: bad }));
          await log.until('the subscription to fail', (l) => l.ended);
          expect(log.error).toBeInstanceOf(InvalidReadOptionsError);
        }
      } finally {
        await store.close();
      }
    });

    it('a closed store rejects with StoreClosedError', async () => {
      const store = await openPostgresEventStore({ connectionString: url });
      await store.close();
      await expect(store.appendToStream('closed', [ev('Late')])).rejects.toBeInstanceOf(StoreClosedError);
      await expect(store.ping()).rejects.toBeInstanceOf(StoreClosedError);
      await store.close();
    });
  });
}
