import { z } from 'zod';
import { ApiError } from '../errors.js';
import type { RouteRegistry } from '../routing.js';
import type { Services } from '../services.js';

/** A projection error older than this, with the projection running again, no longer fails readiness. */
const PROJECTION_ERROR_WINDOW_MS = 10_000;

export function registerOperationRoutes(
  routes: RouteRegistry,
  services: Services,
  document: () => unknown,
): void {
  // With EventStoreDB the read models, idempotency keys and outbox live in another database,
  // which commands and reads need as much as the events.
  const pingStores = async () => {
    await services.store.ping();
    if (services.store.kind === 'esdb') await services.sql.query('SELECT 1');
  };
  routes.add({
    method: 'GET',
    url: '/health/live',
    quiet: true,
    operationId: 'live',
    summary: 'Liveness: the process answers',
    tags: ['operations'],
    public: true,
    responses: { 200: { description: 'Alive', schema: z.object({ status: z.literal('ok') }) } },
    handler: async () => ({ status: 'ok' as const }),
  });

  routes.add({
    method: 'GET',
    url: '/health/ready',
    quiet: true,
    operationId: 'ready',
    summary: 'Readiness: the event store answers (and projections keep up)',
    tags: ['operations'],
    public: true,
    responses: {
      200: {
        description: 'Ready',
        schema: z.object({ status: z.literal('ok'), checks: z.record(z.string(), z.unknown()) }),
      },
      503: { description: 'Not ready (the checks say why)' },
    },
    handler: async () => {
      try {
        await pingStores();
        services.metrics.storeUp.set(1);
      } catch (error) {
        services.metrics.storeUp.set(0);
        throw new ApiError(
          'not-ready',
          'The event store is not reachable',
          {
            checks: { store: { status: 'down', kind: services.store.kind, error: (error as Error).message } },
          },
          { 'retry-after': '1' },
        );
      }
      const projections = await services.projections.status();
      // A projection that failed within the last seconds and is behind cannot serve the read side:
      // not ready. An older error it has since recovered from (its supervisor restarted it) is not.
      const recent = services.clock().getTime() - PROJECTION_ERROR_WINDOW_MS;
      // Losing the lease is not a failure: another replica leads, and this one serves what it writes.
      const isFailing = (p: (typeof projections)[number]) =>
        p.lastError !== null &&
        p.lastError.code !== 'lease-lost' &&
        Date.parse(p.lastError.at) >= recent &&
        p.behind;
      const failing = projections.filter(isFailing);
      const checks = {
        store: { status: 'up', kind: services.store.kind },
        projections: projections.map((p) => ({
          name: p.name,
          status: isFailing(p) ? 'failing' : p.behind ? 'catching-up' : 'up',
          lagEvents: p.lagEvents,
          isLeader: p.isLeader,
          lastError: p.lastError?.message ?? null,
        })),
      };
      if (failing.length > 0) {
        throw new ApiError(
          'not-ready',
          `Projection ${failing.map((p) => p.name).join(', ')} is failing`,
          { checks },
          { 'retry-after': '5' },
        );
      }
      return { status: 'ok' as const, checks };
    },
  });

  routes.add({
    method: 'GET',
    url: '/metrics',
    quiet: true,
    operationId: 'metrics',
    summary: 'Prometheus metrics',
    tags: ['operations'],
    public: true,
    responses: {
      200: { description: 'Prometheus text exposition', contentType: 'text/plain; version=0.0.4' },
    },
    handler: async ({ reply }) => {
      // Probed at every scrape too: only the readiness probe set it, so it read 0 until something
      // probed, and went stale when probing stopped.
      await pingStores().then(
        () => services.metrics.storeUp.set(1),
        () => services.metrics.storeUp.set(0),
      );
      // The status is read from the database: while it is down the scrape must still succeed, or
      // muster_store_up 0 is never seen by the alert meant for it.
      const projections = await services.projections.status().catch(() => null);
      if (projections) {
        for (const p of projections) {
          if (p.lagEvents !== null) services.metrics.projectionLag.set({ projection: p.name }, p.lagEvents);
          services.metrics.projectionCaughtUp.set({ projection: p.name }, p.caughtUp ? 1 : 0);
        }
      } else {
        // Unknown rather than the last value seen: no lag series, and nothing vouched caught up.
        const seen = (await services.metrics.projectionCaughtUp.get()).values;
        services.metrics.projectionLag.reset();
        for (const value of seen) services.metrics.projectionCaughtUp.set(value.labels, 0);
      }
      reply.type(services.metrics.registry.contentType);
      return services.metrics.registry.metrics();
    },
  });

  routes.add({
    method: 'GET',
    url: '/openapi.json',
    operationId: 'openapi',
    summary: 'This OpenAPI 3.1 document',
    tags: ['operations'],
    public: true,
    responses: {
      200: {
        description: 'The document',
        schema: z.record(z.string(), z.unknown()).describe('An OpenAPI 3.1 document'),
      },
    },
    handler: async () => document(),
  });
}
