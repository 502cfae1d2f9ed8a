import { MessageReader, runEventStoreContract } from '@muster/event-store/contract';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { openPostgresEventStore } from './index.js';
import { createTestDatabase } from './test-support/database.js';

const database = await createTestDatabase('contract');
afterAll(async () => {
  await database.drop?.();
});

runEventStoreContract(
  'postgres',
  () => openPostgresEventStore({ connectionString: database.url as string, pollIntervalMs: 200 }),
  { skip: database.skip, appendUnderLock: true },
);

// The option for pipelining writers only ever refuses an append whose predecessor failed: the port's
// contract holds with it too.
runEventStoreContract(
  'postgres (chainPipelinedAppends)',
  () =>
    openPostgresEventStore({
      connectionString: database.url as string,
      pollIntervalMs: 200,
      chainPipelinedAppends: true,
    }),
  { skip: database.skip, appendUnderLock: true },
);

describe.skipIf(database.skip !== undefined)('subscribeToAll from the end', () => {
  it('delivers an append issued after subscribing, while older transactions hold the end back', async () => {
    const store = await openPostgresEventStore({
      connectionString: database.url as string,
      pollIntervalMs: 200,
    });
    const older = new pg.Client({ connectionString: database.url as string });
    await older.connect();
    try {
      // An open transaction older than the newest event: the end is read only once it finishes.
      await older.query('BEGIN');
      await older.query('SELECT pg_current_xact_id()');
      await store.appendToStream('end-race-other', [{ type: 'Before', data: {} }]);
      const sub = store.subscribeToAll({
        fromPosition: 'end',
        filter: { streamPrefixes: ['end-race-mine'] },
      });
      try {
        const written = await store.appendToStream('end-race-mine', [{ type: 'After', data: {} }]);
        setTimeout(() => void older.query('COMMIT'), 100);
        const [event] = await new MessageReader(sub, 5000).events(1);
        expect(event?.position).toBe(written.position);
      } finally {
        await sub.close();
      }
    } finally {
      await older.end();
      await store.close();
    }
  });
});
