import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { isIsoInstant, normaliseInstant, StreamNotFoundError } from '@muster/event-store';
import { auditMission, EXPORT_CONTENT_TYPE, exportMission } from '@muster/projections';
import { missionStreamName } from '@muster/readiness';
import { z } from 'zod';
import { canRead, type Principal, readScope } from '../auth/roles.js';
import { ApiError } from '../errors.js';
import type { ReadinessBasis } from '../missions/mission-queries.js';
import { integerQuery, type RouteRegistry } from '../routing.js';
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

const missionsQuery = z.strictObject({
  after: missionIdParam.optional().describe('The `next` value of the previous page'),
  limit: integerQuery(1, 1000).default(100),
});

const historyQuery = z.strictObject({
  afterSeq: integerQuery(0, Number.MAX_SAFE_INTEGER).default(0),
  limit: integerQuery(1, 1000).default(100),
});

const historyEntrySchema = z.object({
  seq: z.int(),
  phase: z.string(),
  title: z.string(),
  from: z.enum(['ready', 'not-ready', 'blocked']).nullable(),
  to: z.enum(['ready', 'not-ready', 'blocked']).nullable(),
  occurredAt: z.string().describe('World time of the change'),
  recordedAt: z.string().describe('Record time of the change'),
  evaluatedAt: z.string(),
  missionId: z.string(),
  cause: z.string().describe('"event", or "time" when no event caused it (a mandate expired)'),
  causeEventId: z.string().nullable(),
  causeEventType: z.string().nullable(),
  causeRevision: z.int().nullable(),
  causePosition: z.string().nullable(),
  policyVersion: z.int().nullable(),
  unmetBefore: z.array(z.string()),
  unmetAfter: z.array(z.string()),
  changeId: z.string(),
});

const eventsQuery = z.strictObject({
  // The page starts at afterRevision + 1, which must itself be a safe integer.
  afterRevision: integerQuery(-1, Number.MAX_SAFE_INTEGER - 1)
    .default(-1)
    .describe('Return events after this revision'),
  limit: integerQuery(1, 1000).default(100),
});

/**
 * Whether `Accept` asks for the NDJSON export rather than a JSON page, by its q-values (RFC 9110
 * §12.5.1): `application/json, application/x-ndjson;q=0.1` is a page, `application/x-ndjson;q=0`
 * too; the export wins a tie, since a client that names it means it.
 */
export function prefersExport(accept: string | string[] | undefined): boolean {
  let ndjson = 0;
  let json = 0;
  for (const range of [accept ?? ''].flat().join(',').split(',')) {
    const [type = '', ...params] = range
      .toLowerCase()
      .split(';')
      .map((p) => p.trim());
    const q = params.find((p) => p.startsWith('q='));
    const weight = q === undefined ? 1 : Number(q.slice(2));
    if (!(weight >= 0 && weight <= 1)) continue;
    if (type === 'application/x-ndjson') ndjson = Math.max(ndjson, weight);
    else if (type === 'application/json' || type === 'application/*' || type === '*/*')
      json = Math.max(json, weight);
  }
  return ndjson > 0 && ndjson >= json;
}

