import { setHeapGrowthPercent } from '@muster/projections';
import { buildApp } from './app.js';
import { ConfigError, defaultPublicUrl, loadConfig, unknownVariables } from './config.js';
import { createLogger } from './logger.js';
import { bootstrapAdmin, demoBanner, loadDemo } from './startup.js';
import { openStores } from './stores.js';

/** Listens, and shuts down gracefully: nothing acknowledged is lost on SIGTERM or SIGINT. */
async function main(): Promise<void> {
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig();
  } catch (error) {
    const logger = createLogger({ logLevel: 'info' });
    if (error instanceof ConfigError) logger.fatal({ problems: error.problems }, error.message);
    else logger.fatal({ err: error }, 'could not read the configuration');
    process.exit(1);
  }
  setHeapGrowthPercent(config.heapGrowthPercent);
  const logger = createLogger(config);
  const unknown = unknownVariables();
  if (unknown.length > 0) {
    logger.warn({ variables: unknown }, `not read by this service (misspelled?): ${unknown.join(', ')}`);
  }
  const stores = await openStores(config).catch((error: unknown) => {
    logger.fatal(
      { err: error, store: config.store },
      `could not open the ${config.store} store: ${(error as Error).message}`,
    );
    process.exit(1);
  });
  // Whatever fails from here to listening is reported as one fatal line naming it, and the
  // process exits 1: an operator reads a cause, not a stack.
  const fail = async (what: string, error: unknown): Promise<never> => {
    const { message, code } = error as { message?: string; code?: string };
    logger.fatal({ code }, `${what}: ${message ?? String(error)}`);
    await stores.close().catch(() => {});
    process.exit(1);
  };
  const app = await buildApp({
    config,
    store: stores.store,
    sql: stores.sql,
    logger,
    pipelineAppends: stores.pipelineAppends,
  }).catch((error: unknown) => fail('could not start the service', error));
  const demo = await (async () => {
    await bootstrapAdmin(app.services, config);
    return config.demo ? await loadDemo(app.services, config) : null;
  })().catch(async (error: unknown) => {
    await app.close().catch(() => {});
    return fail('could not prepare the store (bootstrap key, demo)', error);
  });
  if (!config.webhookSecretKey) {
    logger.warn(
      'MUSTER_WEBHOOK_SECRET_KEY is not set: webhook signing secrets are stored in clear in the database',
    );
  }
  const loopback = ['127.0.0.1', 'localhost', '::1'].includes(config.host);
  if (!config.publicUrl && !loopback) {
    logger.warn(
      { host: config.host },
      `MUSTER_PUBLIC_URL is not set: links in webhook payloads will name ${defaultPublicUrl(config)}`,
    );
  }

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) {
      // A second signal is an operator who will not wait: stop now, saying so.
      logger.warn({ signal }, 'second signal during shutdown: exiting now, in-flight requests are cut');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, 'shutting down: finishing in-flight requests');
    const force = setTimeout(() => {
      logger.error('shutdown timed out; exiting');
      process.exit(1);
    }, config.shutdownTimeoutMs);
    force.unref();
    try {
      await app.close();
      logger.info('http server closed; closing the store');
      await stores.close();
      logger.info('stopped');
      process.exit(0);
    } catch (error) {
      logger.error({ err: error }, 'error during shutdown');
      process.exit(1);
    }
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));

  await app.listen({ port: config.port, host: config.host }).catch(async (error: unknown) => {
    await app.close().catch(() => {});
    return fail(`could not listen on ${config.host}:${config.port}`, error);
  });
  if (demo) {
    const host = config.host === '0.0.0.0' || config.host === '::' ? 'localhost' : config.host;
    const shown = host === '127.0.0.1' ? 'localhost' : host;
    // A human-readable banner for whoever started the demo, beside the JSON log lines.
    process.stdout.write(`${demoBanner(demo, config.publicUrl ?? `http://${shown}:${config.port}`)}\n`);
  }
}

void main();
