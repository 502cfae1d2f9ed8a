import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ZodError, z } from 'zod';
import type { Principal } from './auth/roles.js';
import { ApiError, type RequestPart } from './errors.js';

/**
 * Every route is declared once, with zod schemas for its parameters, query, body and responses:
 * the same declaration validates requests and generates the OpenAPI 3.1 document, so the two
 * cannot drift apart.
 */
export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface ResponseSpec {
  description: string;
  schema?: z.ZodType;
  /** Defaults to application/json. */
  contentType?: string;
  headers?: Record<string, { description: string; schema: z.ZodType }>;
  /** Other media types the same status may be answered in (by `Accept`), with what each holds. */
  alternatives?: Record<string, string>;
}

const retryAfter = {
  'Retry-After': { description: 'Seconds to wait before retrying', schema: z.string() },
};

/**
 * Answers every route of its kind can give, documented once here: a route lists only its own,
 * and its own description wins where both name a status (the headers of both are kept).
 */
/** Whether a route waits for `Muster-Min-Position` (the API's reads; see the hook in app.ts). */
export function readsMinPosition(route: { method: string; url: string }): boolean {
  return route.method === 'GET' && route.url.startsWith('/v1/');
}

function commonResponses(route: RouteSpec<unknown, unknown, unknown>): Record<number, ResponseSpec> {
  const common: Record<number, ResponseSpec> = {};
  // Any API read takes Muster-Min-Position, so any can be refused for a malformed one.
  if (route.params || route.query || route.body || route.headers || readsMinPosition(route)) {
    common[400] = { description: 'A parameter, query, header or body is not valid (each problem listed)' };
  }
  if (!route.public) {
    common[401] = {
      description: 'No valid API key',
      headers: { 'WWW-Authenticate': { description: 'Bearer realm="muster"', schema: z.string() } },
    };
    common[429] = { description: 'Past the rate limit (Retry-After)', headers: retryAfter };
  }
  // fastify refuses a path parameter over its length limit before routing on it.
  if (route.params) common[414] = { description: 'A path segment is over 100 characters' };
  if (route.body) {
    common[413] = { description: 'The body is over the limit' };
    common[415] = { description: 'The body is not application/json' };
  }
  common[503] = {
    description:
      'Not available now: the service is shutting down, the request took too long, or the read models have not reached Muster-Min-Position; retry after Retry-After',
    headers: retryAfter,
  };
  return common;
}

/** The route's own answer over the common one, keeping the headers of both. */
function mergeResponse(common: ResponseSpec | undefined, own: ResponseSpec | undefined): ResponseSpec {
  if (!common) return own as ResponseSpec;
  if (!own) return common;
  const headers = { ...common.headers, ...own.headers };
  return { ...own, ...(Object.keys(headers).length > 0 ? { headers } : {}) };
}

/** Read-your-writes across replicas (see app.ts): every GET waits for the position it names. */
const minPositionParameter = {
  name: 'Muster-Min-Position',
  in: 'header',
  required: false,
  description:
    'A global log position a write answered with: the read waits (up to 2 s) until the read models hold it, else 503',
  schema: { type: 'string', maxLength: 80 },
};

export interface RouteContext<P, Q, B> {
  params: P;
  query: Q;
  body: B;
  /** The authenticated caller; null only on public routes. */
  principal: Principal | null;
  request: FastifyRequest;
  reply: FastifyReply;
}

export interface RouteSpec<P = unknown, Q = unknown, B = unknown> {
  method: HttpMethod;
  /** fastify syntax: `/v1/missions/:missionId`. */
  url: string;
  operationId: string;
  summary: string;
  description?: string;
  tags: string[];
  /** Public routes need no API key (health, metrics, the OpenAPI document). */
  public?: boolean;
  /**
   * Polled by machines (probes, scrapes): its requests are logged only when they go wrong, so that
   * a probe every few seconds does not bury the log in two lines each.
   */
  quiet?: boolean;
  params?: z.ZodType<P>;
  query?: z.ZodType<Q>;
  body?: z.ZodType<B>;
  /** Extra request headers worth documenting (Idempotency-Key, If-Match, ...). */
  headers?: Record<string, { description: string; required?: boolean; schema: z.ZodType }>;
  responses: Record<number, ResponseSpec>;
  /**
   * The handler's service validates the body and the query itself, with its own error code and
   * every problem at once: the schemas here only document them, and parsing them first would
   * answer the same mistakes with another code and only the first few problems.
   */
  validatedByHandler?: boolean;
  /** Rights that do not depend on the body: checked before the body is parsed, so a caller without them learns nothing from validation errors. */
  authorize?: (principal: Principal, params: P) => void;
  handler(context: RouteContext<P, Q, B>): Promise<unknown>;
}

/**
 * An integer query parameter, written in plain decimal. `z.coerce.number()` took `''` as 0 (so
 * `?afterRevision=` skipped revision 0) and `0x10` or `1e2` as numbers; anything but digits is
 * left a string here, which the integer schema then refuses.
 */
