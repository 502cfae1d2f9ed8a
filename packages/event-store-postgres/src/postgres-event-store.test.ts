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
