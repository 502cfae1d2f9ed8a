import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { isEventStoreError } from '@muster/event-store';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ZodError } from 'zod';

/**
 * The service's error registry: every answer that is not a success is an RFC 9457 problem
 * (`application/problem+json`) with one of these stable codes. Errors of the event store and of
 * the domain carry their own registered codes and statuses and pass through unchanged.
 */
export const API_ERRORS = {
  'validation-failed': { status: 400, title: 'The request is not valid' },
  'malformed-json': { status: 400, title: 'The body is not valid JSON' },
  'invalid-header': { status: 400, title: 'A header is not valid' },
  'invalid-query': { status: 400, title: 'A query parameter is not valid' },
  'bad-request': { status: 400, title: 'The request is not valid HTTP' },
  unauthorized: { status: 401, title: 'A valid API key is required' },
  forbidden: { status: 403, title: 'The API key does not allow this' },
  'not-found': { status: 404, title: 'No such resource' },
  'unknown-command': { status: 404, title: 'No such command' },
  'mission-not-found': { status: 404, title: 'No such mission' },
  'method-not-allowed': { status: 405, title: 'Method not allowed' },
  'request-timeout': { status: 408, title: 'The request took too long' },
  conflict: { status: 409, title: 'The request conflicts with the current state' },
  'idempotency-key-in-use': { status: 409, title: 'A request with this Idempotency-Key is still running' },
  'command-id-reused': { status: 409, title: 'The commandId was already used on this mission' },
  'precondition-failed': { status: 412, title: 'The resource has changed (If-Match)' },
  'payload-too-large': { status: 413, title: 'The body is too large' },
  'uri-too-long': { status: 414, title: 'The URL is too long' },
  'unsupported-media-type': { status: 415, title: 'The body must be application/json' },
  'idempotency-key-reused': { status: 422, title: 'The Idempotency-Key was used with another request' },
  'rate-limited': { status: 429, title: 'Too many requests' },
  'headers-too-large': { status: 431, title: 'The request line or headers are too large' },
  'internal-error': { status: 500, title: 'Internal error' },
  'not-ready': { status: 503, title: 'The service is not ready' },
  timeout: { status: 503, title: 'The request took too long to process' },
  'shutting-down': { status: 503, title: 'The service is shutting down' },
} as const;

export type ApiErrorCode = keyof typeof API_ERRORS;

export class ApiError extends Error {
  readonly code: ApiErrorCode;
  readonly status: number;
  readonly extensions: Record<string, unknown>;
  readonly headers: Record<string, string>;

  constructor(
    code: ApiErrorCode,
    detail?: string,
    extensions: Record<string, unknown> = {},
    headers: Record<string, string> = {},
  ) {
    super(detail ?? API_ERRORS[code].title);
    this.name = 'ApiError';
    this.code = code;
    this.status = API_ERRORS[code].status;
    this.extensions = extensions;
    this.headers = headers;
  }
}

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: string;
  instance?: string;
  [extension: string]: unknown;
}

export const problemType = (code: string) => `urn:muster:problem:${code}`;

/** Errors the domain package throws: a stable code and a suggested status (duck-typed to keep the dependency one-way). */
interface CodedError {
  name: string;
  code: string;
  status?: number;
  httpStatus?: number;
  message: string;
  details?: unknown;
}

/** The other packages' registries: each error carries a stable code and the status to answer with. */
const CODED_ERRORS: Readonly<Record<string, string>> = {
  DomainError: 'The command was refused',
  WebhookError: 'The webhook request was refused',
  ProjectionError: 'The read model request was refused',
  EsdbAdapterError: 'The event store refused the request',
  InvalidConnectionStringError: 'The connection string is not valid',
};

function isCodedDomainError(error: unknown): error is CodedError {
  const e = error as CodedError;
  return (
    error instanceof Error &&
    Object.hasOwn(CODED_ERRORS, e.name) &&
    typeof e.code === 'string' &&
    (typeof e.status === 'number' || typeof e.httpStatus === 'number')
  );
}

