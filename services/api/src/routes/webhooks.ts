import { z } from 'zod';
import { type Principal, readScope } from '../auth/roles.js';
import { ApiError } from '../errors.js';
import type { RouteRegistry } from '../routing.js';
import type { Services } from '../services.js';

/**
 * Webhook subscriptions belong to the agency of the key that made them: every call passes the
 * caller's agency, and another agency's subscription answers 404 like a missing one. The webhook
 * service validates bodies itself (every bad field at once); the schemas here document them.
 */
const eventType = z.enum(['readiness.changed', 'precondition.changed', 'pledge.changed']);

const subscriptionSchema = z.object({
  id: z.string(),
  url: z.string(),
  missions: z.union([z.literal('*'), z.array(z.string())]),
  eventTypes: z.array(eventType),
  description: z.string(),
  status: z.enum(['enabled', 'disabled']),
  disabledReason: z.enum(['gone', 'failing', 'manual']).nullable(),
  disabledAt: z.string().nullable(),
  failingSince: z.string().nullable(),
  secrets: z.array(z.object({ createdAt: z.string(), expiresAt: z.string().nullable() })),
  createdAt: z.string(),
  updatedAt: z.string(),
});

const withSecret = subscriptionSchema.extend({
  secret: z.string().describe('The signing secret (whsec_...): shown only in this response'),
});

const deliverySchema = z.object({
  id: z.string(),
  messageId: z.string().describe('The webhook-id header: the same on every retry and replay'),
  subscriptionId: z.string(),
  eventType: z.string(),
  missionId: z.string().nullable(),
  version: z.int().nullable(),
  trigger: z.enum(['scheduled', 'manual', 'test']),
  status: z.enum(['pending', 'delivered', 'failed']),
  attempts: z.int(),
  nextAttemptAt: z.string().nullable().describe('Null unless pending at the head of its queue'),
  waitingBehindEarlier: z.boolean().describe('Pending behind an earlier delivery of its queue'),
  lastAttemptAt: z.string().nullable(),
  lastStatusCode: z.int().nullable(),
  lastErrorClass: z.enum(['dns', 'connect', 'tls', 'timeout', 'http', 'blocked']).nullable(),
  deliveredAt: z.string().nullable(),
  createdAt: z.string(),
});

const deliveryWithPayload = deliverySchema.extend({
  payload: z.unknown().describe('The body exactly as signed and sent (parsed)'),
});

const attemptSchema = z.object({
  id: z.string(),
  deliveryId: z.string(),
  attempt: z.int(),
  trigger: z.string(),
  startedAt: z.string(),
  latencyMs: z.number(),
  outcome: z.enum(['succeeded', 'failed']),
  statusCode: z.int().nullable(),
  errorClass: z.string().nullable(),
  errorMessage: z.string().nullable(),
  responseBody: z.string().nullable().describe('The first 4 KiB of the response'),
});

const page = <T extends z.ZodType>(item: T) =>
  z.object({ items: z.array(item), next: z.string().nullable() });

const createBody = z.object({
  url: z
    .string()
    .describe('https (http only where MUSTER_WEBHOOK_ALLOW_HTTP is set); must resolve to public addresses'),
  missions: z.union([z.literal('*'), z.array(z.string())]).optional(),
  eventTypes: z.array(eventType).optional(),
  description: z.string().optional(),
});

const updateBody = createBody.partial().extend({ enabled: z.boolean().optional() });

const replayBody = z.union([
  z.object({ since: z.string(), until: z.string().optional(), onlyFailed: z.boolean().optional() }),
  z.object({ afterChangeSeq: z.int() }),
  z.object({ fromEventPosition: z.string() }),
]);

const idParam = z.object({ id: z.string().min(1).max(100) });
const listQuery = z.object({
  after: z.string().max(200).optional(),
  limit: z.coerce.number().int().min(1).max(200).optional(),
});
const deliveriesQuery = listQuery.extend({ status: z.enum(['pending', 'delivered', 'failed']).optional() });

const agencyOf = (principal: Principal | null) => (principal as Principal).agencyId;

/**
 * A subscription may name only missions its agency may read: one it may not is refused, rather
 * than kept and silently never sent (`"*"` means every mission the agency may read).
 */
