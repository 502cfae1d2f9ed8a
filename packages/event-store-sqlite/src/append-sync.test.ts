import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type RecordedEvent, StoreUnavailableError } from '@muster/event-store';
import Database from 'better-sqlite3';
import { afterAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { openSqliteEventStore } from './index.js';
import { resetSyncs, syncs } from './test-support/log-syncs.js';

vi.mock('node:fs', async (importOriginal) =>
  (await import('./test-support/log-syncs.js')).withLogSyncs(await importOriginal()),
);

const dir = mkdtempSync(join(tmpdir(), 'muster-sqlite-append-sync-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
beforeEach(resetSyncs);

const event = (n: number) => ({ type: 'Counted', data: { n } });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A store with one event, and a subscriber from the start that has received it. */
async function storeWithSubscriber(name: string) {
  const store = await openSqliteEventStore({ path: join(dir, name), pollIntervalMs: 10 });
  await store.appendToStream('s-1', [event(0)]);
  const seen: RecordedEvent[] = [];
  const subscription = store.subscribeToAll({ fromPosition: 'start' });
  void (async () => {
    for await (const message of subscription) if (message.kind === 'event') seen.push(message.event);
  })();
  await vi.waitFor(() => expect(seen).toHaveLength(1));
  return { store, subscriber: { seen, close: () => subscription.close() } };
}

describe('appends on a WAL file at synchronous = FULL', () => {
  it('resolve only once the log is synced, off the event loop', async () => {
    const store = await openSqliteEventStore({ path: join(dir, 'resolve.db') });
    const result = await store.appendToStream('s-1', [event(1)]);
    expect(result.nextExpectedRevision).toBe(0);
    expect(syncs.finished).toBeGreaterThanOrEqual(1);
    const level = await store.sql.query<{ synchronous: number }>('PRAGMA synchronous');
    expect(level[0]?.synchronous).toBe(2);
    await store.close();
  });

  it('are shown to subscribers only once durable', async () => {
    const { store, subscriber } = await storeWithSubscriber('horizon.db');
    syncs.delayMs = 150;
    const pending = store.appendToStream('s-1', [event(1)]);
    await sleep(60);
    // Committed (another reader of the table sees it) but its sync is still running.
    expect(await store.streamRevision('s-1')).toBe(1);
    expect(subscriber.seen).toHaveLength(1);
    await pending;
    await vi.waitFor(() => expect(subscriber.seen.map((e) => e.data)).toEqual([{ n: 0 }, { n: 1 }]));
    await subscriber.close();
    await store.close();
  });

  it('write the next batch while the previous one syncs, and acknowledge in order', async () => {
    const store = await openSqliteEventStore({ path: join(dir, 'pipeline.db') });
    syncs.delayMs = 40;
    const acknowledged: number[] = [];
    const appends = Array.from({ length: 40 }, (_, i) =>
      store.appendToStream(`s-${i % 4}`, [event(i)]).then((r) => {
        acknowledged.push(Number(r.position));
        return r;
      }),
    );
    await Promise.all(appends);
    expect(acknowledged).toEqual([...acknowledged].sort((a, b) => a - b));
    // Group commit: far fewer syncs than appends.
    expect(syncs.started).toBeLessThan(40);
    let count = 0;
    for await (const _ of store.readAll()) count++;
    expect(count).toBe(40);
    await store.close();
  });

  it('fail when the sync fails, never reach subscribers, and refuse every later append', async () => {
    const { store, subscriber } = await storeWithSubscriber('failed.db');
    syncs.fail = Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
    await expect(store.appendToStream('s-1', [event(1)])).rejects.toBeInstanceOf(StoreUnavailableError);
    syncs.fail = null;
    await expect(store.appendToStream('s-2', [event(2)])).rejects.toBeInstanceOf(StoreUnavailableError);
    await sleep(50);
    expect(subscriber.seen).toHaveLength(1);
    await subscriber.close();
    await store.close();
  });

  it('skip the log sync when the caller chose synchronous = NORMAL', async () => {
    const store = await openSqliteEventStore({ path: join(dir, 'normal.db'), synchronous: 'NORMAL' });
    await store.appendToStream('s-1', [event(1)]);
    expect(syncs.started).toBe(0);
    await store.close();
  });

  it('keep one fsync each, inside COMMIT, without group commit (the benchmark baseline)', async () => {
    const store = await openSqliteEventStore({ path: join(dir, 'baseline.db'), groupCommit: false });
    await Promise.all(Array.from({ length: 5 }, (_, i) => store.appendToStream(`s-${i}`, [event(i)])));
    expect(syncs.started).toBe(0);
    await store.close();
  });

  it('put synchronous back to FULL when the batch cannot even begin (another writer holds the file)', async () => {
    const path = join(dir, 'busy.db');
    const store = await openSqliteEventStore({ path });
    await store.appendToStream('s-1', [event(0)]);
    await store.sql.script('PRAGMA busy_timeout = 20');
    const other = new Database(path);
    other.exec('BEGIN IMMEDIATE');
    await expect(store.appendToStream('s-1', [event(1)])).rejects.toThrow();
    other.exec('ROLLBACK');
    other.close();
    const level = await store.sql.query<{ synchronous: number }>('PRAGMA synchronous');
    expect(level[0]?.synchronous).toBe(2);
    await store.close();
  });
});
