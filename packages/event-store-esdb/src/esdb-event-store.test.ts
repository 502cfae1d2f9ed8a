import { runEventStoreContract } from '@muster/event-store/contract';
import { afterAll } from 'vitest';
import { openEsdbEventStore } from './index.js';
import { resolveEsdbTarget } from './testing/esdb-server.js';

// Resolved before the suite is declared: a skip must be known when the suite is collected.
const target = await resolveEsdbTarget();
afterAll(() => target.stop());

runEventStoreContract(
  `esdb (${target.label})`,
  () => openEsdbEventStore({ connectionString: target.connectionString as string }),
  // EventStoreDB has no lock to hold across a decision.
  { skip: target.skip, appendUnderLock: false },
);
