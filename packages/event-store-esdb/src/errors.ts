import type { AppendExpectedRevision, CurrentRevision } from '@eventstore/db-client';
import {
  EventTooLargeError,
  type ExpectedRevision,
  isEventStoreError,
  StoreUnavailableError,
  StreamNotFoundError,
  WrongExpectedRevisionError,
} from '@muster/event-store';
import { fromEsdbCurrentRevision, fromEsdbExpectedRevision } from './expected-revision.js';

/**
 * Errors of this adapter that the port's registry has no code for. Everything a caller can act
 * on (revision conflicts, missing streams, an unreachable server) maps to the port's own errors.
 */
export const ESDB_ERRORS = {
  'invalid-connection-string': {
    status: 500,
    retryable: false,
    title: 'Invalid EventStoreDB connection string',
  },
  'foreign-event': { status: 500, retryable: false, title: 'Event not written by Muster' },
} as const;

export type EsdbErrorCode = keyof typeof ESDB_ERRORS;

export class EsdbAdapterError extends Error {
  readonly code: EsdbErrorCode;
  readonly status: number;
  readonly retryable: boolean;

  constructor(code: EsdbErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.status = ESDB_ERRORS[code].status;
    this.retryable = ESDB_ERRORS[code].retryable;
  }
}

export class InvalidConnectionStringError extends EsdbAdapterError {
  constructor(reason: string, options?: { cause?: unknown }) {
    super('invalid-connection-string', `EventStoreDB connection string is invalid: ${reason}`, options);
  }
}

/** An event in a Muster stream that carries no Muster envelope (written by another tool). */
export class ForeignEventError extends EsdbAdapterError {
  readonly stream: string;
  readonly revision: number;

  constructor(stream: string, revision: number) {
    super(
      'foreign-event',
      `Stream '${stream}' holds an event at revision ${revision} that was not written by Muster (no $muster envelope)`,
    );
    this.stream = stream;
    this.revision = revision;
  }
}

export interface ErrorContext {
  operation: string;
  stream?: string;
  /** The caller's expected revision, reported instead of the exact one the adapter sent. */
  expected?: ExpectedRevision;
  /** Bytes of the append, for a server-side size rejection. */
  appendBytes?: number;
}

// gRPC status codes that mean "the server could not be reached or did not answer".
const UNAVAILABLE_GRPC_CODES = new Set([
  1, // CANCELLED by the server (client-side cancels are filtered by the client)
  4, // DEADLINE_EXCEEDED
  8, // RESOURCE_EXHAUSTED
  10, // ABORTED (the server's own timeout)
  12, // UNIMPLEMENTED: something answered, but not an EventStoreDB gRPC endpoint
  14, // UNAVAILABLE
]);
const UNAVAILABLE_TYPES = new Set(['unavailable', 'deadline-exceeded', 'timeout', 'cancelled', 'not-leader']);
const UNAVAILABLE_SYSCALL_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
]);

export function errorType(error: unknown): string | undefined {
  const type = (error as { type?: unknown } | null)?.type;
  return typeof type === 'string' ? type : undefined;
}

export const isWrongExpectedVersion = (error: unknown): boolean =>
  errorType(error) === 'wrong-expected-version';

export const isStreamNotFound = (error: unknown): boolean => errorType(error) === 'stream-not-found';

export function isUnavailable(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const type = errorType(error);
  if (type !== undefined && UNAVAILABLE_TYPES.has(type)) return true;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'number') return UNAVAILABLE_GRPC_CODES.has(code);
  if (typeof code === 'string') return UNAVAILABLE_SYSCALL_CODES.has(code);
  return false;
}

/** Errors that retrying cannot fix: a subscription stops instead of resubscribing. */
export function isPermanent(error: unknown): boolean {
  if (error instanceof EsdbAdapterError) return true;
  if (isEventStoreError(error)) return !error.retryable;
  const type = errorType(error);
  return type === 'access-denied' || type === 'invalid-argument' || type === 'unsupported';
}

/** Translates a client error into the port's error, or returns it unchanged. */
export function mapEsdbError(error: unknown, context: ErrorContext): unknown {
  if (isEventStoreError(error) || error instanceof EsdbAdapterError) return error;
  if (typeof error !== 'object' || error === null) return error;
  const message = (error as { message?: unknown }).message;
  switch (errorType(error)) {
    case 'wrong-expected-version': {
      const e = error as {
        streamName?: string;
        expectedVersion?: AppendExpectedRevision;
        actualVersion?: CurrentRevision;
      };
      return new WrongExpectedRevisionError(
        context.stream ?? e.streamName ?? '',
        context.expected ??
          (e.expectedVersion === undefined ? 'any' : fromEsdbExpectedRevision(e.expectedVersion)),
        fromEsdbCurrentRevision(e.actualVersion),
      );
    }
    case 'stream-not-found':
      return new StreamNotFoundError(context.stream ?? (error as { streamName?: string }).streamName ?? '');
    case 'maximum-append-size-exceeded': {
      const limit = (error as { maxAppendSize?: number }).maxAppendSize ?? 0;
      return new EventTooLargeError(0, context.appendBytes ?? limit + 1, limit);
    }
  }
  if (isUnavailable(error)) {
    return new StoreUnavailableError(
      `EventStoreDB did not answer (${context.operation}): ${typeof message === 'string' ? message : 'unavailable'}`,
      { cause: error },
    );
  }
  return error;
}
