import { runEventStoreContract } from '@muster/event-store/contract';
import { afterAll } from 'vitest';
import { openPostgresEventStore } from './index.js';
import { createTestDatabase } from './test-support/database.js';

const database = await createTestDatabase('contract');
afterAll(async () => {
  await database.drop?.();
});

runEventStoreContract(
  'postgres',
  () => openPostgresEventStore({ connectionString: database.url as string, pollIntervalMs: 200 }),
  { skip: database.skip },
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
  { skip: database.skip },
);
