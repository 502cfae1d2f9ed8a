import { isoInstantMs } from '@muster/event-store';
import { CHANGE_KINDS, type ChangeKind } from '@muster/projections';
import { type FieldProblem, validationError } from './errors.js';
import type { DeliveryStatus } from './types.js';

/**
 * Input checks for the service methods. Routes hand over the parsed JSON body as it came; every
 * problem is reported at once, by field, as `webhook-validation-failed`.
 */
export const MAX_OVERLAP_SECONDS = 7 * 24 * 3600;
export const MAX_MISSIONS = 100;
export const MAX_DESCRIPTION = 500;

export interface SubscriptionInput {
  url: unknown;
  missions: string[] | '*';
  eventTypes: ChangeKind[];
  description: string;
}

export interface SubscriptionPatch {
  url?: unknown;
  missions?: string[] | '*';
  eventTypes?: ChangeKind[];
  description?: string;
  enabled?: boolean;
}

function asObject(
  input: unknown,
  problems: FieldProblem[],
  allowed: readonly string[],
  part: FieldProblem['in'] = 'body',
): Record<string, unknown> {
  if (input === undefined || input === null) return {};
  if (typeof input !== 'object' || Array.isArray(input)) {
    problems.push({ path: `(${part})`, message: 'must be a JSON object', code: 'invalid_type', in: part });
    return {};
  }
  const record = input as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (!allowed.includes(key))
      problems.push({
        path: key,
        message: `unknown field (allowed: ${allowed.join(', ')})`,
        code: 'unrecognized_keys',
        in: part,
      });
  }
  return record;
}

function missions(value: unknown, problems: FieldProblem[]): string[] | '*' | undefined {
  if (value === '*') return '*';
  if (!Array.isArray(value) || value.length === 0) {
    problems.push({
      path: 'missions',
      message: 'must be "*" or a non-empty list of mission ids',
      code: 'invalid_type',
      in: 'body',
    });
    return undefined;
  }
  if (value.length > MAX_MISSIONS) {
    problems.push({
      path: 'missions',
      message: `at most ${MAX_MISSIONS} missions (or "*")`,
      code: 'too_big',
      in: 'body',
    });
    return undefined;
  }
  if (value.length === 1 && value[0] === '*') return '*';
  const ids: string[] = [];
  value.forEach((id, i) => {
    if (typeof id !== 'string' || id.trim() === '' || id.length > 200 || id === '*') {
      problems.push({
        path: `missions[${i}]`,
        message: 'must be a mission id (1 to 200 characters)',
        code: 'invalid_value',
        in: 'body',
      });
    } else ids.push(id);
  });
  return [...new Set(ids)].sort();
}

function eventTypes(value: unknown, problems: FieldProblem[]): ChangeKind[] | undefined {
  if (!Array.isArray(value) || value.length === 0) {
    problems.push({
      path: 'eventTypes',
      message: `must be a non-empty list of ${CHANGE_KINDS.join(', ')}`,
      code: 'invalid_type',
      in: 'body',
    });
    return undefined;
  }
  const kinds: ChangeKind[] = [];
  value.forEach((kind, i) => {
    if (!CHANGE_KINDS.includes(kind as ChangeKind)) {
      problems.push({
        path: `eventTypes[${i}]`,
        message: `must be one of ${CHANGE_KINDS.join(', ')}`,
        code: 'invalid_value',
        in: 'body',
      });
    } else kinds.push(kind as ChangeKind);
  });
  return CHANGE_KINDS.filter((k) => kinds.includes(k));
}

function description(value: unknown, problems: FieldProblem[]): string | undefined {
  if (typeof value !== 'string' || value.length > MAX_DESCRIPTION) {
    problems.push({
      path: 'description',
      message: `must be a string of at most ${MAX_DESCRIPTION} characters`,
      code: typeof value === 'string' ? 'too_big' : 'invalid_type',
      in: 'body',
    });
    return undefined;
  }
  return value;
}

/**
 * The URL's shape, checked with the other fields so that one answer lists every problem; whether
 * it may be reached (scheme, credentials, addresses) is decided after, by the SSRF guard.
 */
function urlShape(value: unknown, problems: FieldProblem[]): void {
  if (
    typeof value !== 'string' ||
    value.trim() === '' ||
    value.length > 2048 ||
    !URL.canParse(value.trim())
  ) {
    problems.push({
      path: 'url',
      message: 'must be an absolute https URL of at most 2048 characters',
      code: typeof value === 'string' ? 'invalid_format' : 'invalid_type',
      in: 'body',
    });
  }
}