export function integerQuery(min: number, max: number) {
  return z.preprocess(
    (value) => (typeof value === 'string' && /^-?\d{1,16}$/.test(value) ? Number(value) : value),
    z.int().min(min).max(max),
  );
}

/** Runs a parse, marking a ZodError with the part of the request it is about. */
function located<T>(part: RequestPart, parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    if (error instanceof ZodError) Object.assign(error, { part });
    throw error;
  }
}

export type Authenticator = (request: FastifyRequest, reply: FastifyReply) => Principal;

export class RouteRegistry {
  readonly routes: RouteSpec<unknown, unknown, unknown>[] = [];

  constructor(
    private readonly app: FastifyInstance,
    private readonly authenticate: Authenticator,
    /** Past this, a handler's answer is given up on and the caller gets 503 (retry, with the same Idempotency-Key). */
    private readonly handlerTimeoutMs = 30_000,
    /**
     * Whether the key that authenticated a request still stands when its handler starts: a key
     * revoked (or expired) while the body was arriving, or while the request waited, must not act.
     */
    private readonly stillValid: (principal: Principal) => boolean = () => true,
  ) {}

  add<P, Q, B>(spec: RouteSpec<P, Q, B>): void {
    this.routes.push(spec as RouteSpec<unknown, unknown, unknown>);
    const callers = new WeakMap<FastifyRequest, { principal: Principal | null; params: P }>();
    const takesIdempotencyKey = spec.method === 'GET' || spec.headers?.['Idempotency-Key'] !== undefined;
    const admit = (request: FastifyRequest, reply: FastifyReply): void => {
      const principal = spec.public ? null : this.authenticate(request, reply);
      // JSON is UTF-8 (RFC 8259): a body declared in another charset would be read as UTF-8
      // anyway, and its text silently changed.
      const charset = /;\s*charset\s*=\s*"?([^";\s]+)/i.exec(request.headers['content-type'] ?? '')?.[1];
      if (charset !== undefined && !/^utf-?8$/i.test(charset)) {
        throw new ApiError(
          'unsupported-media-type',
          `Send the body as UTF-8 application/json, not ${charset}`,
        );
      }
      // A client that sends a key expects a retry to be safe; where the key is not kept, a
      // silent retry would act twice (a second API key, a second subscription).
      if (!takesIdempotencyKey && request.headers['idempotency-key'] !== undefined) {
        throw new ApiError(
          'invalid-header',
          `Idempotency-Key is not supported on ${spec.method} ${spec.url}; only commands and POST /v1/missions keep it`,
        );
      }
      const params = spec.params
        ? located('path', () => spec.params?.parse(request.params) as P)
        : (request.params as P);
      if (principal && spec.authorize) spec.authorize(principal, params);
      callers.set(request, { principal, params });
    };
    this.app.route({
      method: spec.method,
      url: spec.url,
      config: { operationId: spec.operationId },
      ...(spec.quiet ? { logLevel: 'warn' as const } : {}),
      // Before the body is read: a caller without a key, or without the rights, gets its 401 or
      // 403 without the service buffering and parsing a body for it, and learns nothing from a
      // 400, 413 or 415 about a body it may not send. A callback hook: an async one would cost
      // every request a promise and a microtask turn.
      onRequest: (request, reply, done) => {
        try {
          admit(request, reply);
        } catch (error) {
          return done(error as Error);
        }
        done();
      },
      handler: async (request, reply) => {
        const { principal, params } = callers.get(request) as { principal: Principal | null; params: P };
        if (principal && !this.stillValid(principal)) {
          throw new ApiError('unauthorized', 'The API key is not valid (unknown, revoked or expired)');
        }
        const parse = !spec.validatedByHandler;
        const query =
          spec.query && parse
            ? located('query', () => spec.query?.parse(request.query ?? {}) as Q)
            : (request.query as Q);
        const body =
          spec.body && parse
            ? located('body', () => spec.body?.parse(request.body) as B)
            : (request.body as B);
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<never>((_, reject) => {
          timer = setTimeout(
            () =>
              reject(
                new ApiError('timeout', 'The request took too long; retry it', {}, { 'retry-after': '1' }),
              ),
            this.handlerTimeoutMs,
          );
        });
        try {
          return await Promise.race([
            spec.handler({ params, query, body, principal, request, reply }),
            timeout,
          ]);
        } finally {
          clearTimeout(timer);
        }
      },
    });
  }
}

/** Headers on every answer: its request id, and for a keyed call the state of the key's budget. */
const everyAnswer: NonNullable<ResponseSpec['headers']> = {
  'X-Request-Id': {
    description: 'The request id (the one given, if well formed), also in `instance`',
    schema: z.string(),
  },
};
const budgetHeaders: NonNullable<ResponseSpec['headers']> = {
  'RateLimit-Limit': { description: "The size of the key's bucket of requests", schema: z.string() },
  'RateLimit-Remaining': { description: 'Requests that may pass now', schema: z.string() },
  'RateLimit-Reset': { description: 'Seconds until the bucket is full again', schema: z.string() },
  'RateLimit-Policy': { description: 'The bucket and its window, e.g. `1000;w=10`', schema: z.string() },
};

