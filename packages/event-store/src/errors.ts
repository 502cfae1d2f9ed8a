import type { ExpectedRevision } from './types.js';

/**
 * The error registry of the event store port: every error has a stable code, the HTTP status a
 * service should answer with, and whether retrying the same call may succeed.
 */
export const EVENT_STORE_ERRORS = {
  'wrong-expected-revision': { status: 409, retryable: false, title: 'Wrong expected revision' },
  'stream-not-found': { status: 404, retryable: false, title: 'Stream not found' },
  'invalid-stream-name': { status: 400, retryable: false, title: 'Invalid stream name' },
  'invalid-event': { status: 400, retryable: false, title: 'Invalid event' },
  'event-too-large': { status: 413, retryable: false, title: 'Event too large' },
  'invalid-expected-revision': { status: 400, retryable: false, title: 'Invalid expected revision' },
  'invalid-read-options': { status: 400, retryable: false, title: 'Invalid read options' },
  'event-id-conflict': { status: 409, retryable: false, title: 'Event id already used' },
  'store-unavailable': { status: 503, retryable: true, title: 'Event store unavailable' },
  'store-full': { status: 507, retryable: true, title: 'Event store out of space' },
  'store-closed': { status: 503, retryable: false, title: 'Event store closed' },
  'corrupt-event': { status: 500, retryable: false, title: 'Stored event cannot be read' },
} as const;

export type EventStoreErrorCode = keyof typeof EVENT_STORE_ERRORS;

export class EventStoreError extends Error {
  readonly code: EventStoreErrorCode;
  readonly status: number;
  readonly retryable: boolean;

  constructor(code: EventStoreErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.status = EVENT_STORE_ERRORS[code].status;
    this.retryable = EVENT_STORE_ERRORS[code].retryable;
  }
}

export class WrongExpectedRevisionError extends EventStoreError {
  readonly stream: string;
  readonly expected: ExpectedRevision;
  /** The stream's current revision, or 'no_stream'. */
  readonly actual: number | 'no_stream';

  constructor(stream: string, expected: ExpectedRevision, actual: number | 'no_stream') {
    super(
      'wrong-expected-revision',
      `Stream '${stream}': expected revision ${String(expected)}, actual ${String(actual)}`,
    );
    this.stream = stream;
    this.expected = expected;
    this.actual = actual;
  }
}

export class StreamNotFoundError extends EventStoreError {
  readonly stream: string;

  constructor(stream: string) {
    super('stream-not-found', `Stream '${stream}' not found`);
    this.stream = stream;
  }
}

export class InvalidStreamNameError extends EventStoreError {
  constructor(reason: string) {
    super('invalid-stream-name', `Invalid stream name: ${reason}`);
  }
}

export class InvalidEventError extends EventStoreError {
  /** Index of the offending event within the append. */
  readonly index: number;

  constructor(index: number, reason: string) {
    super('invalid-event', `Event ${index}: ${reason}`);
    this.index = index;
  }
}

export class EventTooLargeError extends EventStoreError {
  readonly index: number;
  readonly bytes: number;
  readonly limit: number;

  constructor(index: number, bytes: number, limit: number) {
    super('event-too-large', `Event ${index} is ${bytes} bytes; the limit is ${limit}`);
    this.index = index;
    this.bytes = bytes;
    this.limit = limit;
  }
}

export class InvalidExpectedRevisionError extends EventStoreError {
  constructor(value: unknown) {
    super(
      'invalid-expected-revision',
      `Expected revision must be 'any', 'no_stream', 'stream_exists' or a non-negative integer; got ${safeDescribe(value)}`,
    );
  }
}

export class InvalidReadOptionsError extends EventStoreError {
  constructor(reason: string) {
    super('invalid-read-options', reason);
  }
}

export class EventIdConflictError extends EventStoreError {
  readonly eventId: string;

  constructor(eventId: string, where: string) {
    super('event-id-conflict', `Event id ${eventId} is already recorded ${where}`);
    this.eventId = eventId;
  }
}

export class StoreUnavailableError extends EventStoreError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('store-unavailable', message, options);
  }
}

export class StoreFullError extends EventStoreError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('store-full', message, options);
  }
}

export class StoreClosedError extends EventStoreError {
  constructor() {
    super('store-closed', 'The event store is closed');
  }
}

/**
 * A stored event the store cannot read back: its row was edited outside the store, or damaged.
 * Names the event, so that an audit can say which one; the read it ended delivered the events
 * before it.
 */
export class CorruptEventError extends EventStoreError {
  /** Null when even the row's stream could not be made out. */
  readonly stream: string | null;
  readonly revision: number | null;
  readonly position: string;
  readonly eventId: string | null;

  constructor(
    event: { stream: string | null; revision: number | null; position: string; eventId: string | null },
    options?: { cause?: unknown },
  ) {
    // The parser's message is left to `cause`: it can quote the stored text.
    super(
      'corrupt-event',
      `The stored event at revision ${event.revision ?? '?'} of stream ${event.stream === null ? '?' : `'${event.stream}'`} (position ${event.position}) cannot be read`,
      options,
    );
    this.stream = event.stream;
    this.revision = event.revision;
    this.position = event.position;
    this.eventId = event.eventId;
  }
}

export const isEventStoreError = (error: unknown): error is EventStoreError =>
  error instanceof EventStoreError;

function safeDescribe(value: unknown): string {
  if (typeof value === 'string') return `'${value.slice(0, 40)}'`;
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean')
    return String(value);
  if (value === null) return 'null';
  return typeof value;
}
