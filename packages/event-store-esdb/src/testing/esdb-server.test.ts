import { describe, expect, it } from 'vitest';
import { esdbContainerEnvironment, probeContainerRuntime, resolveEsdbTarget } from './esdb-server.js';

describe('where the EventStoreDB suite runs', () => {
  it('uses ESDB_CONNECTION_STRING as given, without looking for a container runtime', async () => {
    const target = await resolveEsdbTarget({ ESDB_CONNECTION_STRING: ' esdb://db:2113?tls=false ' });
    expect(target).toMatchObject({
      connectionString: 'esdb://db:2113?tls=false',
      skip: undefined,
      label: 'ESDB_CONNECTION_STRING',
    });
  });

  it('without a runtime, skips with the reason, or fails when MUSTER_REQUIRE_ESDB=1', async () => {
    const runtime = await probeContainerRuntime();
    if (runtime.ok) return; // A machine with Docker would start a container here; covered by the contract run.
    const target = await resolveEsdbTarget({});
    expect(target.connectionString).toBeUndefined();
    expect(target.skip).toContain('no container runtime');
    expect(target.skip).toContain('ESDB_CONNECTION_STRING');
    await expect(resolveEsdbTarget({ MUSTER_REQUIRE_ESDB: '1' })).rejects.toThrow(/MUSTER_REQUIRE_ESDB=1/);
  });

  it('configures EventStoreDB and KurrentDB images in insecure, in-memory mode without projections', () => {
    expect(esdbContainerEnvironment('eventstore/eventstore:24.10')).toEqual({
      EVENTSTORE_INSECURE: 'true',
      EVENTSTORE_RUN_PROJECTIONS: 'None',
      EVENTSTORE_MEM_DB: 'true',
    });
    expect(esdbContainerEnvironment('docker.eventstore.com/kurrent-latest/kurrentdb')).toEqual({
      KURRENTDB_INSECURE: 'true',
      KURRENTDB_RUN_PROJECTIONS: 'None',
      KURRENTDB_MEM_DB: 'true',
    });
  });
});
