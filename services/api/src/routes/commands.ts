import { uuidv7 } from '@muster/event-store';
import {
  actingParty,
  type CommandCatalogEntry,
  commandCatalog,
  instantSchema,
  MISSION_ID_PATTERN,
  type MissionCommand,
  missionStreamName,
} from '@muster/readiness';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { canActFor, canIssue, inScope, type Principal } from '../auth/roles.js';
import { ApiError, toProblem } from '../errors.js';
import { IDEMPOTENCY_KEY_PATTERN, requestHash } from '../idempotency.js';
import type { CommandOutcome } from '../missions/mission-writer.js';
import { problemSchema, type RouteRegistry } from '../routing.js';
import type { Services } from '../services.js';

export const missionIdParam = z.string().regex(MISSION_ID_PATTERN, 'a lower-case slug of 3 to 64 characters');

const envelope = {
  occurredAt: instantSchema
    .optional()
    .describe('When it happened in the world (ISO 8601 with an offset); defaults to now'),
  commandId: z
    .string()
    .min(1)
    .max(200)
    .optional()
    .describe('Your id for this command; the events it produces get ids derived from it'),
};

const recordedEventSchema = z.object({
  id: z.string(),
  type: z.string(),
  revision: z.int(),
  position: z.string(),
  occurredAt: z.string(),
  recordedAt: z.string(),
  data: z.unknown(),
  hash: z
    .string()
    .describe(
      "The event's link in the mission's hash chain: keep it as a receipt, and check an export against it later (`muster audit verify --expect-head <revision>:<hash>`)",
    ),
});

export const commandResultSchema = z.object({
  missionId: z.string(),
  command: z.string(),
  commandId: z.string(),
  revision: z.int().nullable().describe('The mission stream revision after the command; also the ETag'),
  position: z.string().nullable().describe('Global log position of the last appended event'),
  replayed: z
    .boolean()
    .describe('True when the events were already in the log (a retry): nothing new was appended'),
  events: z.array(recordedEventSchema),
});

const commandHeaders = {
  'Idempotency-Key': {
    description:
      'Makes a retry safe: the same key with the same body returns the original response; with another body, 422. Kept per agency for at least 24 hours.',
    schema: z.string().max(255),
  },
  'If-Match': {
    description:
      'The mission revision (ETag) you decided on; a stale one gets 412 with the current revision. `*`: only if the mission has events',
    schema: z.string(),
  },
};

/** A keyed retry answers what the first call answered, accepted or refused, with this header. */
const replayed = {
  'Idempotent-Replayed': {
    description: '`true` when this is the stored answer to an earlier request with the same Idempotency-Key',
    schema: z.literal('true'),
  },
};
const etag = (description: string) => ({ ETag: { description, schema: z.string() } });

const commandResponses = (entry?: CommandCatalogEntry) => ({
  201: {
    description: entry ? `Accepted: ${entry.description}` : 'Accepted',
    schema: commandResultSchema,
    headers: {
      ...etag('The mission revision after the command, e.g. "12"'),
      Location: { description: 'The mission', schema: z.string() },
      ...replayed,
    },
  },
  400: { description: 'Malformed body, header or parameter (every bad field listed)' },
  401: { description: 'No valid API key' },
  403: {
    description: 'The key may not issue this command on this mission, or not for this party',
    headers: replayed,
  },
  404: { description: 'No such mission (or command)', headers: replayed },
  409: {
    description:
      'Refused by the mission state (e.g. a withdrawn pledge cannot be confirmed), or a request with this Idempotency-Key is still running',
    headers: replayed,
  },
  412: {
    description: 'If-Match names a stale revision (or is `*` and the mission has no events)',
    headers: { ...etag('The current revision, when the mission has events'), ...replayed },
  },
  413: { description: 'Body too large' },
  415: { description: 'Body is not application/json' },
  422: {
    description: 'A domain rule refused the command, or the Idempotency-Key was used with another body',
    headers: replayed,
  },
  503: { description: 'The event store is unavailable; retry after Retry-After' },
});

