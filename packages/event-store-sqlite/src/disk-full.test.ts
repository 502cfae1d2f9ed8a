import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { StoreFullError, verifyStream } from '@muster/event-store';
import { collect } from '@muster/event-store/contract';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openSqliteEventStore } from './index.js';
import { mountTmpfs } from './test-support/tmpfs.js';

const mounted = mountTmpfs(3 * 1024);
const skip = typeof mounted === 'string' ? mounted : null;
if (skip) process.stderr.write(`[disk-full] skipped: ${skip}\n`);

describe.skipIf(skip !== null)('SQLite on a full disk', () => {
  const fs = mounted as { dir: string; unmount(): void };
  afterAll(() => fs.unmount());
  let ballast: string;
  beforeAll(() => {
    ballast = join(fs.dir, 'ballast');
  });

  it('fails appends with a clear typed error, corrupts nothing, and recovers when space returns', async () => {
    const path = join(fs.dir, 'muster.db');
    const store = await openSqliteEventStore({ path });
    const acknowledged: string[] = [];
    const payload = { text: 'x'.repeat(2000) };
    // Leave a little room, then write until the disk is full.
    writeFileSync(ballast, Buffer.alloc(2 * 1024 * 1024));
    let failure: unknown = null;
    for (let i = 0; i < 5000 && !failure; i++) {
      try {
        const result = await store.appendToStream(`stream-${i % 7}`, [
          { type: 'Filled', data: { i, ...payload } },
        ]);
        acknowledged.push(result.events[0]?.id as string);
      } catch (error) {
        failure = error;
      }
    }
    expect(failure).toBeInstanceOf(StoreFullError);
    expect((failure as StoreFullError).message).toMatch(/full/);
    expect((failure as StoreFullError).retryable).toBe(true);
    // Everything acknowledged is there, the chains hold, the file is sound.
    const stored = new Set((await collect(store.readAll())).map((e) => e.id));
    expect(acknowledged.filter((id) => !stored.has(id))).toEqual([]);
    for (let s = 0; s < 7; s++) expect((await verifyStream(store.readStream(`stream-${s}`))).ok).toBe(true);
    // Space returns: the same store instance accepts appends again.
    rmSync(ballast);
    const after = await store.appendToStream('stream-0', [{ type: 'Filled', data: { after: true } }]);
    expect(after.idempotent).toBe(false);
    await store.close();
    const check = new Database(path, { readonly: true });
    expect(check.pragma('integrity_check', { simple: true })).toBe('ok');
    check.close();
    const reopened = await openSqliteEventStore({ path });
    expect((await verifyStream(reopened.readStream('stream-0'))).ok).toBe(true);
    expect((await collect(reopened.readAll())).length).toBe(acknowledged.length + 1);
    await reopened.close();
  });
});
