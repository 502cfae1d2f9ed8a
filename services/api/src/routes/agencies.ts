import { z } from 'zod';
import { agencyIdSchema, issueKeySchema, registerAgencySchema } from '../auth/agencies.js';
import { isAdmin, type Principal, ROLE_DESCRIPTIONS, ROLES } from '../auth/roles.js';
import { ApiError } from '../errors.js';
import type { RouteRegistry } from '../routing.js';
import type { Services } from '../services.js';

const agencySchema = z.object({
  id: z.string(),
  name: z.string(),
  roles: z.array(z.enum(ROLES)),
  missions: z.array(z.string()),
  registeredAt: z.string(),
});

const keyInfoSchema = z.object({
  keyId: z.string(),
  label: z.string(),
  issuedAt: z.string(),
  expiresAt: z.string().nullable(),
  revokedAt: z.string().nullable(),
});

const issuedKeySchema = z.object({
  keyId: z.string(),
  agencyId: z.string(),
  label: z.string(),
  key: z.string().describe('The API key: shown once, stored only as a hash'),
  expiresAt: z.string().nullable(),
});

/** Admins manage every agency; an agency manages its own keys and sees only itself. */
function requireSelfOrAdmin(principal: Principal, params: { agencyId: string }): void {
  if (!isAdmin(principal) && principal.agencyId !== params.agencyId) {
    throw new ApiError('forbidden', `This key may not manage agency '${params.agencyId}'`);
  }
}

function requireAdmin(principal: Principal): void {
  if (!isAdmin(principal)) throw new ApiError('forbidden', 'Only administrators register agencies');
}

/** Routes that are not public always have a principal by the time their handler runs. */
const callerOf = (principal: Principal | null) => principal as Principal;

const actorOf = (principal: Principal) => ({ agency: principal.agencyId, keyId: principal.keyId });

