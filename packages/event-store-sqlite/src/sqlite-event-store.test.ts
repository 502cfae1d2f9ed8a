import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runEventStoreContract } from '@muster/event-store/contract';
import { afterAll } from 'vitest';
import { openSqliteEventStore } from './index.js';

const dir = mkdtempSync(join(tmpdir(), 'muster-sqlite-contract-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

runEventStoreContract('sqlite (file, WAL, synchronous=FULL)', () =>
  openSqliteEventStore({ path: join(dir, 'contract.db'), pollIntervalMs: 200 }),
);

runEventStoreContract('sqlite (:memory:)', () =>
  openSqliteEventStore({ path: ':memory:', pollIntervalMs: 200 }),
);

// Every read past its first page goes on from a read-ahead thread: the whole contract through it.
runEventStoreContract('sqlite (file, pages of 3, read-ahead after one page)', () =>
  openSqliteEventStore({
    path: join(dir, 'contract-read-ahead.db'),
    pollIntervalMs: 200,
    pageSize: 3,
    readAheadAfterPages: 1,
  }),
);
