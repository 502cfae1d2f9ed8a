import { randomUUID } from 'node:crypto';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { type EventStore, type SqlClient, uuidv7 } from '@muster/event-store';
import { createReadinessProjection, createReadinessQueries, startProjections } from '@muster/projections';
import { createWebhookService } from '@muster/webhooks';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
} from 'fastify';
import type { Logger } from 'pino';
import { AgencyRegistry, AgencyService } from './auth/agencies.js';
import { bearerToken } from './auth/api-keys.js';
import { type Principal, readScope } from './auth/roles.js';
import { type Config, defaultPublicUrl } from './config.js';
import { AllowedMethods, ApiError, answerClientError, registerErrorHandling, sendProblem } from './errors.js';
import { HEARTBEAT_EVERY_MS, IdempotencyStore } from './idempotency.js';
import { registerJsonBodyParser } from './json-body.js';
import { lazyRequestLogger } from './logger.js';
import { Metrics } from './metrics.js';
import { MissionWriter } from './missions/mission-writer.js';
import { ProjectedReadModel } from './missions/projected-read-model.js';
import { webhookDocuments } from './openapi-webhooks.js';
import { type RateDecision, RateLimiter } from './rate-limit.js';
import { registerAdminRoutes } from './routes/admin.js';
import { registerAgencyRoutes } from './routes/agencies.js';
import { registerCommandRoutes } from './routes/commands.js';
import { registerMissionRoutes } from './routes/missions.js';
import { registerOperationRoutes } from './routes/operations.js';
import { registerWebhookRoutes } from './routes/webhooks.js';
import { openApiDocument, RouteRegistry, readsMinPosition } from './routing.js';
import type { Services } from './services.js';

export interface AppDependencies {
  config: Readonly<Config>;
  store: EventStore;
  /** SQL for read models, idempotency keys and the outbox; the store's own when it has one. */
  sql: SqlClient;
  logger: Logger;
  /** The service's clock; tests pass a controlled one. */
  clock?: () => Date;
  /** See OpenedStores.pipelineAppends; true for the embedded store. */
  pipelineAppends?: boolean;
}

export const API_VERSION = '1.0.0';
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
/** How long a read with Muster-Min-Position waits for the read models before a 503. */
const MIN_POSITION_WAIT_MS = 2000;

declare module 'fastify' {
  interface FastifyInstance {
    services: Services;
    /** Every `METHOD /url` the service answers (HEAD excepted), as registered. */
    routeTable: string[];
  }
}