/** Whether `If-None-Match` names `etag` (weak comparison, RFC 9110 §13.1.2), or is `*`. */
export function noneMatch(header: string | string[] | undefined, etag: string): boolean {
  if (header === undefined) return false;
  const tags = [header]
    .flat()
    .join(',')
    .split(',')
    .map((t) => t.trim().replace(/^W\//, ''));
  return tags.includes('*') || tags.includes(etag);
}

/**
 * A weak entity-tag for a readiness answer: a digest of everything it says but the instant of a
 * "now" answer, which moves on every call. A verdict changes with time alone (a mandate
 * expiring) while the revision stays, so the revision cannot be the tag (decision 45).
 */
export function verdictTag(body: { basis: string; at: string }): string {
  const said = body.basis === 'now' ? { ...body, at: null } : body;
  return `"${createHash('sha256').update(JSON.stringify(said)).digest('base64url').slice(0, 22)}"`;
}

const ifNoneMatch = {
  description: 'An ETag of an earlier answer (or `*`): 304 without a body while it still holds',
  schema: z.string(),
};
const verdictEtag = {
  ETag: {
    description: 'A weak tag of everything the verdict says (but the instant of a "now" answer)',
    schema: z.string(),
  },
};

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
    query: missionsQuery,
    responses: {
      200: {
        description: 'A page of missions, in the order they were defined',
        schema: z.object({
          missions: z.array(missionSchema),
          next: z.string().nullable().describe('Pass as `after` for the next page; null on the last'),
        }),
      },
      400: { description: 'A bad `limit`, or an `after` that names no mission this key may read' },
      401: { description: 'No valid key' },
    },
    handler: async ({ principal, query }) => {
      const { after, limit } = query as { after?: string; limit: number };
      const scope = principal ? readScope(principal) : [];
      const page = await services.readModel.listMissions({
        ...(after === undefined ? {} : { after }),
        limit,
        ...(scope === '*' ? {} : { only: scope }),
      });
      if (!page) {
        throw new ApiError('validation-failed', 'after: names no mission this key may read', {
          errors: [
            { path: 'after', message: 'must be the `next` value of a previous page', code: 'invalid-cursor' },
          ],
        });
      }
      return page;
    },
  });

  routes.add({
    method: 'GET',
    url: '/v1/missions/:missionId',
    operationId: 'getMission',
    summary: 'A mission: its name, lead nation and current revision (also the ETag)',
    tags: ['missions'],
    params: z.object({ missionId: missionIdParam }),
    headers: { 'If-None-Match': ifNoneMatch },
    responses: {
      200: {
        description: 'The mission',
        schema: missionSchema.extend({ revision: z.int().nullable() }),
        headers: { ETag: { description: 'The mission revision, e.g. "12"', schema: z.string() } },
      },
      304: {
        description: 'If-None-Match names the current revision: unchanged',
        headers: { ETag: { description: 'The mission revision', schema: z.string() } },
      },
      403: { description: 'Out of scope' },
      404: { description: 'No such mission' },
    },
    handler: async ({ params, principal, request, reply }) => {
      requireRead(principal, params.missionId);
      const mission = await services.readModel.getMission(params.missionId);
      if (!mission) throw new ApiError('mission-not-found', `No mission '${params.missionId}'`);
      const revision = await services.store.streamRevision(missionStreamName(params.missionId));
      if (revision !== null) {
        const etag = `"${revision}"`;
        reply.header('etag', etag);
        // Everything this answer says moves with the revision, so the ETag is a validator for it.
        if (noneMatch(request.headers['if-none-match'], etag)) return reply.code(304).send();
      }
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
    headers: { 'If-None-Match': ifNoneMatch },
    responses: {
      200: { description: 'The verdict', schema: readinessSchema, headers: verdictEtag },
      304: {
        description: 'If-None-Match names the ETag of the same verdict: unchanged',
        headers: verdictEtag,
      },
      400: { description: 'Bad query' },
      403: { description: 'Out of scope' },
      404: { description: 'No such mission (or not yet known then)' },
    },
    handler: async ({ params, query, principal, request, reply }) => {
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
      const body = {
        missionId: answer.verdict.missionId,
        at: answer.verdict.at,
        basis: basis.kind,
        policyVersion: answer.verdict.policyVersion,
        revision: answer.revision,
        position: answer.position,
        phases: answer.verdict.phases,
      };
      const tag = verdictTag(body);
      reply.header('etag', `W/${tag}`);
      if (noneMatch(request.headers['if-none-match'], tag)) return reply.code(304).send();
      return body;
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
        headers: {
          'Content-Disposition': {
            description: 'With the NDJSON export only: attachment; filename="<mission>.ndjson"',
            schema: z.string(),
          },
        },
        alternatives: {
          'application/x-ndjson':
            'The export: a header line (mission, event count, last hash), then one recorded event per line',
        },
      },
      403: { description: 'Out of scope' },
      404: { description: 'No such mission' },
    },
    handler: async ({ params, query, principal, request, reply }) => {
      requireRead(principal, params.missionId);
      const stream = missionStreamName(params.missionId);
      const { afterRevision, limit } = query as { afterRevision: number; limit: number };
      if (prefersExport(request.headers.accept)) {
        const lines = await exportMission(services.store, params.missionId);
        if (!lines) throw new ApiError('mission-not-found', `No mission '${params.missionId}'`);
        reply.header('content-type', `${EXPORT_CONTENT_TYPE}; charset=utf-8`);
        reply.header('content-disposition', `attachment; filename="${params.missionId}.ndjson"`);
        return reply.send(Readable.from(lines));
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

  routes.add({
    method: 'GET',
    url: '/v1/missions/:missionId/readiness/history',
    operationId: 'getReadinessHistory',
    summary:
      'Every change of a phase verdict: from, to, when (world and record time), the cause, what was unmet before and after',
    description:
      'Changes no event causes (a mandate expiring) are recorded at the instant they take effect, with `cause: "time"`. Pages by `afterSeq`.',
    tags: ['missions', 'audit'],
    params: z.object({ missionId: missionIdParam }),
    query: historyQuery,
    responses: {
      200: {
        description: 'A page of changes, oldest first',
        schema: z.object({
          missionId: z.string(),
          entries: z.array(historyEntrySchema),
          nextAfterSeq: z.int().nullable(),
        }),
      },
      403: { description: 'Out of scope' },
      404: { description: 'No such mission' },
    },
    handler: async ({ params, query, principal }) => {
      requireRead(principal, params.missionId);
      await services.readModel.caughtUp();
      const { afterSeq, limit } = query as { afterSeq: number; limit: number };
      const page = await services.queries.history(params.missionId, { afterSeq, limit });
      if (!page) throw new ApiError('mission-not-found', `No mission '${params.missionId}'`);
      return {
        missionId: page.missionId,
        nextAfterSeq: page.nextAfterSeq,
        entries: page.entries.map((e) => ({
          ...e,
          occurredAt: new Date(e.occurredAt).toISOString(),
          recordedAt: new Date(e.recordedAt).toISOString(),
          evaluatedAt: new Date(e.evaluatedAt).toISOString(),
        })),
      };
    },
  });

  routes.add({
    method: 'GET',
    url: '/v1/missions/:missionId/audit',
    operationId: 'auditMission',
    summary:
      'Replays the mission from the log alone: verifies the hash chain, recomputes every verdict change and compares with the read models',
    tags: ['audit'],
    params: z.object({ missionId: missionIdParam }),
    responses: {
      200: {
        description:
          'The audit: ok when the chain holds and the read models say what the log says; each mismatch otherwise',
        schema: z.object({
          missionId: z.string(),
          ok: z.boolean(),
          events: z.int(),
          chain: z.record(z.string(), z.unknown()),
          projectionBehind: z.boolean(),
          comparedUpTo: z.record(z.string(), z.unknown()),
          history: z.object({ stored: z.int(), recomputed: z.int() }),
          snapshots: z
            .object({ stored: z.int(), compared: z.int() })
            .describe('Stored snapshots of the mission, and how many were checked against the replay'),
          mismatches: z.array(z.record(z.string(), z.unknown())),
        }),
      },
      403: { description: 'Out of scope' },
      404: { description: 'No such mission' },
    },
    handler: async ({ params, principal }) => {
      requireRead(principal, params.missionId);
      await services.readModel.caughtUp();
      const report = await auditMission({
        store: services.store,
        sql: services.sql,
        missionId: params.missionId,
      });
      if (!report) throw new ApiError('mission-not-found', `No mission '${params.missionId}'`);
      return report;
    },
  });
}
