import { z } from 'zod';
import { jsonSchema } from './routing.js';

/**
 * The messages Muster POSTs to subscribers (docs/webhooks.md; built in
 * packages/webhooks/src/payload.ts), for the document's `webhooks` section: receivers generate
 * their handlers from it as callers generate clients from the paths.
 */
const verdictStatus = z.enum(['ready', 'not-ready', 'blocked']);

/** What the webhook service adds to every change's own payload; it wins over a payload member of the same name. */
const changeMembers = {
  missionId: z.string(),
  subject: z.string().describe('The phase, or the pledge id for pledge.changed'),
  version: z
    .int()
    .min(1)
    .describe('1, 2, 3, ... per subscription and mission: keep the highest applied, drop anything lower'),
  change: z.object({ id: z.string(), seq: z.int() }),
  cause: z
    .object({
      eventId: z.string().nullable().describe('Null when time alone caused the change'),
      revision: z.int().nullable(),
      hash: z.string().nullable(),
      position: z.string().nullable(),
      occurredAt: z.string(),
      recordedAt: z.string(),
    })
    .describe('The event that caused the change'),
  links: z.object({ readiness: z.string().describe('The current readiness of the mission') }),
};

const message = <T extends string>(type: T, data: z.ZodType) =>
  z.object({
    type: z.literal(type),
    timestamp: z.string().describe('When the change took effect in the world (ISO 8601)'),
    data,
  });

const payloads = {
  'readiness.changed': message(
    'readiness.changed',
    z.looseObject({
      phase: z.string(),
      title: z.string(),
      from: verdictStatus.nullable(),
      to: verdictStatus.nullable(),
      policyVersion: z.int().nullable(),
      unmetBefore: z.array(z.string()),
      unmetAfter: z.array(z.string()),
      verdict: z
        .record(z.string(), z.unknown())
        .nullable()
        .describe('The phase as the readiness answer gives it'),
      historySeq: z.int(),
      ...changeMembers,
    }),
  ),
  'precondition.changed': message(
    'precondition.changed',
    z.looseObject({
      phase: z.string(),
      precondition: z.string(),
      preconditionKind: z.string(),
      title: z.string(),
      before: z.boolean().nullable(),
      after: z.boolean().nullable(),
      missing: z.string().nullable(),
      ...changeMembers,
    }),
  ),
  'pledge.changed': message(
    'pledge.changed',
    z.looseObject({
      pledgeId: z.string(),
      status: z.string(),
      eventType: z.string(),
      details: z.record(z.string(), z.unknown()).describe('The data of the event that changed the pledge'),
      ...changeMembers,
    }),
  ),
  'webhook.test': message('webhook.test', z.object({ subscriptionId: z.string(), message: z.string() })),
} as const;

const signatureHeaders = [
  ['webhook-id', 'The message id: the same on every retry and replay; deduplicate on it'],
  ['webhook-timestamp', 'Unix seconds of this attempt, signed'],
  ['webhook-signature', 'Space-separated `v1,<base64 HMAC-SHA256>`, one per live secret'],
  ['webhook-event-type', 'The `type` of the body (not signed)'],
  ['webhook-attempt', 'The attempt number, from 1 (not signed)'],
] as const;

export function webhookDocuments(): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(payloads).map(([type, schema]) => [
      type,
      {
        post: {
          operationId: `webhook${type
            .split(/[.-]/)
            .map((part) => (part[0] as string).toUpperCase() + part.slice(1))
            .join('')}`,
          summary: `The ${type} message, signed by the Standard Webhooks rules`,
          tags: ['webhooks'],
          security: [],
          parameters: signatureHeaders.map(([name, description]) => ({
            name,
            in: 'header',
            required: true,
            description,
            schema: { type: 'string' },
          })),
          requestBody: {
            required: true,
            content: { 'application/json': { schema: jsonSchema(schema) } },
          },
          responses: {
            '2XX': { description: 'Received (answer within 15 s; the body is ignored)' },
            '410': { description: 'Gone: the subscription is disabled' },
          },
        },
      },
    ]),
  );
}