export function parseCreate(input: unknown): SubscriptionInput {
  const problems: FieldProblem[] = [];
  const body = asObject(input, problems, ['url', 'missions', 'eventTypes', 'description']);
  if (body.url === undefined)
    problems.push({ path: 'url', message: 'required', code: 'invalid_type', in: 'body' });
  else urlShape(body.url, problems);
  const m = body.missions === undefined ? '*' : missions(body.missions, problems);
  const e = body.eventTypes === undefined ? [...CHANGE_KINDS] : eventTypes(body.eventTypes, problems);
  const d = body.description === undefined ? '' : description(body.description, problems);
  if (problems.length > 0) throw validationError(problems);
  return {
    url: body.url,
    missions: m as string[] | '*',
    eventTypes: e as ChangeKind[],
    description: d as string,
  };
}

export function parseUpdate(input: unknown): SubscriptionPatch {
  const problems: FieldProblem[] = [];
  const body = asObject(input, problems, ['url', 'missions', 'eventTypes', 'description', 'enabled']);
  const patch: SubscriptionPatch = {};
  if (body.url !== undefined) {
    urlShape(body.url, problems);
    patch.url = body.url;
  }
  if (body.missions !== undefined) patch.missions = missions(body.missions, problems);
  if (body.eventTypes !== undefined) patch.eventTypes = eventTypes(body.eventTypes, problems);
  if (body.description !== undefined) patch.description = description(body.description, problems);
  if (body.enabled !== undefined) {
    if (typeof body.enabled !== 'boolean')
      problems.push({ path: 'enabled', message: 'must be true or false', code: 'invalid_type', in: 'body' });
    else patch.enabled = body.enabled;
  }
  if (problems.length > 0) throw validationError(problems);
  return patch;
}

export function parseRotate(input: unknown): { overlapSeconds: number } {
  const problems: FieldProblem[] = [];
  const body = asObject(input, problems, ['overlapSeconds']);
  const overlap = body.overlapSeconds ?? 86_400;
  if (
    typeof overlap !== 'number' ||
    !Number.isInteger(overlap) ||
    overlap < 0 ||
    overlap > MAX_OVERLAP_SECONDS
  ) {
    problems.push({
      path: 'overlapSeconds',
      message: `must be a whole number of seconds from 0 (revoke the old secret now) to ${MAX_OVERLAP_SECONDS} (7 days)`,
      code: typeof overlap === 'number' ? 'invalid_value' : 'invalid_type',
      in: 'body',
    });
  }
  if (problems.length > 0) throw validationError(problems);
  return { overlapSeconds: overlap as number };
}

export function parseLimit(value: unknown, problems: FieldProblem[], fallback = 50, max = 200): number {
  if (value === undefined) return fallback;
  const n = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > max) {
    problems.push({
      path: 'limit',
      message: `must be a whole number from 1 to ${max}`,
      code: 'invalid_value',
      in: 'query',
    });
    return fallback;
  }
  return n;
}

/**
 * `after` is the id a page ended with (`next`): an id of that list's kind, `<prefix>_...`. Anything
 * else is refused rather than compared as a string, which answered a garbage cursor with the
 * first page (or none) as if it were one.
 */
export function parseCursor(value: unknown, problems: FieldProblem[], prefix: string): string | undefined {
  if (value === undefined) return undefined;
  if (
    typeof value !== 'string' ||
    value.length > 100 ||
    !/^[a-z]+_[0-9a-z]+$/.test(value) ||
    !value.startsWith(`${prefix}_`)
  ) {
    problems.push({
      path: 'after',
      message: 'must be the `next` value of the previous page',
      code: 'invalid_format',
      in: 'query',
    });
    return undefined;
  }
  return value;
}

export function parseDeliveryQuery(input: unknown): {
  status?: DeliveryStatus;
  after?: string;
  limit: number;
} {
  const problems: FieldProblem[] = [];
  const query = asObject(input, problems, ['status', 'after', 'limit'], 'query');
  const statuses: DeliveryStatus[] = ['pending', 'delivered', 'failed'];
  let status: DeliveryStatus | undefined;
  if (query.status !== undefined) {
    if (!statuses.includes(query.status as DeliveryStatus)) {
      problems.push({
        path: 'status',
        message: `must be one of ${statuses.join(', ')}`,
        code: 'invalid_value',
        in: 'query',
      });
    } else status = query.status as DeliveryStatus;
  }
  const after = parseCursor(query.after, problems, 'dlv');
  const limit = parseLimit(query.limit, problems);
  if (problems.length > 0) throw validationError(problems);
  return { ...(status ? { status } : {}), ...(after ? { after } : {}), limit };
}

