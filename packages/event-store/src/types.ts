/**
 * The event store port. Shaped after EventStoreDB so that its adapter stays thin and the SQL
 * adapters mirror its semantics: 0-based stream revisions, opaque totally ordered positions,
 * catch-up subscriptions that resume strictly after a checkpoint.
 */

/** Opaque, totally ordered by plain string comparison: adapters emit fixed-width strings. */
export type Position = string;

export type ExpectedRevision = 'any' | 'no_stream' | 'stream_exists' | number;

export type JsonPrimitive = string | number | boolean | null;
export type JsonValue = JsonPrimitive | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

export interface Actor {
  agency: string;
  keyId: string;
}

/** Well-known metadata keys; any other JSON value may ride along. */
export interface EventMetadata {
  actor?: Actor;
  commandId?: string;
  correlationId?: string;
  causationId?: string;
  /** When it happened in the world (ISO 8601). Defaults to `recordedAt` when absent. */
  occurredAt?: string;
  [key: string]: JsonValue | Actor | undefined;
}

export interface EventData<TData = unknown> {
  /** A UUID. Deterministic ids (derived from a command id) make retried appends idempotent. */
  id?: string;
  type: string;
  data: TData;
  metadata?: EventMetadata;
}

export interface RecordedEvent<TData = unknown> {
  id: string;
  stream: string;
  /** 0-based, contiguous within the stream. */
  revision: number;
  position: Position;
  type: string;
  data: TData;
  /** Always carries `occurredAt`. */
  metadata: EventMetadata & { occurredAt: string };
  /** When the store accepted it (ISO 8601, millisecond precision, UTC). */
  recordedAt: string;
  /** SHA-256 (hex) over the canonical content and `previousHash`. */
  hash: string;
  /** The hash of revision - 1 in the same stream; null for revision 0. */
  previousHash: string | null;
}

export interface AppendOptions {
  expectedRevision?: ExpectedRevision;
}

export interface AppendResult {
  /** The revision of the last event now in the stream. */
  nextExpectedRevision: number;
  /** Position of the last appended event. */
  position: Position;
  events: RecordedEvent[];
  /** True when every event id was already in the stream: nothing was written. */
  idempotent: boolean;
}

export type Direction = 'forwards' | 'backwards';

export interface ReadStreamOptions {
  fromRevision?: number | 'start' | 'end';
  direction?: Direction;
  maxCount?: number;
}

export interface EventFilter {
  /** Keep events whose stream name starts with one of these. Conditions of different kinds combine with AND. */
  streamPrefixes?: readonly string[];
  /** Keep events whose type is exactly one of these. */
  eventTypes?: readonly string[];
  /** Keep events whose type starts with one of these. */
  eventTypePrefixes?: readonly string[];
}

export interface ReadAllOptions {
  /** Inclusive, as in EventStoreDB. */
  fromPosition?: Position | 'start' | 'end';
  direction?: Direction;
  maxCount?: number;
  filter?: EventFilter;
}

export interface SubscribeToAllOptions {
  /**
   * Exclusive: the subscription resumes strictly after this position. `'end'` is the head when the
   * adapter reads it, a moment after the call: appends this store instance issues after the call
   * are delivered, but appends by other processes (or, on EventStoreDB, any append) racing the call
   * may fall on either side of it. Every event appended after `caught-up` arrives; a consumer that
   * must see a particular write starts from a position before it.
   */
  fromPosition?: Position | 'start' | 'end';
  filter?: EventFilter;
  /** Events fetched per page while catching up. */
  batchSize?: number;
}

export type SubscriptionMessage =
  | { kind: 'event'; event: RecordedEvent }
  /** Everything up to `position` has been scanned: safe to store as a checkpoint (sparse filters). */
  | { kind: 'checkpoint'; position: Position }
  /** The subscription reached the end of the log and is now live. */
  | { kind: 'caught-up'; position: Position | null };

