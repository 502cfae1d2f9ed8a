import { setHeapGrowthPercent } from '@muster/projections';
import { buildApp } from './app.js';
import { ConfigError, loadConfig } from './config.js';
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
  const stores = await openStores(config).catch((error: unknown) => {
    logger.fatal(
      { err: error, store: config.store },
      `could not open the ${config.store} store: ${(error as Error).message}`,
    );
    process.exit(1);
  });
  const app = await buildApp({
    config,
    store: stores.store,
    sql: stores.sql,
    logger,
    pipelineAppends: stores.pipelineAppends,
  });
  await bootstrapAdmin(app.services, config);
  const demo = config.demo ? await loadDemo(app.services, config) : null;

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
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

  await app.listen({ port: config.port, host: config.host });
  if (demo) {
    const host = config.host === '0.0.0.0' || config.host === '::' ? 'localhost' : config.host;
    const shown = host === '127.0.0.1' ? 'localhost' : host;
    // A human-readable banner for whoever started the demo, beside the JSON log lines.
    process.stdout.write(`${demoBanner(demo, config.publicUrl ?? `http://${shown}:${config.port}`)}\n`);
  }
}

void main();
