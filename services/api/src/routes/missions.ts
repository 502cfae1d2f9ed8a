import { Readable } from 'node:stream';
import { canonicalJson, isIsoInstant, normaliseInstant, StreamNotFoundError } from '@muster/event-store';
import { missionStreamName } from '@muster/readiness';
import { z } from 'zod';
import { canRead, type Principal } from '../auth/roles.js';
import { ApiError } from '../errors.js';
import type { ReadinessBasis } from '../missions/mission-queries.js';
import type { RouteRegistry } from '../routing.js';
import type { Services } from '../services.js';
import { missionIdParam } from './commands.js';

const missionSchema = z.object({
  missionId: z.string(),
  name: z.string(),
  leadNation: z.string(),
  baseCurrency: z.string(),
  template: z.string().nullable(),
  definedAt: z.string(),
});

const preconditionSchema = z.object({
  id: z.string(),
  kind: z.string(),
  title: z.string(),
  met: z.boolean(),
  evidence: z.array(z.string()).describe('Ids of the events the result rests on'),
  missing: z.string().nullable().describe('What is missing, in words, when unmet'),
});

const readinessSchema = z.object({
  missionId: z.string(),
  at: z.string().describe('The instant the verdict is for'),
  basis: z.enum(['now', 'asOf', 'knownAt', 'atPosition']),
  policyVersion: z.int().nullable(),
  revision: z.int().nullable().describe('Revision of the last mission event the answer rests on'),
  position: z.string().nullable(),
  phases: z.array(
    z.object({
      phase: z.string(),
      title: z.string(),
      status: z.enum(['ready', 'not-ready', 'blocked']),
      preconditions: z.array(preconditionSchema),
    }),
  ),
});

const instantQuery = z
  .string()
  .max(64)
  .refine((v) => isIsoInstant(v), 'must be an ISO 8601 instant with a time zone, e.g. 2024-03-12T00:00:00Z');

const readinessQuery = z
  .strictObject({
    asOf: instantQuery.optional().describe('World time: what was true then, by what is known now'),
    knownAt: instantQuery.optional().describe('Record time: what the service knew then'),
    atPosition: z
      .string()
      .regex(/^[0-9a-zA-Z:/_-]{1,80}$/)
      .optional()
      .describe('A global log position: the verdict once the log reached it'),
  })
  .refine((q) => [q.asOf, q.knownAt, q.atPosition].filter((v) => v !== undefined).length <= 1, {
    message: 'give at most one of asOf, knownAt, atPosition',
  });

const eventSchema = z.object({
  id: z.string(),
  stream: z.string(),
  revision: z.int(),
  position: z.string(),
  type: z.string(),
  data: z.unknown(),
  metadata: z.record(z.string(), z.unknown()),
  recordedAt: z.string(),
  hash: z.string(),
  previousHash: z.string().nullable(),
});

const eventsQuery = z.strictObject({
  afterRevision: z.coerce
    .number()
    .int()
    .min(-1)
    .max(Number.MAX_SAFE_INTEGER)
    .default(-1)
    .describe('Return events after this revision'),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});

export function requireRead(principal: Principal | null, missionId: string): void {
  if (!principal || !canRead(principal, missionId)) {
    throw new ApiError('forbidden', `This key may not read mission '${missionId}'`);
  }
}