export function parsePageQuery(
  input: unknown,
  idPrefix: string,
  extra: readonly string[] = [],
): { after?: string; limit: number; rest: Record<string, unknown> } {
  const problems: FieldProblem[] = [];
  const query = asObject(input, problems, ['after', 'limit', ...extra], 'query');
  const after = parseCursor(query.after, problems, idPrefix);
  const limit = parseLimit(query.limit, problems);
  if (problems.length > 0) throw validationError(problems);
  return { ...(after ? { after } : {}), limit, rest: query };
}

function instant(value: unknown, path: string, problems: FieldProblem[]): number | undefined {
  if (value === undefined) return undefined;
  // The event store's rule: ISO 8601 with a zone and a date that exists. `Date.parse` alone also
  // takes 'March 1 2024' and reads 2024-02-30 as March 1st.
  const ms = isoInstantMs(value);
  if (ms === null) {
    problems.push({
      path,
      message: 'must be an ISO 8601 instant, e.g. 2024-06-25T12:00:00Z',
      code: 'invalid_format',
      in: 'body',
    });
    return undefined;
  }
  return ms;
}

/** One of the three ways to say which messages to send again. */
export type ReplaySelection =
  | { kind: 'time'; since: number; until: number | undefined; onlyFailed: boolean }
  | { kind: 'change-feed'; afterSeq: number }
  | { kind: 'event-position'; fromPosition: string };

export function parseReplay(
  input: unknown,
  canonicalPosition: (position: string) => string = (position) => position,
): ReplaySelection {
  const problems: FieldProblem[] = [];
  const body = asObject(input, problems, [
    'since',
    'until',
    'onlyFailed',
    'afterChangeSeq',
    'fromEventPosition',
  ]);
  const modes = ['since', 'afterChangeSeq', 'fromEventPosition'].filter((k) => body[k] !== undefined);
  if (problems.length === 0 && modes.length !== 1) {
    problems.push({
      path: '(body)',
      message:
        'give exactly one of since (with optional until and onlyFailed), afterChangeSeq or fromEventPosition',
      code: 'custom',
      in: 'body',
    });
  }
  if (problems.length > 0) throw validationError(problems);
  if (body.since !== undefined) {
    const since = instant(body.since, 'since', problems);
    const until = instant(body.until, 'until', problems);
    if (body.onlyFailed !== undefined && typeof body.onlyFailed !== 'boolean') {
      problems.push({
        path: 'onlyFailed',
        message: 'must be true or false',
        code: 'invalid_type',
        in: 'body',
      });
    }
    if (since !== undefined && until !== undefined && until <= since) {
      problems.push({ path: 'until', message: 'must be after since', code: 'custom', in: 'body' });
    }
    if (problems.length > 0) throw validationError(problems);
    return { kind: 'time', since: since as number, until, onlyFailed: body.onlyFailed === true };
  }
  if (body.until !== undefined || body.onlyFailed !== undefined) {
    throw validationError([
      { path: '(body)', message: 'until and onlyFailed go with since', code: 'custom', in: 'body' },
    ]);
  }
  if (body.afterChangeSeq !== undefined) {
    const seq = body.afterChangeSeq;
    if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0) {
      throw validationError([
        {
          path: 'afterChangeSeq',
          message: 'must be a change-feed position (0 or more)',
          code: typeof seq === 'number' ? 'invalid_value' : 'invalid_type',
          in: 'body',
        },
      ]);
    }
    return { kind: 'change-feed', afterSeq: seq };
  }
  const position = body.fromEventPosition;
  const refused = () =>
    validationError([
      {
        path: 'fromEventPosition',
        message: 'must be a position of this event store',
        code: 'invalid_format',
        in: 'body',
      },
    ]);
  if (typeof position !== 'string' || position.length === 0 || position.length > 200) throw refused();
  try {
    return { kind: 'event-position', fromPosition: canonicalPosition(position) };
  } catch {
    throw refused();
  }
}
