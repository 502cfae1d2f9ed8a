import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StoreUnavailableError } from '@muster/event-store';
import { afterAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { openSqliteSql } from './index.js';
import { resetSyncs, syncs } from './test-support/log-syncs.js';

vi.mock('node:fs', async (importOriginal) =>
  (await import('./test-support/log-syncs.js')).withLogSyncs(await importOriginal()),
);

const dir = mkdtempSync(join(tmpdir(), 'muster-sqlite-bgsync-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
beforeEach(resetSyncs);

async function open(name: string) {
  const sql = openSqliteSql(join(dir, name));
  await sql.script('CREATE TABLE t (n INTEGER NOT NULL)');
  return sql;
}

const level = async (sql: ReturnType<typeof openSqliteSql>) =>
  Number((await sql.query<{ synchronous: number }>('PRAGMA synchronous'))[0]?.synchronous);

describe('transactions that sync in the background', () => {
  it('resolve only after the log was synced, and put synchronous back to FULL', async () => {
    const sql = await open('resolve.db');
    const value = await sql.transaction(
      async (tx) => {
        await tx.execute('INSERT INTO t (n) VALUES (1)');
        return 'done';
      },
      { syncInBackground: true },
    );
    expect(value).toBe('done');
    expect(syncs.finished).toBe(1);
    expect(await level(sql)).toBe(2);
    expect(await sql.query('SELECT n FROM t')).toEqual([{ n: 1 }]);
    await sql.close();
  });

  it('with durable: false, commit at NORMAL without any sync, then put synchronous back to FULL', async () => {
    const sql = await open('relaxed.db');
    const during = await sql.transaction(
      async (tx) => {
        await tx.execute('INSERT INTO t (n) VALUES (1)');
        return Number((await tx.query<{ synchronous: number }>('PRAGMA synchronous'))[0]?.synchronous);
      },
      { durable: false, syncInBackground: true },
    );
    expect(during).toBe(1);
    expect(syncs.started).toBe(0);
    expect(await level(sql)).toBe(2);
    expect(await sql.query('SELECT n FROM t')).toEqual([{ n: 1 }]);
    await sql.close();
  });

  it('let the event loop run while the log is synced', async () => {
    const sql = await open('loop.db');
    syncs.delayMs = 100;
    const order: string[] = [];
    const committed = sql
      .transaction((tx) => tx.execute('INSERT INTO t (n) VALUES (1)'), { syncInBackground: true })
      .then(() => order.push('durable'));
    setTimeout(() => order.push('timer'), 10);
    // Meanwhile the database serves others: the lock was released at the commit.
    const rows = await sql.query('SELECT n FROM t');
    expect(rows).toEqual([{ n: 1 }]);
    await committed;
    expect(order).toEqual(['timer', 'durable']);
    expect(syncs.finished).toBe(1);
    await sql.close();
  });

  it('share fsyncs: commits made while one runs wait for the next one, not one each', async () => {
    const sql = await open('shared.db');
    await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        sql.transaction((tx) => tx.execute('INSERT INTO t (n) VALUES ($1)', [i]), { syncInBackground: true }),
      ),
    );
    expect(syncs.finished).toBeGreaterThanOrEqual(1);
    expect(syncs.finished).toBeLessThan(40);
    expect(await sql.query('SELECT COUNT(*) AS c FROM t')).toEqual([{ c: 40 }]);
    await sql.close();
  });

  it('put synchronous back to FULL after a rollback too, and are not synced then', async () => {
    const sql = await open('rollback.db');
    await expect(
      sql.transaction(
        async (tx) => {
          await tx.execute('INSERT INTO t (n) VALUES (1)');
          throw new Error('no');
        },
        { syncInBackground: true },
      ),
    ).rejects.toThrow('no');
    expect(syncs.started).toBe(0);
    expect(await level(sql)).toBe(2);
    expect(await sql.query('SELECT n FROM t')).toEqual([]);
    await sql.close();
  });

  it('are ordinary FULL commits without the option, or when the caller chose a weaker level', async () => {
    const sql = await open('plain.db');
    await sql.transaction((tx) => tx.execute('INSERT INTO t (n) VALUES (1)'));
    expect(syncs.started).toBe(0);
    await sql.script('PRAGMA synchronous = NORMAL');
    await sql.transaction((tx) => tx.execute('INSERT INTO t (n) VALUES (2)'), { syncInBackground: true });
    expect(syncs.started).toBe(0);
    expect(await level(sql)).toBe(1);
    await sql.close();
  });

  it('fail, then refuse every later transaction, when the fsync fails', async () => {
    const sql = await open('eio.db');
    syncs.fail = Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
    await expect(
      sql.transaction((tx) => tx.execute('INSERT INTO t (n) VALUES (1)'), { syncInBackground: true }),
    ).rejects.toBeInstanceOf(StoreUnavailableError);
    syncs.fail = null;
    // A retried fsync can succeed without the pages the failed one dropped: nothing is trusted.
    await expect(
      sql.transaction((tx) => tx.execute('INSERT INTO t (n) VALUES (2)'), { syncInBackground: true }),
    ).rejects.toBeInstanceOf(StoreUnavailableError);
    await expect(sql.transaction((tx) => tx.execute('INSERT INTO t (n) VALUES (3)'))).rejects.toBeInstanceOf(
      StoreUnavailableError,
    );
    await sql.close();
  });

  it('are ordinary transactions in memory (no log to sync)', async () => {
    const sql = openSqliteSql(':memory:');
    await sql.script('CREATE TABLE t (n INTEGER NOT NULL)');
    await sql.transaction((tx) => tx.execute('INSERT INTO t (n) VALUES (1)'), { syncInBackground: true });
    expect(syncs.started).toBe(0);
    expect(await sql.query('SELECT n FROM t')).toEqual([{ n: 1 }]);
    await sql.close();
  });
});