export function toProblem(
  error: unknown,
  requestId: string,
): { problem: Problem; headers: Record<string, string> } {
  const base = (
    code: string,
    status: number,
    title: string,
    detail: string,
    extra: Record<string, unknown> = {},
  ) => ({
    type: problemType(code),
    title,
    status,
    detail,
    code,
    instance: `urn:muster:request:${requestId}`,
    ...extra,
  });

  if (error instanceof ApiError) {
    return {
      problem: base(error.code, error.status, API_ERRORS[error.code].title, error.message, error.extensions),
      headers: error.headers,
    };
  }
  if (error instanceof ZodError) {
    return {
      problem: base('validation-failed', 400, API_ERRORS['validation-failed'].title, summariseZod(error), {
        errors: zodErrors(error),
      }),
      headers: {},
    };
  }
  if (isEventStoreError(error)) {
    const extra: Record<string, unknown> = {};
    const e = error as unknown as Record<string, unknown>;
    for (const key of ['expected', 'actual', 'stream', 'index', 'limit'])
      if (e[key] !== undefined) extra[key] = e[key];
    return {
      problem: base(error.code, error.status, error.name.replace(/Error$/, ''), error.message, extra),
      headers: error.retryable ? { 'retry-after': '1' } : {},
    };
  }
  if (isCodedDomainError(error)) {
    const status = error.status ?? error.httpStatus ?? 422;
    const title = (error as { title?: unknown }).title;
    const details = (error.details ?? {}) as Record<string, unknown>;
    // A list of bad fields is shown as `errors`, as for the service's own validation failures.
    const extensions =
      Array.isArray(details.errors) && Object.keys(details).length === 1
        ? { errors: details.errors }
        : Object.keys(details).length > 0
          ? { details }
          : {};
    return {
      problem: base(
        error.code,
        status,
        typeof title === 'string' ? title : (CODED_ERRORS[error.name] as string),
        error.message,
        extensions,
      ),
      headers: status === 503 ? { 'retry-after': '1' } : {},
    };
  }
  const fastifyError = error as FastifyError;
  if (typeof fastifyError?.code === 'string' && fastifyError.code.startsWith('FST_')) {
    const mapped = mapFastifyError(fastifyError);
    if (mapped)
      return {
        problem: base(
          mapped.code,
          API_ERRORS[mapped.code].status,
          API_ERRORS[mapped.code].title,
          mapped.detail,
        ),
        headers: {},
      };
  }
  if (error instanceof SyntaxError && (error as FastifyError).statusCode === 400) {
    return {
      problem: base('malformed-json', 400, API_ERRORS['malformed-json'].title, 'The body is not valid JSON'),
      headers: {},
    };
  }
  return {
    problem: base(
      'internal-error',
      500,
      API_ERRORS['internal-error'].title,
      'An unexpected error occurred; it has been logged',
    ),
    headers: {},
  };
}

function mapFastifyError(error: FastifyError): { code: ApiErrorCode; detail: string } | null {
  switch (error.code) {
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return { code: 'unsupported-media-type', detail: 'Send the body as application/json' };
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return { code: 'payload-too-large', detail: 'The body is larger than the limit' };
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return { code: 'malformed-json', detail: 'The body is empty but the content type is application/json' };
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return { code: 'malformed-json', detail: 'The body is not valid JSON' };
    case 'FST_ERR_BAD_URL':
    case 'FST_ERR_ASYNC_CONSTRAINT':
      return { code: 'not-found', detail: 'The URL is not valid' };
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return { code: 'uri-too-long', detail: 'A path segment of the URL is too long' };
    case 'FST_ERR_CTP_INVALID_TYPE':
      return { code: 'unsupported-media-type', detail: 'The content type is not valid' };
    default:
      if (error.statusCode === 413)
        return { code: 'payload-too-large', detail: 'The body is larger than the limit' };
      if (error.statusCode === 415)
        return { code: 'unsupported-media-type', detail: 'Send the body as application/json' };
      if (error.statusCode === 408) return { code: 'request-timeout', detail: 'The request took too long' };
      if (error.statusCode === 400) return { code: 'validation-failed', detail: 'The request is not valid' };
      return null;
  }
}

/** Where a request's invalid part was: set by the route registry on the ZodError it rethrows. */
export type RequestPart = 'path' | 'query' | 'body';

type FieldError = { path: string; message: string; code: string; in?: RequestPart };