function requireReadable(principal: Principal | null, body: unknown): void {
  if (!principal || typeof body !== 'object' || body === null) return;
  const missions = (body as { missions?: unknown }).missions;
  const scope = readScope(principal);
  if (scope === '*' || !Array.isArray(missions)) return;
  const outside = missions.filter((m): m is string => typeof m === 'string' && !scope.includes(m));
  if (outside.length > 0) {
    throw new ApiError(
      'forbidden',
      `Agency '${principal.agencyId}' may not read ${outside.map((m) => `'${m}'`).join(', ')}`,
    );
  }
}
const notFound = { 404: { description: 'No such subscription (or not yours)' } };

export function registerWebhookRoutes(routes: RouteRegistry, services: Services): void {
  const { webhooks } = services;
  const tags = ['webhooks'];

  routes.add({
    method: 'POST',
    url: '/v1/webhooks',
    operationId: 'createWebhook',
    summary: 'Subscribes a URL to readiness changes; the signing secret is in this response only',
    tags,
    body: createBody,
    validatedByHandler: true,
    responses: {
      201: {
        description: 'The subscription and its secret',
        schema: withSecret,
        headers: { Location: { description: 'The subscription', schema: z.string() } },
      },
      400: { description: 'Invalid fields (each listed)' },
      403: { description: 'A mission the agency may not read' },
      422: { description: 'The URL is not allowed (private address, http, ...)' },
    },
    handler: async ({ principal, request, reply }) => {
      requireReadable(principal, request.body);
      const created = await webhooks.createSubscription(agencyOf(principal), request.body);
      reply.code(201).header('location', `/v1/webhooks/${created.id}`).header('cache-control', 'no-store');
      return created;
    },
  });

  routes.add({
    method: 'GET',
    url: '/v1/webhooks',
    operationId: 'listWebhooks',
    summary: "The caller's subscriptions",
    tags,
    query: listQuery,
    validatedByHandler: true,
    responses: { 200: { description: 'A page of subscriptions', schema: page(subscriptionSchema) } },
    handler: async ({ principal, request }) => webhooks.listSubscriptions(agencyOf(principal), request.query),
  });

  routes.add({
    method: 'GET',
    url: '/v1/webhooks/:id',
    operationId: 'getWebhook',
    summary: 'A subscription',
    tags,
    params: idParam,
    responses: { 200: { description: 'The subscription', schema: subscriptionSchema }, ...notFound },
    handler: async ({ principal, params }) => webhooks.getSubscription(agencyOf(principal), params.id),
  });

  routes.add({
    method: 'PATCH',
    url: '/v1/webhooks/:id',
    operationId: 'updateWebhook',
    summary: 'Changes a subscription; `enabled: false` pauses it, `true` resumes it',
    tags,
    params: idParam,
    body: updateBody,
    validatedByHandler: true,
    responses: {
      200: { description: 'The subscription', schema: subscriptionSchema },
      403: { description: 'A mission the agency may not read' },
      ...notFound,
    },
    handler: async ({ principal, params, request }) => {
      requireReadable(principal, request.body);
      return webhooks.updateSubscription(agencyOf(principal), params.id, request.body);
    },
  });

  routes.add({
    method: 'DELETE',
    url: '/v1/webhooks/:id',
    operationId: 'deleteWebhook',
    summary: 'Deletes a subscription with its secrets, outbox rows and attempt log',
    tags,
    params: idParam,
    responses: { 204: { description: 'Deleted' }, ...notFound },
    handler: async ({ principal, params, reply }) => {
      await webhooks.deleteSubscription(agencyOf(principal), params.id);
      return reply.code(204).send();
    },
  });

  routes.add({
    method: 'POST',
    url: '/v1/webhooks/:id/rotate-secret',
    operationId: 'rotateWebhookSecret',
    summary:
      'A new signing secret; the old one keeps signing beside it for the overlap (default 24 h, 0 revokes at once)',
    tags,
    params: idParam,
    body: z.object({ overlapSeconds: z.int().min(0).max(604_800).optional() }).optional(),
    validatedByHandler: true,
    responses: {
      200: { description: 'The subscription and its new secret', schema: withSecret },
      409: { description: 'Three secrets are already live' },
      ...notFound,
    },
    handler: async ({ principal, params, request, reply }) => {
      reply.header('cache-control', 'no-store');
      return webhooks.rotateSecret(agencyOf(principal), params.id, request.body ?? {});
    },
  });

  routes.add({
    method: 'POST',
    url: '/v1/webhooks/:id/test',
    operationId: 'testWebhook',
    summary: 'Sends a `webhook.test` message through the same pipeline, now',
    tags,
    params: idParam,
    responses: { 202: { description: 'Queued', schema: deliveryWithPayload }, ...notFound },
    handler: async ({ principal, params, reply }) => {
      reply.code(202);
      return webhooks.sendTest(agencyOf(principal), params.id);
    },
  });

  routes.add({
    method: 'GET',
    url: '/v1/webhooks/:id/deliveries',
    operationId: 'listWebhookDeliveries',
    summary: "A subscription's deliveries, newest first",
    tags,
    params: idParam,
    query: deliveriesQuery,
    validatedByHandler: true,
    responses: { 200: { description: 'A page of deliveries', schema: page(deliverySchema) }, ...notFound },
    handler: async ({ principal, params, request }) =>
      webhooks.listDeliveries(agencyOf(principal), params.id, request.query),
  });

  routes.add({
    method: 'POST',
    url: '/v1/webhooks/:id/replay',
    operationId: 'replayWebhook',
    summary: 'Sends again what was delivered in a time range, or after a change-feed or event-store position',
    tags,
    params: idParam,
    body: replayBody,
    validatedByHandler: true,
    responses: {
      202: { description: 'What was queued again', schema: z.record(z.string(), z.unknown()) },
      ...notFound,
    },
    handler: async ({ principal, params, request, reply }) => {
      reply.code(202);
      return webhooks.replay(agencyOf(principal), params.id, request.body);
    },
  });

  routes.add({
    method: 'GET',
    url: '/v1/webhooks/deliveries/:id',
    operationId: 'getWebhookDelivery',
    summary: 'One delivery, with the body exactly as signed and sent',
    tags,
    params: idParam,
    responses: {
      200: { description: 'The delivery', schema: deliveryWithPayload },
      404: { description: 'No such delivery (or not yours)' },
    },
    handler: async ({ principal, params }) => webhooks.getDelivery(agencyOf(principal), params.id),
  });

  routes.add({
    method: 'GET',
    url: '/v1/webhooks/deliveries/:id/attempts',
    operationId: 'listWebhookAttempts',
    summary: "A delivery's attempt log: time, status, latency, error class, the start of the response",
    tags,
    params: idParam,
    responses: {
      200: { description: 'Attempts', schema: z.object({ attempts: z.array(attemptSchema) }) },
      404: { description: 'No such delivery' },
    },
    handler: async ({ principal, params }) => ({
      attempts: await webhooks.listAttempts(agencyOf(principal), params.id),
    }),
  });

  routes.add({
    method: 'POST',
    url: '/v1/webhooks/deliveries/:id/replay',
    operationId: 'replayWebhookDelivery',
    summary: "Sends one delivery's message again (same webhook-id)",
    tags,
    params: idParam,
    responses: {
      202: { description: 'Queued', schema: deliveryWithPayload },
      404: { description: 'No such delivery' },
    },
    handler: async ({ principal, params, reply }) => {
      reply.code(202);
      return webhooks.replayDelivery(agencyOf(principal), params.id);
    },
  });

  routes.add({
    method: 'GET',
    url: '/v1/webhooks/events',
    operationId: 'listWebhookOperationalEvents',
    summary: 'Operational events: endpoints disabled, messages exhausted or recovered, payloads rejected',
    tags,
    query: listQuery.extend({ subscriptionId: z.string().max(100).optional() }),
    validatedByHandler: true,
    responses: { 200: { description: 'A page of events', schema: page(z.record(z.string(), z.unknown())) } },
    handler: async ({ principal, request }) =>
      webhooks.listOperationalEvents(agencyOf(principal), request.query),
  });
}