export function registerCommandRoutes(routes: RouteRegistry, services: Services): void {
  for (const entry of commandCatalog) {
    const body = commandBodySchema(entry);
    routes.add({
      method: 'POST',
      url: `/v1/missions/:missionId/commands/${entry.name}`,
      operationId: camel(entry.name),
      summary: entry.description,
      tags: [`commands: ${entry.category}`],
      params: z.object({ missionId: missionIdParam }),
      body,
      headers: commandHeaders,
      responses: commandResponses(entry),
      authorize: (principal, params) => authorizeCommand(principal, entry, params.missionId),
      handler: ({ params, body: payload, principal, request, reply }) =>
        runCommand(
          services,
          entry,
          params.missionId,
          payload as Record<string, unknown>,
          principal as Principal,
          request,
          reply,
        ),
    });
  }

  routes.add({
    method: 'POST',
    url: '/v1/missions/:missionId/commands/:commandName',
    operationId: 'unknownCommand',
    summary: 'Any other command name is answered with 404 and the list of known commands',
    tags: ['commands'],
    params: z.object({ missionId: z.string(), commandName: z.string() }),
    responses: { 404: { description: 'No such command', schema: problemSchema } },
    handler: async ({ params }) => {
      throw new ApiError('unknown-command', `No command named '${params.commandName.slice(0, 80)}'`, {
        knownCommands: commandCatalog.map((c) => c.name),
      });
    },
  });

  const define = commandCatalog.find((c) => c.name === 'define-mission') as CommandCatalogEntry;
  routes.add({
    method: 'POST',
    url: '/v1/missions',
    operationId: 'createMission',
    summary: 'Defines a mission: from the `mss-haiti` template or from a full policy',
    tags: ['missions'],
    body: define.payloadSchema.extend({ id: missionIdParam.describe('The new mission id'), ...envelope }),
    headers: commandHeaders,
    responses: commandResponses(define),
    authorize: (principal) => {
      if (!canIssue(principal, define))
        throw new ApiError('forbidden', `Agency '${principal.agencyId}' may not define missions`);
    },
    handler: async ({ body, principal, request, reply }) => {
      const { id, ...payload } = body as Record<string, unknown> & { id: string };
      return runCommand(services, define, id, payload, principal as Principal, request, reply);
    },
  });
}

/** What a command route accepts: the command's own fields, and optionally its id and instant. */
export function commandBodySchema(entry: CommandCatalogEntry) {
  return entry.payloadSchema.extend(envelope);
}

/**
 * The command a body stands for. The body has passed `commandBodySchema(entry)` and the mission id
 * `missionIdParam`, so the command passes `commandSchema` as built (a test holds this for every
 * command): the writer decides it without parsing the whole command union again.
 */
export function assembleCommand(
  entry: CommandCatalogEntry,
  missionId: string,
  body: Record<string, unknown>,
  defaults: { commandId: string; occurredAt: string },
): MissionCommand {
  // A spread, not rest destructuring: V8 copies a whole object on a fast path, and the two
  // envelope fields are written over anyway.
  const given = body as { occurredAt?: string; commandId?: string };
  return {
    ...body,
    type: entry.type,
    missionId,
    commandId: given.commandId ?? defaults.commandId,
    occurredAt: given.occurredAt ?? defaults.occurredAt,
  } as MissionCommand;
}

function authorizeCommand(principal: Principal, entry: CommandCatalogEntry, missionId: string): void {
  if (!canIssue(principal, entry)) {
    throw new ApiError('forbidden', `Agency '${principal.agencyId}' may not issue '${entry.name}'`);
  }
  if (!inScope(principal, missionId)) {
    throw new ApiError('forbidden', `Agency '${principal.agencyId}' has no rights on mission '${missionId}'`);
  }
}