export interface Subscription extends AsyncIterable<SubscriptionMessage> {
  /** Ends the iteration; pending reads resolve with `done`. */
  close(): Promise<void>;
  /**
   * Up to `max` messages the subscription already holds, at once and in order, as the iterator
   * would have given them (empty when it holds none). Optional: a consumer that takes batches
   * (a projection) saves a promise per message with it. Not to be called while a `next()` of the
   * iterator is pending.
   */
  takeBuffered?(max: number): SubscriptionMessage[];
}

/** What a decision under a stream's lock is given (see `EventStore.appendUnderLock`). */
export interface StreamTail {
  /** The revision of the stream's last event while the lock is held, or null when it has none. */
  revision: number | null;
  /** Every event past the caller's `knownRevision`, in revision order (empty when there are none). */
  events: readonly RecordedEvent[];
}

export interface AppendUnderLockOptions {
  /**
   * The revision up to which the caller already holds the stream (its cached state), or null for
   * none: `decide` is given only the events after it.
   */
  knownRevision: number | null;
}

/**
 * Decides what to append on the stream as it stands, while no one else can append to it. Called
 * with the lock held, so it must be synchronous, pure and short; it may be called again (after a
 * lost connection, when the first attempt did not land). It refuses by throwing: the store then
 * appends nothing and rejects with what it threw. No events: nothing to append.
 */
export type LockedDecision = (tail: StreamTail) => readonly EventData[];

export interface EventStore {
  readonly kind: string;
  /**
   * Appends to one stream made through the same store instance are applied in the order they
   * were called, even when the caller does not wait for one before issuing the next: a writer
   * may send the append expecting revision r + 1 while the one expecting r is still in flight.
   */
  appendToStream(
    stream: string,
    events: readonly EventData[],
    options?: AppendOptions,
  ): Promise<AppendResult>;
  /**
   * Optional: decide and append under the stream's lock, for a writer whose optimistic appends
   * keep losing the race to another writer. In one transaction the store takes the lock every
   * append to the stream takes, reads the events past `knownRevision`, calls `decide` with them,
   * and appends what it returns with the exact expected revision of the tail (so it never
   * conflicts; ids already in the log follow the usual rules). Resolves with the append's result,
   * or null when `decide` returned no events. Ordered with this instance's appends to the stream:
   * it runs after those issued before it, and those issued after it wait for it. Offered by stores
   * that can hold a lock across a decision (PostgreSQL, SQLite); not by EventStoreDB.
   */
  appendUnderLock?(
    stream: string,
    options: AppendUnderLockOptions,
    decide: LockedDecision,
  ): Promise<AppendResult | null>;
  /** Throws StreamNotFoundError (on iteration) when the stream has no events. */
  readStream(stream: string, options?: ReadStreamOptions): AsyncIterable<RecordedEvent>;
  readAll(options?: ReadAllOptions): AsyncIterable<RecordedEvent>;
  subscribeToAll(options?: SubscribeToAllOptions): Subscription;
  /** The revision of the stream's last event, or null when it has none. */
  streamRevision(stream: string): Promise<number | null>;
  /** The position of the last event in the log, or null when empty. */
  headPosition(): Promise<Position | null>;
  /**
   * The position as this store emits it, for a position given from outside (a query string):
   * positions are compared as strings, and only the emitted form sorts in log order. Throws
   * InvalidReadOptionsError for a text that is no position of this store.
   */
  canonicalPosition(position: string): Position;
  /** Resolves when the store answers; rejects with StoreUnavailableError otherwise. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

export interface EventStoreLimits {
  /** Largest serialised event (data + metadata, UTF-8 bytes). Default 1 MiB. */
  maxEventBytes: number;
  /** Most events in one append. */
  maxEventsPerAppend: number;
}

export const DEFAULT_LIMITS: EventStoreLimits = Object.freeze({
  maxEventBytes: 1024 * 1024,
  maxEventsPerAppend: 1000,
});
