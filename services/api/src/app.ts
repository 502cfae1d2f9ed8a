import { randomUUID } from 'node:crypto';
import type { EventStore, SqlClient } from '@muster/event-store';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Config } from './config.js';
import { ApiError, registerErrorHandling } from './errors.js';

export interface AppDependencies {
  config: Readonly<Config>;
  store: EventStore;
  /** SQL for read models, idempotency keys and the outbox; the store's own when it has one. */
  sql: SqlClient;
  logger: Logger;
  /** The service's clock; tests pass a controlled one. */
  clock?: () => Date;
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Builds the service without listening: tests use `inject()` or `listen()` on it. */
export async function buildApp(deps: AppDependencies): Promise<FastifyInstance> {
  const { config, store, logger } = deps;
  const app = Fastify({
    // pino's Logger and fastify's logger interface differ only in typing details.
    loggerInstance: logger as unknown as FastifyBaseLogger,
    bodyLimit: config.bodyLimitBytes,
    requestTimeout: config.requestTimeoutMs,
    return503OnClosing: true,
    requestIdHeader: false,
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    },
    ajv: { customOptions: { removeAdditional: false } },
  });

  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });

  registerErrorHandling(app);

  app.get('/health/live', async () => ({ status: 'ok' }));

  app.get('/health/ready', async () => {
    try {
      await store.ping();
    } catch (error) {
      throw new ApiError(
        'not-ready',
        'The event store is not reachable',
        {
          checks: { store: { status: 'down', error: (error as Error).message } },
        },
        { 'retry-after': '1' },
      );
    }
    return { status: 'ok', checks: { store: { status: 'up', kind: store.kind } } };
  });

  return app;
}