async function runCommand(
  services: Services,
  entry: CommandCatalogEntry,
  missionId: string,
  payload: Record<string, unknown>,
  principal: Principal,
  request: FastifyRequest,
  reply: FastifyReply,
): Promise<unknown> {
  authorizeCommand(principal, entry, missionId);
  const ifMatch = parseIfMatch(request.headers['if-match']);
  const idempotencyKey = parseIdempotencyKey(request.headers['idempotency-key']);
  if (ifMatch === 'unmatchable') {
    const current = await services.store.streamRevision(missionStreamName(missionId));
    throw new ApiError(
      'precondition-failed',
      'If-Match compares strongly: a weak tag, or a tag that is not a revision as the ETag gives it, never matches',
      { currentRevision: current },
      current === null ? {} : { etag: `"${current}"` },
    );
  }
  const actor = { agency: principal.agencyId, keyId: principal.keyId };
  // A version-7 id, keyed or not: the ids of the command's events keep its time (decision 26). A
  // keyed command's id is stored with its claim, and a retry that takes the claim over reuses it.
  const command = assembleCommand(entry, missionId, payload, {
    commandId: uuidv7(),
    occurredAt: services.clock().toISOString(),
  });

  const execute = async (cmd: MissionCommand): Promise<CommandOutcome> =>
    services.writer.execute(cmd, {
      actor,
      correlationId: correlationId(request),
      ifMatch,
      authorize: (cmd: MissionCommand, state) => {
        const party = actingParty(cmd, state);
        if (party !== undefined && !canActFor(principal, entry, party)) {
          throw new ApiError(
            'forbidden',
            `Agency '${principal.agencyId}' may act only as itself, not as '${party}'`,
          );
        }
      },
    });

  const send = (outcome: CommandOutcome) => {
    const body = commandResult(entry, outcome);
    if (outcome.revision !== null) reply.header('etag', `"${outcome.revision}"`);
    reply.header('location', `/v1/missions/${missionId}`);
    services.metrics.commands.inc({
      command: entry.name,
      outcome: outcome.replayed ? 'replayed' : 'accepted',
    });
    return { status: 201, body };
  };

  if (!idempotencyKey) {
    try {
      const { status, body } = send(await execute(command));
      return reply.code(status).send(body);
    } catch (error) {
      services.metrics.commands.inc({ command: entry.name, outcome: outcomeOf(error) });
      throw error;
    }
  }

  const hash = requestHash(request.method, request.url.split('?')[0] as string, request.body);
  const baseRevision = await services.writer.knownRevision(missionId);
  const claim = await services.idempotency.claim(
    principal.agencyId,
    idempotencyKey,
    hash,
    missionId,
    baseRevision,
    command.commandId,
  );
  switch (claim.kind) {
    case 'replay': {
      reply.header('idempotent-replayed', 'true');
      for (const [name, value] of Object.entries(claim.response.headers)) reply.header(name, value);
      services.metrics.commands.inc({ command: entry.name, outcome: 'replayed' });
      return reply
        .code(claim.response.status)
        .type(claim.response.headers['content-type'] ?? 'application/json; charset=utf-8')
        .send(claim.response.body);
    }
    case 'mismatch':
      throw new ApiError(
        'idempotency-key-reused',
        'This Idempotency-Key was already used with a different request',
      );
    case 'in-progress':
      throw new ApiError(
        'idempotency-key-in-use',
        'A request with this Idempotency-Key is still being processed',
        {},
        { 'retry-after': String(claim.retryAfterSeconds) },
      );
    case 'claimed':
    case 'recovered':
      break;
    default: {
      const never: never = claim;
      throw new Error(`unknown claim ${String(never)}`);
    }
  }

  let result: { status: number; body: unknown; headers: Record<string, string> };
  try {
    let outcome: CommandOutcome | null = null;
    if (claim.kind === 'recovered' && claim.missionId) {
      const landed = await services.writer.findCommandEvents(
        claim.missionId,
        claim.commandId,
        claim.baseRevision,
      );
      if (landed.length > 0)
        outcome = {
          missionId,
          commandId: claim.commandId,
          revision: landed[landed.length - 1]?.revision ?? null,
          position: landed[landed.length - 1]?.position ?? null,
          events: landed,
          replayed: true,
        };
    }
    const { status, body } = send(
      outcome ?? (await execute({ ...command, commandId: claim.commandId } as MissionCommand)),
    );
    result = { status, body, headers: pickHeaders(reply) };
  } catch (error) {
    const { problem, headers } = toProblem(error, request.id);
    services.metrics.commands.inc({ command: entry.name, outcome: outcomeOf(error) });
    if (problem.status >= 500 || problem.code === 'conflict') {
      await services.idempotency.release(principal.agencyId, idempotencyKey);
      throw error;
    }
    result = {
      status: problem.status,
      body: problem,
      headers: { ...headers, 'content-type': 'application/problem+json; charset=utf-8' },
    };
    request.log.info({ code: problem.code, status: problem.status }, 'command refused');
  }
  const text = JSON.stringify(result.body);
  await services.idempotency.complete(principal.agencyId, idempotencyKey, {
    status: result.status,
    body: text,
    headers: result.headers,
  });
  for (const [name, value] of Object.entries(result.headers)) reply.header(name, value);
  return reply
    .code(result.status)
    .type(result.headers['content-type'] ?? 'application/json; charset=utf-8')
    .send(text);
}