/** Builds the service without listening: tests use `inject()` or `listen()` on it. */
export async function buildApp(deps: AppDependencies): Promise<FastifyInstance> {
  const { config, store, sql, logger } = deps;
  const clock = deps.clock ?? (() => new Date());
  const app = Fastify({
    // pino's Logger and fastify's logger interface differ only in typing details.
    loggerInstance: logger as unknown as FastifyBaseLogger,
    bodyLimit: config.bodyLimitBytes,
    requestTimeout: config.requestTimeoutMs,
    return503OnClosing: true,
    clientErrorHandler: answerClientError,
    // `/v1/missions/` is the list, not a mission with an empty id (which answered 400).
    routerOptions: { ignoreTrailingSlash: true },
    // Errors fastify raises before routing (a bad URL, a path segment too long) are problems too.
    frameworkErrors: (error, request, reply) => {
      sendProblem(reply, request, error);
    },
    childLoggerFactory: (parent, bindings, options) =>
      lazyRequestLogger(
        parent as unknown as Logger,
        bindings,
        options as never,
      ) as unknown as FastifyBaseLogger,
    requestIdHeader: false,
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    },
  });

  const routeTable: string[] = [];
  const allowed = new AllowedMethods();
  app.decorate('routeTable', routeTable);
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) {
      allowed.add(method, route.url);
      if (method !== 'HEAD') routeTable.push(`${method} ${route.url}`);
    }
  });

  // Bodies are JSON only: anything else is 415, not a string that fails validation.
  app.removeContentTypeParser('text/plain');
  registerJsonBodyParser(app);

  const metrics = new Metrics();
  const registry = new AgencyRegistry(store, clock);
  const instanceId = uuidv7();
  const idempotency = new IdempotencyStore(
    sql,
    clock,
    Math.max(config.requestTimeoutMs, 10_000) * 2,
    instanceId,
  );
  await idempotency.migrate();
  await idempotency.heartbeat();
  if (store.kind === 'sqlite') {
    // The embedded store has a single process: claims left in progress belong to a dead one, and
    // so do the leases another service instance holds.
    await idempotency.expireInProgress();
    const freed = await idempotency.freeLeasesOfOtherInstances();
    if (freed > 0) logger.info({ leases: freed }, 'freed the leases of the previous service process');
  }
  const readinessProjection = createReadinessProjection({ store, cacheEvents: config.stateCacheEvents });
  const projections = await startProjections({
    store,
    sql,
    projections: [readinessProjection],
    // Lease owners are service instances, which a restart on the embedded store can recognise.
    instanceId,
    logger: logger.child({ component: 'projections' }),
    clock,
    // After a store outage the read side must come back within seconds, not half a minute.
    backoff: { initialMs: 200, maxMs: 5_000 },
  });
  const queries = createReadinessQueries({ store, sql, projection: readinessProjection });
  let readModel: ProjectedReadModel | null = null;
  const writer = new MissionWriter({
    store,
    onCommitted: (position) => readModel?.committed(position),
    pipeline: deps.pipelineAppends ?? store.kind === 'sqlite',
    sharedStore: store.kind !== 'sqlite',
    maxCachedEvents: config.stateCacheEvents,
    knownState: (missionId) => readinessProjection.latestState(missionId),
    onLocked: (outcome) => metrics.lockedCommands.inc({ outcome }),
    onAppend: (seconds, ok, error) => {
      metrics.appendDuration.observe({ outcome: ok ? 'ok' : 'error' }, seconds);
      // A full disk leaves reads (and so readiness) working: this says whether writes do.
      if (ok) metrics.storeWritable.set(1);
      else if ((error as { code?: string } | undefined)?.code === 'store-full') metrics.storeWritable.set(0);
    },
  });
  readModel = new ProjectedReadModel(writer, queries, projections, clock);
  await registry.start((error) => logger.error({ err: error }, 'agency subscription dropped; resubscribing'));
  const webhooks = createWebhookService({
    sql,
    publicUrl: config.publicUrl ?? defaultPublicUrl(config),
    allowHttp: config.webhookAllowHttp,
    allowCidrs: config.webhookAllowCidrs,
    clock: { now: () => clock().getTime() },
    canonicalPosition: (position) => store.canonicalPosition(position),
    missionScope: (agencyId) => {
      const agency = registry.agency(agencyId);
      return agency ? readScope(agency) : [];
    },
    logger: logger.child({ component: 'webhooks' }),
    ...(config.webhookSecretKey ? { secretKey: config.webhookSecretKey } : {}),
    changeSignal: projections,
    dispatcherId: instanceId,
  });
  await webhooks.migrate();
  await webhooks.start();
  const services: Services = {
    config,
    store,
    sql,
    logger,
    clock,
    metrics,
    registry,
    agencies: new AgencyService(store, registry),
    idempotency,
    writer,
    readModel,
    projections,
    queries,
    webhooks,
  };
  app.decorate('services', services);

  const purge = setInterval(
    () => {
      idempotency.purgeExpired().catch((error) => logger.warn({ err: error }, 'idempotency purge failed'));
    },
    60 * 60 * 1000,
  );
  purge.unref();
  const heartbeat = setInterval(() => {
    idempotency.heartbeat().catch((error) => logger.warn({ err: error }, 'heartbeat failed'));
  }, HEARTBEAT_EVERY_MS);
  heartbeat.unref();
  app.addHook('onClose', async () => {
    clearInterval(purge);
    clearInterval(heartbeat);
    await idempotency.retire().catch(() => {});
    await registry.stop();
    await webhooks.stop();
    await projections.close();
  });

  // Callback hooks here and below: an async one costs every request a promise and a microtask turn.
  app.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id);
    done();
  });

  // Read-your-writes across replicas: a read that names the position a write answered with waits
  // (briefly) until this process's read models hold it, whichever replica took the write.
  app.addHook('preHandler', (request, _reply, done) => {
    const given = request.headers['muster-min-position'];
    // Only the API's reads: probes, metrics and the document answer at once whatever they carry.
    if (given === undefined || !readsMinPosition(request)) return done();
    let position: string;
    try {
      if (typeof given !== 'string')
        throw new ApiError('invalid-header', 'Muster-Min-Position must be one position');
      position = store.canonicalPosition(given);
    } catch (error) {
      // The store's own refusal (invalid-read-options) is about read options, not the header the
      // caller got wrong: answer as for every other bad header.
      return done(
        error instanceof ApiError
          ? error
          : new ApiError(
              'invalid-header',
              `Muster-Min-Position is not a log position: ${(error as Error).message}`,
            ),
      );
    }
    projections.waitForPosition(position, MIN_POSITION_WAIT_MS).then(
      (reached) =>
        done(
          reached
            ? undefined
            : new ApiError(
                'not-ready',
                `The read models have not reached position ${position} yet; retry`,
                { position },
                { 'retry-after': '1' },
              ),
        ),
      (error: unknown) => done(error as Error),
    );
  });

  // Graceful shutdown: requests in flight when closing begins still finish, but their keep-alive
  // connections must not linger afterwards (the server waits for every connection to end).
  let closing = false;
  let idleSweeper: NodeJS.Timeout | undefined;
  app.addHook('preClose', async () => {
    closing = true;
    idleSweeper = setInterval(() => app.server.closeIdleConnections(), 50);
    idleSweeper.unref();
  });
  app.addHook('onClose', async () => clearInterval(idleSweeper));
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (closing) reply.header('connection', 'close');
    done(null, payload);
  });
  metrics.instrument(app);
  // A keyed command claims its key before it appends, so on a full disk the claim fails first and
  // onAppend never hears of it: any request refused for lack of space says writes do not work.
  app.addHook('onError', (_request, _reply, error, done) => {
    if ((error as { code?: string }).code === 'store-full') metrics.storeWritable.set(0);
    done();
  });
  registerErrorHandling(app, allowed);

  const perKey = new RateLimiter(config.rateLimitPerMinute);
  // Failed authentication is limited per client address, so that guessing keys is slow too.
  const failures = new RateLimiter(Math.min(config.rateLimitPerMinute, 120) || 120);
  const limited = (decision: RateDecision, reply: FastifyReply, who: string) => {
    if (decision.limit > 0) {
      reply.header('ratelimit-limit', String(decision.limit));
      reply.header('ratelimit-remaining', String(decision.remaining));
      reply.header('ratelimit-reset', String(decision.resetSeconds));
      reply.header('ratelimit-policy', `${decision.limit};w=${decision.windowSeconds}`);
    }
    if (!decision.allowed) {
      throw new ApiError(
        'rate-limited',
        `Too many requests ${who}; retry after ${decision.retryAfterSeconds} s`,
        {},
        { 'retry-after': String(decision.retryAfterSeconds) },
      );
    }
  };
  const authenticate = (request: FastifyRequest, reply: FastifyReply): Principal => {
    const token = bearerToken(request.headers.authorization);
    const principal = token ? registry.authenticate(token) : null;
    if (!principal) {
      limited(failures.take(`ip:${request.ip}`), reply, 'with invalid credentials from this address');
      throw new ApiError(
        'unauthorized',
        token
          ? 'The API key is not valid (unknown, revoked or expired)'
          : 'Send an API key: Authorization: Bearer <key>',
      );
    }
    limited(perKey.take(principal.keyId), reply, 'for this API key');
    request.log.debug({ agency: principal.agencyId, keyId: principal.keyId }, 'authenticated');
    return principal;
  };
  const routes = new RouteRegistry(app, authenticate, config.requestTimeoutMs, (principal) =>
    registry.isActive(principal.keyId),
  );
  let document: unknown;
  const getDocument = () => {
    document ??= openApiDocument(
      routes.routes,
      { version: API_VERSION, serverUrl: config.publicUrl },
      webhookDocuments(),
    );
    return document;
  };
  registerOperationRoutes(routes, services, getDocument);
  registerCommandRoutes(routes, services);
  registerMissionRoutes(routes, services);
  registerAgencyRoutes(routes, services);
  registerWebhookRoutes(routes, services);
  registerAdminRoutes(routes, services);

  await app.register(swagger, { mode: 'static', specification: { document: getDocument() as never } });
  await app.register(swaggerUi, {
    routePrefix: '/docs',
    uiConfig: { docExpansion: 'list', deepLinking: true, persistAuthorization: false },
    staticCSP: true,
  });
  app.addHook('onSend', (request, reply, payload, done) => {
    if (request.url.startsWith('/docs')) {
      reply.header('x-content-type-options', 'nosniff');
      reply.header('x-frame-options', 'DENY');
      reply.header('referrer-policy', 'no-referrer');
      reply.header('cross-origin-opener-policy', 'same-origin');
    }
    done(null, payload);
  });
  return app;
}
