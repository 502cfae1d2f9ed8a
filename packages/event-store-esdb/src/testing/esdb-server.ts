import { EventStoreDBClient, jsonEvent } from '@eventstore/db-client';
import { GenericContainer, getContainerRuntimeClient, type StartedTestContainer, Wait } from 'testcontainers';

/**
 * Where the EventStoreDB suites run: `ESDB_CONNECTION_STRING` when set, else a throwaway container
 * through testcontainers when a container runtime answers, else nowhere (the suite skips and says
 * why). `MUSTER_REQUIRE_ESDB=1` turns that skip into a failure, for CI machines that have Docker.
 */
export interface EsdbTarget {
  connectionString: string | undefined;
  /** Why the suite cannot run here; undefined when it can. */
  skip: string | undefined;
  /** A human description of the target, for suite names. */
  label: string;
  stop(): Promise<void>;
}

export const DEFAULT_ESDB_IMAGE = 'eventstore/eventstore:24.10';
const RUNTIME_PROBE_TIMEOUT_MS = 5_000;
const READY_TIMEOUT_MS = 60_000;

export async function resolveEsdbTarget(env: NodeJS.ProcessEnv = process.env): Promise<EsdbTarget> {
  const given = env.ESDB_CONNECTION_STRING?.trim();
  if (given) {
    return {
      connectionString: given,
      skip: undefined,
      label: 'ESDB_CONNECTION_STRING',
      stop: async () => {},
    };
  }
  const runtime = await probeContainerRuntime();
  if (!runtime.ok) {
    const reason =
      `no container runtime (testcontainers: ${runtime.reason}) and ESDB_CONNECTION_STRING is not set; ` +
      'see docs/event-store-esdb.md to run this suite';
    if (env.MUSTER_REQUIRE_ESDB === '1') throw new Error(`MUSTER_REQUIRE_ESDB=1 but ${reason}`);
    return { connectionString: undefined, skip: reason, label: 'not available', stop: async () => {} };
  }
  const image = env.ESDB_IMAGE?.trim() || DEFAULT_ESDB_IMAGE;
  const container = await startEsdbContainer(image);
  const connectionString = `esdb://${container.getHost()}:${container.getMappedPort(2113)}?tls=false`;
  await waitUntilWritable(connectionString);
  return {
    connectionString,
    skip: undefined,
    label: `testcontainers ${image}`,
    stop: async () => {
      await container.stop();
    },
  };
}

/** testcontainers' own check, bounded so that a machine without Docker skips in seconds. */
export async function probeContainerRuntime(
  timeoutMs = RUNTIME_PROBE_TIMEOUT_MS,
): Promise<{ ok: true } | { ok: false; reason: string }> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      getContainerRuntimeClient(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
    return { ok: true };
  } catch (error) {
    return { ok: false, reason: error instanceof Error ? error.message : String(error) };
  } finally {
    clearTimeout(timer);
  }
}

export function startEsdbContainer(image: string): Promise<StartedTestContainer> {
  return new GenericContainer(image)
    .withEnvironment(esdbContainerEnvironment(image))
    .withExposedPorts(2113)
    .withWaitStrategy(Wait.forHttp('/health/live', 2113).forStatusCodeMatching((s) => s >= 200 && s < 300))
    .withStartupTimeout(120_000)
    .start();
}

/** EventStoreDB reads EVENTSTORE_* settings; KurrentDB 25+ reads KURRENTDB_* (the old prefix is deprecated). */
export function esdbContainerEnvironment(image: string): Record<string, string> {
  const prefix = /kurrent/i.test(image) ? 'KURRENTDB' : 'EVENTSTORE';
  return {
    [`${prefix}_INSECURE`]: 'true',
    [`${prefix}_RUN_PROJECTIONS`]: 'None',
    [`${prefix}_MEM_DB`]: 'true',
  };
}

/** Live is not yet leader: wait until a write goes through. */
export async function waitUntilWritable(
  connectionString: string,
  timeoutMs = READY_TIMEOUT_MS,
): Promise<void> {
  const client = EventStoreDBClient.connectionString(connectionString);
  const deadline = Date.now() + timeoutMs;
  try {
    for (;;) {
      try {
        await client.appendToStream('$muster-readiness', jsonEvent({ type: '$muster.ready', data: {} }));
        return;
      } catch (error) {
        if (Date.now() > deadline) throw error;
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    }
  } finally {
    await client.dispose();
  }
}
