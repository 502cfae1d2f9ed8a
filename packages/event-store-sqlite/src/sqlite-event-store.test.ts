import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InvalidReadOptionsError } from '@muster/event-store';
import { runEventStoreContract } from '@muster/event-store/contract';
import { afterAll, describe, expect, it } from 'vitest';
import { openSqliteEventStore } from './index.js';

const dir = mkdtempSync(join(tmpdir(), 'muster-sqlite-contract-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

runEventStoreContract(
  'sqlite (file, WAL, synchronous=FULL)',
  () => openSqliteEventStore({ path: join(dir, 'contract.db'), pollIntervalMs: 200 }),
  { appendUnderLock: true },
);

runEventStoreContract(
  'sqlite (:memory:)',
  () => openSqliteEventStore({ path: ':memory:', pollIntervalMs: 200 }),
  { appendUnderLock: true },
);

// Every read past its first page goes on from a read-ahead thread: the whole contract through it.
runEventStoreContract(
  'sqlite (file, pages of 3, read-ahead after one page)',
  () =>
    openSqliteEventStore({
      path: join(dir, 'contract-read-ahead.db'),
      pollIntervalMs: 200,
      pageSize: 3,
      readAheadAfterPages: 1,
    }),
  { appendUnderLock: true },
);

describe('canonicalPosition', () => {
  it('pads a shorter run of digits to the 20 the store emits, so that it sorts as a position', async () => {
    const store = await openSqliteEventStore({ path: ':memory:' });
    try {
      expect(store.canonicalPosition('19')).toBe('00000000000000000019');
      expect(store.canonicalPosition('19') < store.canonicalPosition('100')).toBe(true);
      expect(() => store.canonicalPosition('99999999999999999999')).toThrow(InvalidReadOptionsError);
    } finally {
      await store.close();
    }
  });
});