function commandResult(
  entry: CommandCatalogEntry,
  outcome: CommandOutcome,
): z.infer<typeof commandResultSchema> {
  return {
    missionId: outcome.missionId,
    command: entry.name,
    commandId: outcome.commandId,
    revision: outcome.revision,
    position: outcome.position,
    replayed: outcome.replayed,
    events: outcome.events.map((e) => ({
      id: e.id,
      type: e.type,
      revision: e.revision,
      position: e.position,
      occurredAt: e.metadata.occurredAt,
      recordedAt: e.recordedAt,
      data: e.data,
      hash: e.hash,
    })),
  };
}

function pickHeaders(reply: FastifyReply): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of ['etag', 'location']) {
    const value = reply.getHeader(name);
    if (typeof value === 'string') out[name] = value;
  }
  return out;
}

/**
 * `If-Match` by RFC 9110 §13.1.1: entity-tags compared strongly. `*`, or one tag: a strong tag
 * that is a revision as the ETag gives it matches that revision; a weak tag (`W/"3"`) or another
 * opaque tag (`"03"`) is valid but can never match, so it is a `412` ('unmatchable'), not a match
 * by its digits. A value that is not an entity-tag (`3`, `"3`) is a `400`, and so is a list of
 * several tags, which this API does not take.
 */
export function parseIfMatch(
  header: string | string[] | undefined,
): number | '*' | 'unmatchable' | undefined {
  if (header === undefined) return undefined;
  const value = (Array.isArray(header) ? header.join(',') : header).trim();
  if (value === '*') return '*';
  const tags: Array<{ weak: boolean; opaque: string }> = [];
  const tag = /\s*(W\/)?"([\x21\x23-\x7e]*)"\s*(?:,|$)/y;
  while (tag.lastIndex < value.length) {
    const at = tag.lastIndex;
    const match = tag.exec(value);
    if (!match || tag.lastIndex === at) {
      throw new ApiError(
        'invalid-header',
        'If-Match must be * or one entity-tag: the mission revision as the ETag gives it, e.g. "12"',
      );
    }
    tags.push({ weak: match[1] !== undefined, opaque: match[2] as string });
  }
  if (tags.length !== 1) {
    throw new ApiError('invalid-header', 'If-Match takes * or exactly one entity-tag, e.g. "12"');
  }
  const [only] = tags as [{ weak: boolean; opaque: string }];
  return !only.weak && /^(0|[1-9]\d{0,14})$/.test(only.opaque) ? Number(only.opaque) : 'unmatchable';
}

function parseIdempotencyKey(header: string | string[] | undefined): string | undefined {
  if (header === undefined) return undefined;
  if (typeof header !== 'string' || !IDEMPOTENCY_KEY_PATTERN.test(header)) {
    throw new ApiError('invalid-header', 'Idempotency-Key must be 1 to 255 printable ASCII characters');
  }
  return header;
}

function correlationId(request: FastifyRequest): string {
  const given = request.headers['x-correlation-id'];
  return typeof given === 'string' && /^[A-Za-z0-9._:-]{1,128}$/.test(given) ? given : request.id;
}

function outcomeOf(error: unknown): string {
  const status = (error as { status?: number }).status;
  return typeof status === 'number' && status < 500 ? 'refused' : 'failed';
}

const camel = (kebab: string) => kebab.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