export function registerMissionRoutes(routes: RouteRegistry, services: Services): void {
  routes.add({
    method: 'GET',
    url: '/v1/missions',
    operationId: 'listMissions',
    summary: 'The missions this key may read',
    tags: ['missions'],
    responses: {
      200: { description: 'Missions', schema: z.object({ missions: z.array(missionSchema) }) },
      401: { description: 'No valid key' },
    },
    handler: async ({ principal }) => {
      const missions = await services.readModel.listMissions();
      return { missions: missions.filter((m) => principal && canRead(principal, m.missionId)) };
    },
  });

  routes.add({
    method: 'GET',
    url: '/v1/missions/:missionId',
    operationId: 'getMission',
    summary: 'A mission: its name, lead nation and current revision (also the ETag)',
    tags: ['missions'],
    params: z.object({ missionId: missionIdParam }),
    responses: {
      200: { description: 'The mission', schema: missionSchema.extend({ revision: z.int().nullable() }) },
      403: { description: 'Out of scope' },
      404: { description: 'No such mission' },
    },
    handler: async ({ params, principal, reply }) => {
      requireRead(principal, params.missionId);
      const mission = await services.readModel.getMission(params.missionId);
      if (!mission) throw new ApiError('mission-not-found', `No mission '${params.missionId}'`);
      const revision = await services.store.streamRevision(missionStreamName(params.missionId));
      if (revision !== null) reply.header('etag', `"${revision}"`);
      return { ...mission, revision };
    },
  });

  routes.add({
    method: 'GET',
    url: '/v1/missions/:missionId/readiness',
    operationId: 'getReadiness',
    summary: 'Readiness per phase, now or at an instant (world or record time) or a log position',
    description:
      'Each phase is `ready`, `not-ready` or `blocked`, with every precondition met or unmet, the evidence (event ids) for what is met and what is missing for what is not.',
    tags: ['missions'],
    params: z.object({ missionId: missionIdParam }),
    query: readinessQuery,
    responses: {
      200: { description: 'The verdict', schema: readinessSchema },
      400: { description: 'Bad query' },
      403: { description: 'Out of scope' },
      404: { description: 'No such mission (or not yet known then)' },
    },
    handler: async ({ params, query, principal, reply }) => {
      requireRead(principal, params.missionId);
      const q = query as { asOf?: string; knownAt?: string; atPosition?: string };
      const basis: ReadinessBasis = q.asOf
        ? { kind: 'asOf', instant: normaliseInstant(q.asOf) as string }
        : q.knownAt
          ? { kind: 'knownAt', instant: normaliseInstant(q.knownAt) as string }
          : q.atPosition
            ? { kind: 'atPosition', position: q.atPosition }
            : { kind: 'now' };
      const answer = await services.readModel.readiness(params.missionId, basis);
      if (answer.revision !== null && basis.kind === 'now') reply.header('etag', `"${answer.revision}"`);
      return {
        missionId: answer.verdict.missionId,
        at: answer.verdict.at,
        basis: basis.kind,
        policyVersion: answer.verdict.policyVersion,
        revision: answer.revision,
        position: answer.position,
        phases: answer.verdict.phases,
      };
    },
  });

  routes.add({
    method: 'GET',
    url: '/v1/missions/:missionId/events',
    operationId: 'listMissionEvents',
    summary: "The mission's event log, with metadata and hashes: JSON pages, or the whole stream as NDJSON",
    description:
      'With `Accept: application/x-ndjson` the whole stream is exported, one recorded event per line, in revision order: everything needed to verify the hash chain elsewhere (`muster audit verify`).',
    tags: ['missions', 'audit'],
    params: z.object({ missionId: missionIdParam }),
    query: eventsQuery,
    responses: {
      200: {
        description: 'A page of events (or the NDJSON export)',
        schema: z.object({ events: z.array(eventSchema), nextAfterRevision: z.int().nullable() }),
      },
      403: { description: 'Out of scope' },
      404: { description: 'No such mission' },
    },
    handler: async ({ params, query, principal, request, reply }) => {
      requireRead(principal, params.missionId);
      const stream = missionStreamName(params.missionId);
      const { afterRevision, limit } = query as { afterRevision: number; limit: number };
      if (String(request.headers.accept ?? '').includes('application/x-ndjson')) {
        const revision = await services.store.streamRevision(stream);
        if (revision === null) throw new ApiError('mission-not-found', `No mission '${params.missionId}'`);
        reply.header('content-type', 'application/x-ndjson; charset=utf-8');
        reply.header('content-disposition', `attachment; filename="${params.missionId}.ndjson"`);
        return reply.send(Readable.from(ndjson(services, stream)));
      }
      const events = [];
      try {
        for await (const event of services.store.readStream(stream, {
          fromRevision: afterRevision + 1,
          maxCount: limit + 1,
        })) {
          events.push(event);
        }
      } catch (error) {
        if (error instanceof StreamNotFoundError)
          throw new ApiError('mission-not-found', `No mission '${params.missionId}'`);
        throw error;
      }
      const page = events.slice(0, limit);
      return {
        events: page,
        nextAfterRevision: events.length > limit ? (page[page.length - 1]?.revision ?? null) : null,
      };
    },
  });
}

/** The export: one recorded event per line, exactly as stored, so a verifier can recompute hashes. */
async function* ndjson(services: Services, stream: string): AsyncGenerator<string> {
  for await (const event of services.store.readStream(stream)) yield `${canonicalJson(event)}\n`;
}
