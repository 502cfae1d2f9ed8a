import type { EventStore, RecordedEvent, Subscription, SubscriptionMessage } from '@muster/event-store';
import { afterEach, describe, expect, it } from 'vitest';
import { type ProjectionsHandle, type StartProjectionsOptions, startProjections } from './runner.js';
import { countingProjection } from './test-support/counting-projection.js';
import { eventually, openSqliteFixture } from './test-support/harness.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function fixture(label: string) {
  const fx = await openSqliteFixture(label);
  cleanups.push(fx.close);
  return fx;
}

async function start(options: StartProjectionsOptions): Promise<ProjectionsHandle> {
  const runner = await startProjections({ tickMs: 20, leaseTtlMs: 2000, ...options });
  cleanups.push(() => runner.close());
  return runner;
}

async function appendEvents(store: EventStore, count: number, stream = 'thing-1'): Promise<string> {
  let position = '';
  for (let i = 0; i < count; i += 10) {
    const result = await store.appendToStream(
      stream,
      Array.from({ length: Math.min(10, count - i) }, (_, j) => ({ type: 'Happened', data: { n: i + j } })),
    );
    position = result.position;
  }
  return position;
}

const count = async (
  sql: { query: (t: string) => Promise<Record<string, unknown>[]> },
  table = 'counting_rows',
) => Number((await sql.query(`SELECT COUNT(*) AS n FROM ${table}`))[0]?.n);

/** Wraps a real store so that its first subscription ends (or fails) after a number of messages. */
function droppingStore(
  store: EventStore,
  after: number,
  how: 'end' | 'fail',
): EventStore & { dropped: number } {
  let first = true;
  const wrapper = Object.create(store) as EventStore & { dropped: number };
  wrapper.dropped = 0;
  wrapper.subscribeToAll = (options) => {
    const inner = store.subscribeToAll(options);
    if (!first) return inner;
    first = false;
    let seen = 0;
    const iterator = inner[Symbol.asyncIterator]();
    const sub: Subscription = {
      close: () => inner.close(),
      [Symbol.asyncIterator]: () => ({
        next: async (): Promise<IteratorResult<SubscriptionMessage>> => {
          if (++seen > after) {
            wrapper.dropped++;
            await inner.close();
            if (how === 'fail') throw new Error('connection reset by peer');
            return { done: true, value: undefined };
          }
          return iterator.next();
        },
      }),
    };
    return sub;
  };
  return wrapper;
}

