import { mkdtempSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StoreUnavailableError } from '@muster/event-store';
import { afterAll, describe, expect, it } from 'vitest';
import { openSqliteEventStore } from './index.js';

const dir = mkdtempSync(join(tmpdir(), 'muster-ping-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('ping', () => {
  it('fails while the file it opened is no longer at its path, and answers again once it is back', async () => {
    const path = join(dir, 'live.db');
    const store = await openSqliteEventStore({ path });
    await store.appendToStream('s', [{ type: 'Happened', data: {} }]);
    await expect(store.ping()).resolves.toBeUndefined();
    renameSync(path, `${path}.moved`);
    await expect(store.ping()).rejects.toThrow(StoreUnavailableError);
    await expect(store.ping()).rejects.toThrow(/is gone/);
    renameSync(`${path}.moved`, path);
    await expect(store.ping()).resolves.toBeUndefined();
    await store.close();
  });
});
