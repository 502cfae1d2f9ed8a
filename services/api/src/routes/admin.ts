import { z } from 'zod';
import { isAdmin, type Principal } from '../auth/roles.js';
import { ApiError } from '../errors.js';
import type { RouteRegistry } from '../routing.js';
import type { Services } from '../services.js';

const statusSchema = z.object({
  name: z.string(),
  version: z.int(),
  generation: z.int(),
  position: z.string().nullable(),
  headPosition: z.string().nullable(),
  lagEvents: z.int().nullable(),
  behind: z.boolean(),
  caughtUp: z.boolean(),
  isLeader: z.boolean(),
  leader: z.object({ owner: z.string(), expiresAt: z.string() }).nullable(),
  watermark: z.string().nullable(),
  lastError: z.object({ message: z.string(), code: z.string().nullable(), at: z.string() }).nullable(),
  restarts: z.int(),
  rebuild: z
    .object({
      generation: z.int(),
      status: z
        .enum(['building', 'ready', 'interrupted'])
        .describe('interrupted: its builder is gone (lease expired); the leader takes it up'),
      position: z.string().nullable(),
      events: z.int(),
      builder: z
        .object({ owner: z.string(), lastSeenAt: z.string() })
        .nullable()
        .describe('The process that holds, or last held, the rebuild; when its last batch committed'),
    })
    .nullable(),
});

const requireOperator = (principal: Principal | null, write: boolean) => {
  if (!principal || !(isAdmin(principal) || (!write && principal.roles.includes('auditor')))) {
    throw new ApiError(
      'forbidden',
      write ? 'Only administrators rebuild projections' : 'Only administrators and auditors see projections',
    );
  }
};

export function registerAdminRoutes(routes: RouteRegistry, services: Services): void {
  routes.add({
    method: 'GET',
    url: '/v1/admin/projections',
    operationId: 'listProjections',
    summary: 'Projections: checkpoint, lag, leader, last error, rebuild in progress',
    tags: ['operations'],
    responses: {
      200: { description: 'Status', schema: z.object({ projections: z.array(statusSchema) }) },
      403: { description: 'Not an operator' },
    },
    handler: async ({ principal }) => {
      requireOperator(principal, false);
      return { projections: await services.projections.status() };
    },
  });

  routes.add({
    method: 'POST',
    url: '/v1/admin/projections/:name/rebuild',
    operationId: 'rebuildProjection',
    summary:
      'Rebuilds a projection from position zero into fresh tables while the old ones keep serving, then swaps',
    description:
      'Answers 202 at once; follow the rebuild in `GET /v1/admin/projections`. A rebuild interrupted by a crash resumes.',
    tags: ['operations'],
    params: z.object({ name: z.string().min(1).max(100) }),
    responses: {
      202: {
        description:
          'Started; or `in-progress` when a rebuild of the projection was already recorded (this call follows it, or resumes it if its process died)',
        schema: z.object({ name: z.string(), status: z.enum(['started', 'in-progress']) }),
      },
      403: { description: 'Not an administrator' },
      404: { description: 'No such projection' },
    },
    handler: async ({ principal, params, request, reply }) => {
      requireOperator(principal, true);
      const known = (await services.projections.status()).find((p) => p.name === params.name);
      if (!known) throw new ApiError('not-found', `No projection '${params.name}'`);
      services.projections.rebuild(params.name).then(
        (result) => request.log.info({ projection: params.name, result }, 'projection rebuilt'),
        (error: unknown) =>
          request.log.error({ err: error, projection: params.name }, 'projection rebuild failed'),
      );
      reply.code(202);
      return {
        name: params.name,
        status: known.rebuild === null ? ('started' as const) : ('in-progress' as const),
      };
    },
  });
}