describe('the projection runner', () => {
  it('commits a batch and its checkpoint together: a batch that fails leaves neither behind', async () => {
    const fx = await fixture('runner-atomic');
    await appendEvents(fx.store, 100);
    let failed: readonly RecordedEvent[] = [];
    const projection = countingProjection({
      inside: (events) => {
        if (failed.length === 0 && events.some((e) => (e.data as { n: number }).n === 55)) {
          failed = events;
          throw new Error('disk on fire');
        }
      },
    });
    const runner = await start({
      store: fx.store,
      sql: fx.sql,
      projections: [projection],
      batchSize: 10,
      backoff: { initialMs: 60_000, maxMs: 60_000 },
    });
    const status = await eventually(async () => {
      const [s] = await runner.status();
      return s?.lastError ? s : null;
    });
    expect(status.lastError?.message).toBe('disk on fire');
    // None of the failed batch's rows, and the checkpoint right before it.
    const first = failed[0]?.position as string;
    const rows = await fx.sql.query('SELECT position FROM counting_rows ORDER BY position');
    expect(rows.length).toBeGreaterThan(0);
    expect(rows.every((r) => String(r.position) < first)).toBe(true);
    expect(rows.length).toBe(Number(first) - 1);
    const [checkpoint] = await fx.sql.query(
      "SELECT position FROM projection_checkpoints WHERE name = 'counting'",
    );
    expect(checkpoint?.position).toBe(rows[rows.length - 1]?.position);
    runner.poke();
    const head = (await fx.store.headPosition()) as string;
    expect(await runner.waitForPosition(head, 10_000)).toBe(true);
    expect(await count(fx.sql)).toBe(100);
    const [settled] = await runner.status();
    expect(settled).toMatchObject({ restarts: 1, behind: false, lagEvents: 0, isLeader: true });
  });

  it('backs off further each time a restart fails again soon after its first good batch', async () => {
    const fx = await fixture('runner-flapping');
    let batches = 0;
    const delays: number[] = [];
    const runner = await start({
      store: fx.store,
      sql: fx.sql,
      // Every other batch fails: each restart's first batch goes through, the next one does not.
      projections: [
        countingProjection({
          inside: () => {
            if (++batches % 2 === 0) throw new Error('fails again');
          },
        }),
      ],
      backoff: { initialMs: 10, maxMs: 10_000 },
      random: () => 1,
      logger: {
        info: () => {},
        warn: () => {},
        error: (fields) => {
          if (typeof fields.restartInMs === 'number') delays.push(fields.restartInMs);
        },
      },
    });
    let stop = false;
    const feeding = (async () => {
      for (let i = 0; !stop && i < 2000; i++) {
        await appendEvents(fx.store, 1);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    })();
    await eventually(async () => (delays.length >= 5 ? delays : null), 10_000);
    stop = true;
    await feeding;
    expect(delays.slice(0, 5)).toEqual([10, 20, 40, 80, 160]);
    await runner.close();
  });

  it.each([
    'end',
    'fail',
  ] as const)('restarts a subscription that %ss from its checkpoint, losing and repeating nothing', async (how) => {
    const fx = await fixture(`runner-drop-${how}`);
    await appendEvents(fx.store, 200);
    const store = droppingStore(fx.store, 7, how);
    const runner = await start({
      store,
      sql: fx.sql,
      projections: [countingProjection()],
      batchSize: 25,
      backoff: { initialMs: 10, maxMs: 50 },
    });
    const head = await appendEvents(fx.store, 50);
    expect(await runner.waitForPosition(head, 10_000)).toBe(true);
    expect(store.dropped).toBe(1);
    expect(await count(fx.sql)).toBe(250);
    const [status] = await runner.status();
    expect(status?.restarts).toBe(1);
    expect(status?.lastError?.code).toBe(how === 'end' ? 'subscription-ended' : null);
  });

  it('waits for a position: true once processed, false when the timeout comes first', async () => {
    const fx = await fixture('runner-wait');
    // On SQLite a projection's open transaction holds the connection: append everything first.
    const position = await appendEvents(fx.store, 30);
    let gate: (() => void) | null = null;
    let gated = true;
    const runner = await start({
      store: fx.store,
      sql: fx.sql,
      projections: [
        countingProjection({
          inside: () =>
            gated
              ? new Promise<void>((resolve) => {
                  gate = resolve;
                })
              : undefined,
        }),
      ],
    });
    expect(await runner.waitForPosition(position, 150)).toBe(false);
    gated = false;
    (gate as (() => void) | null)?.();
    expect(await runner.waitForPosition(position, 10_000)).toBe(true);
    const [after] = await runner.status();
    expect(after).toMatchObject({ behind: false, lagEvents: 0, caughtUp: true, position });
  });

  it('reports how far behind a failing projection is, and why', async () => {
    const fx = await fixture('runner-status');
    await appendEvents(fx.store, 30);
    const runner = await start({
      store: fx.store,
      sql: fx.sql,
      projections: [
        countingProjection({
          inside: () => {
            throw Object.assign(new Error('constraint failed'), { code: 'SQLITE_CONSTRAINT' });
          },
        }),
      ],
      backoff: { initialMs: 60_000, maxMs: 60_000 },
    });
    const status = await eventually(async () => {
      const [s] = await runner.status();
      return s?.lastError ? s : null;
    });
    expect(status).toMatchObject({
      name: 'counting',
      position: null,
      behind: true,
      lagEvents: 30,
      isLeader: true,
      caughtUp: false,
      restarts: 1,
      lastError: { message: 'constraint failed', code: 'SQLITE_CONSTRAINT' },
    });
  });

  it('advances past events its filter drops, so waiting on them does not hang', async () => {
    const fx = await fixture('runner-filter');
    const seen: RecordedEvent[] = [];
    const runner = await start({
      store: fx.store,
      sql: fx.sql,
      projections: [
        countingProjection({ filter: { streamPrefixes: ['kept-'] }, handled: (e) => seen.push(...e) }),
      ],
    });
    await appendEvents(fx.store, 5, 'kept-1');
    const position = await appendEvents(fx.store, 5, 'dropped-1');
    expect(await runner.waitForPosition(position, 10_000)).toBe(true);
    expect(seen.map((e) => e.stream)).toEqual(Array(5).fill('kept-1'));
  });

  it('refuses to rebuild a projection it does not know', async () => {
    const fx = await fixture('runner-unknown');
    const runner = await start({ store: fx.store, sql: fx.sql, projections: [countingProjection()] });
    await expect(runner.rebuild('nope')).rejects.toMatchObject({ code: 'projection-not-found' });
  });

  it('a rebuild whose swap commits between its two checks still reports success', async () => {
    const fx = await fixture('runner-swap-race');
    // The rebuild's wait for the swap reads the checkpoint, then the rebuild row. Here its
    // checkpoint reads answer only once the swap has committed, with what they read before it:
    // the interleaving that made PostgreSQL CI runs fail with "superseded by another rebuild".
    const sql = Object.create(fx.sql) as typeof fx.sql;
    sql.query = async (text, params) => {
      const rows = await fx.sql.query(text, params);
      const waitingForSwap =
        text.includes('FROM projection_checkpoints WHERE name') && new Error().stack?.includes('runRebuild');
      if (waitingForSwap) {
        await eventually(
          async () =>
            (await fx.sql.query('SELECT COUNT(*) AS n FROM projection_rebuilds'))[0]?.n === 0 || undefined,
        );
      }
      return rows as never;
    };
    const runner = await start({ store: fx.store, sql, projections: [countingProjection()] });
    const position = await appendEvents(fx.store, 30);
    expect(await runner.waitForPosition(position, 10_000)).toBe(true);
    await expect(runner.rebuild('counting')).resolves.toMatchObject({ events: 30, generation: 1 });
  });

  it('catches up in batches of catchUpBatchSize, then goes on in batches of batchSize', async () => {
    const fx = await fixture('runner-catch-up-batches');
    const caughtUpTo = await appendEvents(fx.store, 300);
    const batches: RecordedEvent[][] = [];
    const runner = await start({
      store: fx.store,
      sql: fx.sql,
      projections: [countingProjection({ handled: (events) => batches.push([...events]) })],
      batchSize: 10,
      catchUpBatchSize: 100,
    });
    expect(await runner.waitForPosition(caughtUpTo, 10_000)).toBe(true);
    const catchUp = batches.splice(0);
    expect(catchUp.flat().length).toBe(300);
    expect(Math.max(...catchUp.map((b) => b.length))).toBe(100);
    expect(catchUp.length).toBeLessThanOrEqual(6);
    await eventually(async () => ((await runner.status())[0]?.caughtUp ? true : null));
    const head = (
      await fx.store.appendToStream(
        'thing-2',
        Array.from({ length: 45 }, (_, n) => ({ type: 'Happened', data: { n } })),
      )
    ).position;
    expect(await runner.waitForPosition(head, 10_000)).toBe(true);
    expect(batches.flat().length).toBe(45);
    expect(Math.max(...batches.map((b) => b.length))).toBe(10);
    expect(await count(fx.sql)).toBe(345);
  });

  it('by default, catches up in batches four times the live ones', async () => {
    const fx = await fixture('runner-catch-up-default');
    const head = await appendEvents(fx.store, 1200);
    const batches: number[] = [];
    const runner = await start({
      store: fx.store,
      sql: fx.sql,
      projections: [countingProjection({ handled: (events) => batches.push(events.length) })],
    });
    expect(await runner.waitForPosition(head, 10_000)).toBe(true);
    expect(batches.reduce((a, b) => a + b, 0)).toBe(1200);
    expect(Math.max(...batches)).toBeGreaterThan(500);
  });
});

describe('fencing', () => {
  it('stops writing at its next batch once another process has taken its lease', async () => {
    const fx = await fixture('runner-fenced');
    const seen: string[] = [];
    const runner = await start({
      store: fx.store,
      sql: fx.sql,
      projections: [countingProjection({ handled: (events) => seen.push(...events.map((e) => e.id)) })],
      leaseTtlMs: 60_000,
    });
    const first = await appendEvents(fx.store, 20);
    expect(await runner.waitForPosition(first, 10_000)).toBe(true);
    // Another process takes over (as after an expiry): a new owner and term.
    await fx.sql.execute(
      "UPDATE projection_leases SET owner = 'elsewhere', term = term + 1, expires_at = $1 WHERE name = 'counting'",
      [Date.now() + 600_000],
    );
    const second = await appendEvents(fx.store, 20);
    expect(await runner.waitForPosition(second, 500)).toBe(false);
    await eventually(async () => (await runner.status())[0]?.isLeader === false);
    expect(seen.length).toBe(20);
    expect(await count(fx.sql)).toBe(20);
    const [status] = await runner.status();
    expect(status).toMatchObject({
      isLeader: false,
      leader: { owner: 'elsewhere' },
      lastError: { code: 'lease-lost' },
    });
  });
});
