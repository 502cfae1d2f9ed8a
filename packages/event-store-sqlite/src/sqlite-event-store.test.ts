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
