import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { verifyStream } from '@muster/event-store';
import { collect } from '@muster/event-store/contract';
import { afterAll, describe, expect, it } from 'vitest';
import { backupSqliteFile, openSqliteEventStore } from './index.js';
import { mountTmpfs } from './test-support/tmpfs.js';

const dir = mkdtempSync(join(tmpdir(), 'muster-backup-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('backupSqliteFile', () => {
  it('copies a file in use, whole and consistent, with the read models beside the events', async () => {
    const source = join(dir, 'live.db');
    const store = await openSqliteEventStore({ path: source });
    await store.sql.execute('CREATE TABLE read_model (k TEXT PRIMARY KEY, v TEXT)');
    await store.sql.execute("INSERT INTO read_model VALUES ('a', 'b')");
    for (let i = 0; i < 20; i++) {
      await store.appendToStream(`stream-${i % 3}`, [
        { type: 'Happened', data: { i, text: 'ü'.repeat(i) } },
        { type: 'Happened', data: { i, second: true } },
      ]);
    }
    // The store stays open and keeps writing after the copy: the copy is what was there before.
    const copy = backupSqliteFile(source, join(dir, 'backups', 'daily', 'copy.db'));
    await store.appendToStream('stream-after', [{ type: 'Happened', data: {} }]);
    expect(copy).toMatchObject({ events: 40, headPosition: 40, check: 'ok' });
    expect(copy.bytes).toBeGreaterThan(0);

    const restored = await openSqliteEventStore({ path: copy.path });
    const original = await collect(store.readAll());
    const copied = await collect(restored.readAll());
    expect(copied).toEqual(original.slice(0, 40));
    for (let i = 0; i < 3; i++) {
      expect((await verifyStream(restored.readStream(`stream-${i}`))).ok).toBe(true);
    }
    expect(await restored.sql.query('SELECT * FROM read_model')).toEqual([{ k: 'a', v: 'b' }]);
    await restored.close();
    await store.close();
  });

  it('never writes over a file, and says when there is nothing to copy', () => {
    const source = join(dir, 'any.db');
    writeFileSync(source, '');
    const taken = join(dir, 'taken.db');
    writeFileSync(taken, 'precious');
    expect(() => backupSqliteFile(source, taken)).toThrow(/exists/);
    expect(() => backupSqliteFile(join(dir, 'missing.db'), join(dir, 'new.db'))).toThrow(/No SQLite file/);
    expect(existsSync(join(dir, 'new.db'))).toBe(false);
  });

  it('leaves nothing behind when the copy fails half-way (a full disk), so the retry can run', async () => {
    const mounted = mountTmpfs(256);
    if (typeof mounted === 'string') {
      process.stderr.write(`[backup] full-disk case skipped: ${mounted}\n`);
      return;
    }
    try {
      const source = join(dir, 'big.db');
      const store = await openSqliteEventStore({ path: source });
      for (let i = 0; i < 40; i++) {
        await store.appendToStream(`big-${i}`, [{ type: 'Happened', data: { text: 'x'.repeat(20_000), i } }]);
      }
      await store.close();
      const destination = join(mounted.dir, 'copy.db');
      expect(() => backupSqliteFile(source, destination)).toThrow(/full/i);
      expect(existsSync(destination)).toBe(false);
    } finally {
      mounted.unmount();
    }
  });
});