function responsesOf(route: RouteSpec<unknown, unknown, unknown>) {
  const common = commonResponses(route);
  const statuses = new Set([...Object.keys(common), ...Object.keys(route.responses)].map(Number));
  const always = { ...everyAnswer, ...(route.public ? {} : budgetHeaders) };
  return Object.fromEntries(
    [...statuses]
      .sort((a, b) => a - b)
      .map((status) => {
        const response = mergeResponse(common[status], route.responses[status]);
        return [
          String(status),
          responseObject(status, { ...response, headers: { ...always, ...response.headers } }),
        ];
      }),
  );
}

/** Builds the OpenAPI 3.1 document from the declared routes. */
export function openApiDocument(
  routes: readonly RouteSpec<unknown, unknown, unknown>[],
  info: { version: string; serverUrl?: string | undefined },
  webhooks?: Record<string, unknown>,
) {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of routes) {
    const path = route.url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
    const parameters = [
      ...objectParameters(route.params, 'path'),
      ...objectParameters(route.query, 'query'),
      ...Object.entries(route.headers ?? {}).map(([name, h]) => ({
        name,
        in: 'header',
        required: h.required ?? false,
        description: h.description,
        schema: jsonSchema(h.schema),
      })),
      ...(readsMinPosition(route) ? [minPositionParameter] : []),
    ];
    const operation: Record<string, unknown> = {
      operationId: route.operationId,
      summary: route.summary,
      ...(route.description ? { description: route.description } : {}),
      tags: route.tags,
      ...(parameters.length > 0 ? { parameters } : {}),
      ...(route.public ? { security: [] } : {}),
      responses: responsesOf(route),
    };
    if (route.body) {
      operation.requestBody = {
        required: true,
        content: { 'application/json': { schema: jsonSchema(route.body) } },
      };
    }
    paths[path] ??= {};
    (paths[path] as Record<string, unknown>)[route.method.toLowerCase()] = operation;
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Muster',
      version: info.version,
      description:
        'Event-sourced deployment readiness. Every /v1 call needs `Authorization: Bearer <API key>`. Errors are RFC 9457 problem documents (`application/problem+json`) with a stable `code`.',
    },
    ...(info.serverUrl ? { servers: [{ url: info.serverUrl }] } : {}),
    security: [{ apiKey: [] }],
    components: {
      securitySchemes: {
        apiKey: { type: 'http', scheme: 'bearer', description: 'An API key: mk_<key id>_<secret>' },
      },
      schemas: { Problem: jsonSchema(problemSchema) },
    },
    paths,
    ...(webhooks ? { webhooks } : {}),
  };
}

export const problemSchema = z
  .object({
    type: z.string().describe('urn:muster:problem:<code>'),
    title: z.string(),
    status: z.int(),
    detail: z.string(),
    code: z.string().describe('Stable machine-readable code'),
    instance: z.string().optional(),
    errors: z
      .array(
        z.object({
          path: z.string(),
          message: z.string(),
          // The webhook service names the field and the problem, not a validator code.
          code: z.string().optional(),
          in: z.enum(['path', 'query', 'body']).optional().describe('The part of the request'),
        }),
      )
      .optional(),
  })
  .catchall(z.unknown());

function responseObject(status: number, response: ResponseSpec) {
  const isProblem = status >= 400;
  const contentType = response.contentType ?? (isProblem ? 'application/problem+json' : 'application/json');
  const schema =
    isProblem && !response.schema
      ? { $ref: '#/components/schemas/Problem' }
      : response.schema
        ? jsonSchema(response.schema)
        : undefined;
  return {
    description: response.description,
    ...(response.headers
      ? {
          headers: Object.fromEntries(
            Object.entries(response.headers).map(([name, h]) => [
              name,
              { description: h.description, schema: jsonSchema(h.schema) },
            ]),
          ),
        }
      : {}),
    // 204 and 304 have no body, whatever a route says.
    ...(status !== 204 && status !== 304
      ? {
          content: {
            [contentType]: schema ? { schema } : {},
            ...Object.fromEntries(
              Object.entries(response.alternatives ?? {}).map(([type, description]) => [
                type,
                { schema: { type: 'string', description } },
              ]),
            ),
          },
        }
      : {}),
  };
}

function objectParameters(schema: z.ZodType | undefined, location: 'path' | 'query') {
  if (!schema) return [];
  const json = jsonSchema(schema) as { properties?: Record<string, unknown>; required?: string[] };
  return Object.entries(json.properties ?? {}).map(([name, propertySchema]) => ({
    name,
    in: location,
    required: location === 'path' || (json.required ?? []).includes(name),
    schema: propertySchema,
    ...(typeof (propertySchema as { description?: unknown }).description === 'string'
      ? { description: (propertySchema as { description: string }).description }
      : {}),
  }));
}

export function jsonSchema(schema: z.ZodType): Record<string, unknown> {
  const json = z.toJSONSchema(schema, {
    target: 'draft-2020-12',
    io: 'input',
    unrepresentable: 'any',
  }) as Record<string, unknown>;
  delete json.$schema;
  return json;
}