export function zodErrors(error: ZodError): FieldError[] {
  const part = (error as ZodError & { part?: RequestPart }).part;
  const format = (path: readonly PropertyKey[]) =>
    path.length === 0
      ? `(${part ?? 'body'})`
      : path
          .map((p) => (typeof p === 'number' ? `[${p}]` : String(p)))
          .join('.')
          .replace(/\.\[/g, '[');
  return error.issues.flatMap((issue): FieldError[] => {
    const where: { in?: RequestPart } = part ? { in: part } : {};
    // One entry per unknown key, at its own path, rather than one at the parent naming them all.
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((key) => ({
        path: format([...issue.path, key]),
        message: part === 'query' ? 'not a known query parameter' : 'not a known field',
        code: issue.code,
        ...where,
      }));
    }
    return [{ path: format(issue.path), message: issue.message, code: issue.code, ...where }];
  });
}

function summariseZod(error: ZodError): string {
  const fields = new Set(zodErrors(error).map((e) => e.path)).size;
  return fields === 1 ? '1 field is not valid' : `${fields} fields are not valid`;
}

/**
 * Answers what Node's HTTP parser refused before fastify saw a request (a URL or headers past
 * the parser's limit, a request line that is not HTTP, a request that never finished) as a
 * problem like every other, instead of fastify's plain JSON. A URL that long is a 431 here: the
 * parser counts it with the headers and cannot tell the two apart.
 */
export function answerClientError(error: Error & { code?: string }, socket: Duplex): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const code: ApiErrorCode =
    error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? 'request-timeout'
      : error.code === 'HPE_HEADER_OVERFLOW'
        ? 'headers-too-large'
        : 'bad-request';
  const { status, title } = API_ERRORS[code];
  const detail =
    code === 'headers-too-large'
      ? 'The URL and headers together exceed the limit (16 KiB); shorten the query or the headers'
      : title;
  const body = JSON.stringify({ type: problemType(code), title, status, detail, code });
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\nContent-Type: application/problem+json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
  }
  socket.destroy(error);
}

export function sendProblem(reply: FastifyReply, request: FastifyRequest, error: unknown): FastifyReply {
  const { problem, headers } = toProblem(error, request.id);
  if (problem.status >= 500) {
    request.log.error({ err: error, code: problem.code }, 'request failed');
  } else {
    request.log.info({ code: problem.code, status: problem.status }, 'request refused');
  }
  for (const [name, value] of Object.entries(headers)) reply.header(name, value);
  if (problem.status === 401) reply.header('www-authenticate', 'Bearer realm="muster"');
  return reply
    .code(problem.status)
    .type('application/problem+json; charset=utf-8')
    .send(JSON.stringify(problem));
}

/**
 * The methods routed for each path pattern, to tell a path that exists under other methods (405
 * with `Allow`, RFC 9110 §15.5.6) from one that does not (404).
 */
export class AllowedMethods {
  private readonly patterns = new Map<string, { match: RegExp; methods: Set<string> }>();

  add(method: string, url: string): void {
    let entry = this.patterns.get(url);
    if (!entry) {
      const source = url
        .split('/')
        .map((part) => (part === '*' ? '.*' : part.startsWith(':') ? '[^/]+' : escapeRegExp(part)))
        .join('/');
      entry = { match: new RegExp(`^${source}$`), methods: new Set() };
      this.patterns.set(url, entry);
    }
    entry.methods.add(method);
    if (method === 'GET') entry.methods.add('HEAD');
  }

  for(path: string): string[] {
    const methods = new Set<string>();
    for (const { match, methods: routed } of this.patterns.values())
      if (match.test(path)) for (const m of routed) methods.add(m);
    return [...methods].sort();
  }
}

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The one error handler of the service, and the answer for routes that do not exist. */
export function registerErrorHandling(app: FastifyInstance, allowed = new AllowedMethods()): void {
  app.setErrorHandler((error, request, reply) => sendProblem(reply, request, error));
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0] as string;
    const methods = allowed.for(path);
    // OPTIONS on a path that exists answers what it takes (RFC 9110 §9.3.7), not a 405.
    if (request.method === 'OPTIONS' && methods.length > 0) {
      return reply
        .code(204)
        .header('allow', [...methods, 'OPTIONS'].join(', '))
        .send();
    }
    return sendProblem(
      reply,
      request,
      methods.length > 0
        ? new ApiError(
            'method-not-allowed',
            `${path} does not answer ${request.method}; it answers ${methods.join(', ')}`,
            { allowed: methods },
            { allow: methods.join(', ') },
          )
        : new ApiError('not-found', `No route for ${request.method} ${path}`),
    );
  });
}
