import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type ReadAllOptions,
  type ReadStreamOptions,
  type RecordedEvent,
  StoreClosedError,
} from '@muster/event-store';
import { collect } from '@muster/event-store/contract';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openSqliteEventStore, type SqliteEventStore } from './index.js';
import { advance, hasMore, leadingInteger, type PageJob, pageParams, ReadAhead } from './read-ahead.js';

const dir = mkdtempSync(join(tmpdir(), 'muster-read-ahead-'));
const path = join(dir, 'read-ahead.db');
const STREAMS = ['alpha', 'beta "quoted"', 'gamma\\slash', 'délta ✓', 'epsilon'];
const EVENTS = 240;
let store: SqliteEventStore;

beforeAll(async () => {
  store = await openSqliteEventStore({ path, readAheadAfterPages: false });
  for (let i = 0; i < EVENTS; i++) {
    await store.appendToStream(STREAMS[i % STREAMS.length] as string, [
      { type: i % 3 === 0 ? 'Counted' : 'Noted', data: { i, text: `n°${i} "${'x'.repeat(i % 7)}"` } },
    ]);
  }
});

afterAll(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

/** The job's pages read in this thread, with the rule the store's in-thread reader uses. */
function pagesInThread(job: PageJob): string[][] {
  const statement = new Database(path, { readonly: true }).prepare(job.sql).pluck(true);
  const pages: string[][] = [];
  const walking = { ...job };
  while (hasMore(walking)) {
    const texts = statement.all(pageParams(walking)) as string[];
    advance(walking, texts);
    pages.push(texts);
  }
  return pages;
}

async function pagesAhead(job: PageJob): Promise<string[][]> {
  const ahead = new ReadAhead(path, { ...job }, () => {});
  const pages: string[][] = [];
  for (let texts = await ahead.next(); texts !== null; texts = await ahead.next()) pages.push(texts);
  return pages;
}

/** Texts shaped as the store's: the two integers first, then anything. */
const TEXT = `concat('[', position, ',', revision, ',', json_quote(stream), ']')`;

describe('read-ahead thread', () => {
  it('reads the cursor off the two integers an event text starts with', () => {
    fc.assert(
      fc.property(
        fc.nat({ max: Number.MAX_SAFE_INTEGER }),
        fc.nat({ max: Number.MAX_SAFE_INTEGER }),
        fc.string(),
        (position, revision, rest) => {
          const text = `[${position},${revision},${JSON.stringify(rest)}]`;
          expect(leadingInteger(text, 0)).toBe(position);
          expect(leadingInteger(text, 1)).toBe(revision);
        },
      ),
    );
  });

  it('pages exactly as the in-thread reader does, for any start, direction, size and count', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.boolean(),
        fc.boolean(),
        fc.integer({ min: 0, max: EVENTS + 5 }),
        fc.integer({ min: 1, max: 50 }),
        fc.oneof(fc.integer({ min: 0, max: EVENTS + 5 }), fc.constant(Number.MAX_SAFE_INTEGER)),
        fc.constantFrom(...STREAMS),
        async (byStream, forwards, from, pageSize, count, stream) => {
          const order = forwards ? 'ASC' : 'DESC';
          const job: PageJob = byStream
            ? {
                sql: `SELECT ${TEXT} FROM events WHERE stream = $1 AND revision ${forwards ? '>=' : '<='} $2 ORDER BY revision ${order} LIMIT $3`,
                before: [stream],
                after: [],
                cursor: forwards ? Math.floor(from / STREAMS.length) : Math.floor(from / STREAMS.length) - 1,
                remaining: count,
                pageSize,
                forwards,
                cursorIndex: 1,
                stopBelowZero: true,
              }
            : {
                sql: `SELECT ${TEXT} FROM events WHERE position ${forwards ? '>=' : '<='} $1 AND type <> $2 ORDER BY position ${order} LIMIT $3`,
                before: [],
                after: ['Counted'],
                cursor: from,
                remaining: count,
                pageSize,
                forwards,
                cursorIndex: 0,
                stopBelowZero: false,
              };
          expect(await pagesAhead(job)).toEqual(pagesInThread(job));
        },
      ),
      { numRuns: 40 },
    );
  });

  it('reports a statement that fails in the thread as the error of the next page', async () => {
    const ahead = new ReadAhead(
      path,
      {
        sql: 'SELECT no_such_column FROM events WHERE position >= $1 LIMIT $2',
        before: [],
        after: [],
        cursor: 0,
        remaining: 10,
        pageSize: 5,
        forwards: true,
        cursorIndex: 0,
        stopBelowZero: false,
      },
      () => {},
    );
    await expect(ahead.next()).rejects.toThrow(/no_such_column/);
  });
});

/** Forty events carrying `blob`, read back through read-ahead (after one page): all, in order. */
async function readsBigEvents(
  name: string,
  blob: string,
  options: { pageSize: number; readAheadMemoryMb?: number },
  read: (store: SqliteEventStore) => AsyncIterable<RecordedEvent>,
): Promise<void> {
  const big = await openSqliteEventStore({
    path: join(dir, `${name}.db`),
    readAheadAfterPages: 1,
    ...options,
  });
  try {
    for (let i = 0; i < 40; i++) await big.appendToStream('big', [{ type: 'Big', data: { i, blob } }]);
    const events = await collect(read(big));
    expect(events.map((e) => (e.data as { i: number }).i)).toEqual(Array.from({ length: 40 }, (_, i) => i));
    expect(events.every((e) => (e.data as { blob: string }).blob === blob)).toBe(true);
  } finally {
    await big.close();
  }
}