export function registerAgencyRoutes(routes: RouteRegistry, services: Services): void {
  const { registry, agencies } = services;
  const view = (id: string) => {
    const agency = registry.agency(id);
    if (!agency) throw new ApiError('not-found', `No agency '${id}'`);
    return {
      id: agency.id,
      name: agency.name,
      roles: agency.roles,
      missions: agency.missions,
      registeredAt: agency.registeredAt,
    };
  };

  routes.add({
    method: 'GET',
    url: '/v1/me',
    operationId: 'whoAmI',
    summary: 'The agency, key and rights of the calling API key',
    tags: ['agencies'],
    responses: {
      200: {
        description: 'The caller',
        schema: z.object({
          agencyId: z.string(),
          keyId: z.string(),
          roles: z.array(z.string()),
          missions: z.array(z.string()),
        }),
      },
    },
    handler: async ({ principal }) => principal,
  });

  routes.add({
    method: 'GET',
    url: '/v1/roles',
    operationId: 'listRoles',
    summary: 'The roles an agency can hold and what each may do',
    tags: ['agencies'],
    responses: {
      200: {
        description: 'Roles',
        schema: z.object({ roles: z.array(z.object({ role: z.string(), description: z.string() })) }),
      },
    },
    handler: async () => ({ roles: ROLES.map((role) => ({ role, description: ROLE_DESCRIPTIONS[role] })) }),
  });

  routes.add({
    method: 'POST',
    url: '/v1/agencies',
    operationId: 'registerAgency',
    summary: 'Registers an agency with its roles and mission scope (administrators)',
    tags: ['agencies'],
    body: registerAgencySchema,
    responses: {
      201: {
        description: 'Registered',
        schema: agencySchema,
        headers: { Location: { description: 'The agency', schema: z.string() } },
      },
      403: { description: 'Not an administrator' },
      409: { description: 'Already registered' },
    },
    authorize: requireAdmin,
    handler: async ({ body, principal, reply }) => {
      const agency = await agencies.register(body, actorOf(callerOf(principal)));
      reply.code(201).header('location', `/v1/agencies/${agency.id}`);
      return view(agency.id);
    },
  });

  routes.add({
    method: 'GET',
    url: '/v1/agencies',
    operationId: 'listAgencies',
    summary: 'Agencies: all of them for administrators, your own otherwise',
    tags: ['agencies'],
    responses: { 200: { description: 'Agencies', schema: z.object({ agencies: z.array(agencySchema) }) } },
    handler: async ({ principal }) => {
      const all = registry.listAgencies();
      const visible = principal && isAdmin(principal) ? all : all.filter((a) => a.id === principal?.agencyId);
      return { agencies: visible.map((a) => view(a.id)) };
    },
  });

  routes.add({
    method: 'GET',
    url: '/v1/agencies/:agencyId',
    operationId: 'getAgency',
    summary: 'An agency (administrators, or the agency itself)',
    tags: ['agencies'],
    params: z.object({ agencyId: agencyIdSchema }),
    responses: {
      200: { description: 'The agency', schema: agencySchema },
      403: { description: 'Another agency' },
      404: { description: 'No such agency' },
    },
    authorize: requireSelfOrAdmin,
    handler: async ({ params }) => view(params.agencyId),
  });

  routes.add({
    method: 'POST',
    url: '/v1/agencies/:agencyId/keys',
    operationId: 'issueKey',
    summary: 'Issues an API key; the key is in this response only',
    tags: ['agencies'],
    params: z.object({ agencyId: agencyIdSchema }),
    body: issueKeySchema,
    responses: {
      201: { description: 'The new key', schema: issuedKeySchema },
      403: { description: 'Another agency' },
      404: { description: 'No such agency' },
    },
    authorize: requireSelfOrAdmin,
    handler: async ({ params, body, principal, reply }) => {
      const { expiresAt } = body as { expiresAt?: string };
      // A key born expired would be handed out once and never work.
      if (expiresAt !== undefined && Date.parse(expiresAt) <= services.clock().getTime()) {
        throw new ApiError('validation-failed', '1 field is not valid', {
          errors: [{ path: 'expiresAt', message: 'must be in the future', code: 'too_small' }],
        });
      }
      // A key that expires would otherwise outlive itself through a key it issues for its own
      // agency: a short-lived key handed to a contractor could mint a permanent one.
      const caller = callerOf(principal);
      const callerExpiry = registry.key(caller.keyId)?.expiresAt ?? null;
      if (
        caller.agencyId === params.agencyId &&
        callerExpiry !== null &&
        (expiresAt === undefined || Date.parse(expiresAt) > Date.parse(callerExpiry))
      ) {
        throw new ApiError(
          'forbidden',
          `This key expires at ${callerExpiry}: a key it issues must expire no later (give expiresAt)`,
          { expiresAt: callerExpiry },
        );
      }
      const issued = await agencies.issueKey(params.agencyId, body, actorOf(caller));
      reply.code(201).header('cache-control', 'no-store');
      return issued;
    },
  });

  routes.add({
    method: 'GET',
    url: '/v1/agencies/:agencyId/keys',
    operationId: 'listKeys',
    summary: "An agency's keys (never the keys themselves)",
    tags: ['agencies'],
    params: z.object({ agencyId: agencyIdSchema }),
    responses: {
      200: { description: 'Keys', schema: z.object({ keys: z.array(keyInfoSchema) }) },
      403: { description: 'Another agency' },
      404: { description: 'No such agency' },
    },
    authorize: requireSelfOrAdmin,
    handler: async ({ params }) => {
      view(params.agencyId);
      return {
        keys: registry.listKeys(params.agencyId).map((k) => ({
          keyId: k.keyId,
          label: k.label,
          issuedAt: k.issuedAt,
          expiresAt: k.expiresAt,
          revokedAt: k.revokedAt,
        })),
      };
    },
  });

  routes.add({
    method: 'DELETE',
    url: '/v1/agencies/:agencyId/keys/:keyId',
    operationId: 'revokeKey',
    summary: 'Revokes an API key at once',
    tags: ['agencies'],
    params: z.object({ agencyId: agencyIdSchema, keyId: z.string().min(1).max(64) }),
    responses: {
      204: { description: 'Revoked' },
      403: { description: 'Another agency' },
      404: { description: 'No such key' },
    },
    authorize: requireSelfOrAdmin,
    handler: async ({ params, principal, reply }) => {
      await agencies.revokeKey(params.agencyId, params.keyId, actorOf(callerOf(principal)));
      return reply.code(204).send();
    },
  });
}
