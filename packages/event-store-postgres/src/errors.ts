import {
  EventStoreError,
  type ExpectedRevision,
  StoreClosedError,
  StoreFullError,
  StoreUnavailableError,
  WrongExpectedRevisionError,
} from '@muster/event-store';

/**
 * The append was issued behind an earlier append to the same stream, expecting the revision that
 * one would produce, and that one was not written: the stream is at the expected revision, but
 * through another writer's event. A revision conflict like any other (decide again on a fresh
 * state and retry); only the message differs, since expected and actual revisions are equal.
 */
export class BrokenChainError extends WrongExpectedRevisionError {
  constructor(stream: string, expected: ExpectedRevision, actual: number | 'no_stream') {
    super(stream, expected, actual);
    this.message = `Stream '${stream}': revision ${String(actual)} was expected from the append this one was issued behind, which was not written; another writer's event holds it`;
  }
}

/**
 * The connection string is malformed, or the server rejected it (authentication, missing database,
 * unsupported server). Not retryable: the configuration has to change. The service names the
 * variable it came from; the message never carries the password.
 */
export class InvalidConnectionStringError extends Error {
  readonly code = 'invalid-connection-string';
  readonly retryable = false;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'InvalidConnectionStringError';
  }
}

export interface ConnectionTarget {
  connectionString: string;
  /** `postgres://user@host:port/database`, without the password: safe for messages. */
  description: string;
}

/** Checks the shape of a connection string before anything connects, so a typo fails clearly. */
export function parseConnectionString(value: unknown): ConnectionTarget {
  if (typeof value !== 'string' || value.trim() === '') {
    throw new InvalidConnectionStringError('PostgreSQL connection string is missing or empty');
  }
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new InvalidConnectionStringError(
      'PostgreSQL connection string is not a URL; expected postgres://user:password@host:port/database',
    );
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') {
    throw new InvalidConnectionStringError(
      `PostgreSQL connection string must start with postgres:// or postgresql://, not ${url.protocol}//`,
    );
  }
  const user = url.username ? `${decodeURIComponent(url.username)}@` : '';
  // As in libpq, no host means the default one (PGHOST, else localhost).
  const host = url.hostname || url.searchParams.get('host') || 'localhost';
  const port = url.port ? `:${url.port}` : '';
  const database = url.pathname.length > 1 ? url.pathname : '';
  return { connectionString: value, description: `postgres://${user}${host}${port}${database}` };
}

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ENOENT',
]);

/** SQLSTATEs that say "try again later", not "your statement is wrong". */
const UNAVAILABLE_SQLSTATES = new Set([
  '57P01', // admin_shutdown (pg_terminate_backend, fast shutdown)
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now (starting up, recovering)
  '57P05', // idle_session_timeout
  '53300', // too_many_connections
  '53400', // configuration_limit_exceeded
  '57014', // query_canceled (statement_timeout)
  '55P03', // lock_not_available (lock_timeout)
  '40001', // serialization_failure
  '40P01', // deadlock_detected
  '25006', // read_only_sql_transaction (a standby after failover)
  '25P03', // idle_in_transaction_session_timeout
  '58000', // system_error
  '58030', // io_error
  'XX001', // data_corrupted
]);

const CONFIG_SQLSTATES = new Set([
  '28000', // invalid_authorization_specification
  '28P01', // invalid_password
  '3D000', // invalid_catalog_name: the database does not exist
  '42501', // insufficient_privilege (CONNECT or CREATE missing)
]);

const CONNECTION_MESSAGES =
  /Connection terminated|not queryable|timeout exceeded when trying to connect|timeout expired|Query read timeout|Connection terminated due to connection timeout|read ECONNRESET|socket hang up/i;

function codeOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** True for failures of the connection itself: the statement may or may not have run. */
export function isConnectionError(error: unknown): boolean {
  if (error instanceof StoreUnavailableError)
    return error.cause !== undefined && isConnectionError(error.cause);
  if (error instanceof AggregateError) return error.errors.some(isConnectionError);
  const code = codeOf(error);
  if (code !== undefined) {
    if (NETWORK_CODES.has(code)) return true;
    if (code.startsWith('08') || code === '57P01' || code === '57P02' || code === '57P03') return true;
  }
  return error instanceof Error && CONNECTION_MESSAGES.test(error.message);
}

function describe(error: unknown): string {
  if (error instanceof AggregateError && error.errors.length > 0) return describe(error.errors[0]);
  const code = codeOf(error);
  const message = error instanceof Error ? error.message : String(error);
  return code && !message.includes(code) ? `${code}: ${message}` : message;
}

/**
 * Maps pg failures to the port's typed errors: lost or refused connections, shutdowns and timeouts
 * become the retryable StoreUnavailableError; a full disk StoreFullError. SQL errors of the caller's
 * own statements (syntax, constraints) pass through unchanged.
 */
export function mapPgError(error: unknown): unknown {
  if (error instanceof EventStoreError || error instanceof InvalidConnectionStringError) return error;
  if (error instanceof Error && /Cannot use a pool after calling end/.test(error.message)) {
    return new StoreClosedError();
  }
  const code = codeOf(error);
  if (code === '53100') return new StoreFullError('PostgreSQL is out of disk space', { cause: error });
  if (isConnectionError(error) || (code !== undefined && UNAVAILABLE_SQLSTATES.has(code))) {
    return new StoreUnavailableError(`PostgreSQL is unavailable (${describe(error)})`, { cause: error });
  }
  return error;
}

/** Like mapPgError, for the first connection at open: rejected credentials are configuration errors. */
export function mapOpenError(error: unknown, target: ConnectionTarget): unknown {
  const code = codeOf(error);
  if (code !== undefined && CONFIG_SQLSTATES.has(code)) {
    return new InvalidConnectionStringError(
      `PostgreSQL at ${target.description} rejected the connection: ${describe(error)}`,
      { cause: error },
    );
  }
  const mapped = mapPgError(error);
  if (mapped instanceof StoreUnavailableError) {
    return new StoreUnavailableError(
      `PostgreSQL at ${target.description} is unreachable (${describe(error)})`,
      {
        cause: error,
      },
    );
  }
  return mapped;
}