describe('reads through the store with read-ahead', () => {
  const readAllCases: ReadAllOptions[] = [
    {},
    { direction: 'backwards', fromPosition: 'end' },
    { maxCount: 77 },
    { direction: 'backwards', fromPosition: 'end', maxCount: 101 },
    { filter: { eventTypes: ['Counted'] } },
    { filter: { streamPrefixes: ['beta', 'délta'] } },
  ];
  const readStreamCases: ReadStreamOptions[] = [
    {},
    { direction: 'backwards', fromRevision: 'end' },
    { fromRevision: 7, maxCount: 20 },
    { direction: 'backwards', fromRevision: 30, maxCount: 25 },
  ];

  it('returns what the in-thread read returns', async () => {
    const ahead = await openSqliteEventStore({ path, pageSize: 4, readAheadAfterPages: 1 });
    try {
      for (const options of readAllCases) {
        expect(await collect(ahead.readAll(options)), JSON.stringify(options)).toEqual(
          await collect(store.readAll(options)),
        );
      }
      for (const stream of STREAMS) {
        for (const options of readStreamCases) {
          expect(await collect(ahead.readStream(stream, options)), JSON.stringify(options)).toEqual(
            await collect(store.readStream(stream, options)),
          );
        }
      }
    } finally {
      await ahead.close();
    }
  });

  it('reads large events past the read-ahead budget, which the thread waits for the reader to free', async () => {
    await readsBigEvents('big-events', 'é'.repeat(300_000), { pageSize: 4 }, (big) => big.readAll());
  });

  it('answers next() calls made without waiting for each other, in order', async () => {
    const ahead = await openSqliteEventStore({ path, pageSize: 4, readAheadAfterPages: 1 });
    try {
      const iterator = ahead.readAll()[Symbol.asyncIterator]();
      const results = await Promise.all(Array.from({ length: EVENTS + 3 }, () => iterator.next()));
      expect(results.slice(0, EVENTS).map((r) => r.value?.position)).toEqual(
        (await collect(store.readAll())).map((e) => e.position),
      );
      expect(results.slice(EVENTS).every((r) => r.done)).toBe(true);
    } finally {
      await ahead.close();
    }
  });

  it('lets timers run during a long read, between pages, read here or ahead', async () => {
    const spin = (ms: number) => {
      const until = performance.now() + ms;
      while (performance.now() < until);
    };
    for (const readAheadAfterPages of [false, 1] as const) {
      const reader = await openSqliteEventStore({ path, pageSize: 4, readAheadAfterPages });
      try {
        let ticks = 0;
        const timer = setInterval(() => ticks++, 1);
        const seen: string[] = [];
        try {
          // About 120 ms of work: without a turn between pages the interval could not fire once.
          for await (const event of reader.readAll()) {
            seen.push(event.position);
            spin(0.5);
          }
        } finally {
          clearInterval(timer);
        }
        expect(ticks, `readAheadAfterPages ${readAheadAfterPages}`).toBeGreaterThanOrEqual(2);
        expect(seen).toEqual((await collect(store.readAll())).map((e) => e.position));
      } finally {
        await reader.close();
      }
    }
  });

  it('keeps next() calls made without waiting in order across a turn', async () => {
    for (const readAheadAfterPages of [false, 1] as const) {
      const reader = await openSqliteEventStore({ path, pageSize: 4, readAheadAfterPages });
      try {
        const iterator = reader.readAll()[Symbol.asyncIterator]();
        await iterator.next();
        const until = performance.now() + 15;
        while (performance.now() < until);
        // The next page is due for a turn; every call made meanwhile waits behind it, in order.
        const results = await Promise.all(Array.from({ length: EVENTS + 2 }, () => iterator.next()));
        expect(results.slice(0, EVENTS - 1).map((r) => r.value?.position)).toEqual(
          (await collect(store.readAll())).slice(1).map((e) => e.position),
        );
        expect(results.slice(EVENTS - 1).every((r) => r.done)).toBe(true);
      } finally {
        await reader.close();
      }
    }
  });

  it('goes on in its own thread when a page does not fit in the read-ahead thread', async () => {
    await readsBigEvents(
      'too-big-for-the-thread',
      'x'.repeat(1_000_000),
      { pageSize: 8, readAheadMemoryMb: 8 },
      (big) => big.readStream('big'),
    );
  });

  it('a read cut short by closing the store rejects with StoreClosedError', async () => {
    const ahead = await openSqliteEventStore({ path, pageSize: 4, readAheadAfterPages: 1 });
    const iterator = ahead.readAll()[Symbol.asyncIterator]();
    for (let i = 0; i < 10; i++) await iterator.next();
    await ahead.close();
    await expect(
      (async () => {
        for (;;) if ((await iterator.next()).done) return 'ended';
      })(),
    ).rejects.toBeInstanceOf(StoreClosedError);
  });

  it('an iterator left early lets the store close, and another read then starts fresh', async () => {
    const ahead = await openSqliteEventStore({ path, pageSize: 4, readAheadAfterPages: 1 });
    try {
      let seen = 0;
      for await (const _ of ahead.readAll()) if (++seen === 30) break;
      expect(seen).toBe(30);
      expect((await collect(ahead.readAll())).length).toBe(EVENTS);
    } finally {
      await ahead.close();
    }
  });
});
