import { randomUUID } from 'node:crypto';
import {
  type AllStreamResolvedEvent,
  BACKWARDS,
  type Direction,
  END,
  type EventStoreDBClient,
  FORWARDS,
  jsonEvent,
  NO_STREAM,
  type ReadPosition,
  type ReadRevision,
  type ResolvedEvent,
  START,
  type StreamingRead,
} from '@eventstore/db-client';
import {
  type AppendOptions,
  type AppendResult,
  assertIdempotentReplay,
  checkExpectedRevision,
  DEFAULT_LIMITS,
  type EventData,
  EventIdConflictError,
  type EventStore,
  type EventStoreLimits,
  EventTooLargeError,
  type ExpectedRevision,
  type Position,
  type PreparedAppend,
  prepareAppend,
  type ReadAllOptions,
  type ReadStreamOptions,
  type RecordedEvent,
  StoreClosedError,
  StoreUnavailableError,
  StreamNotFoundError,
  type SubscribeToAllOptions,
  type Subscription,
  sealEvents,
  validateBatchSize,
  validateReadAllOptions,
  validateReadStreamOptions,
  validateStreamName,
  WrongExpectedRevisionError,
} from '@muster/event-store';
import { createEsdbClient } from './connection-string.js';
import { approximateAppendBytes, toEsdbEventData, toRecordedEvent } from './envelope.js';
import {
  ForeignEventError,
  isPermanent,
  isStreamNotFound,
  isWrongExpectedVersion,
  mapEsdbError,
} from './errors.js';
import { expectationFor, toRevisionNumber } from './expected-revision.js';
import { acceptsEvent } from './filters.js';
import { backoffDelay, KeyedMutex, mapLimit } from './keyed-mutex.js';
import { decodePosition, encodePosition } from './positions.js';
import { type ResubscribeOptions, SupervisedSubscription } from './subscription.js';

export interface EsdbEventStoreOptions {
  /** `esdb://host:2113?tls=false`, `esdb+discover://...`, or the same with `kurrentdb`. */
  connectionString: string;
  limits?: Partial<EventStoreLimits>;
  /** Source of `recordedAt` (sealed into the hash chain before the append, so not the server's). */
  clock?: () => Date;
  /** Events per read request; every read of `$all` or of a stream is paged. Default 500. */
  pageSize?: number;
  /**
   * The server's MaxAppendSize (EventStoreDB default 1 MiB): an append whose events add up to
   * more is rejected before anything is sent.
   */
  maxAppendBytes?: number;
  /** Tries when another process moves the stream between the head read and the append. Default 10. */
  maxAppendAttempts?: number;
  /** How long `ping()` waits. Default 5 s. */
  pingTimeoutMs?: number;
  /**
   * Prefix of the streams that claim event ids (one per id). `$`-prefixed, so they are system
   * streams: out of every user read, but a secured cluster must let the user write them.
   */
  eventIdStreamPrefix?: string;
  /** Backoff of a dropped subscription. */
  resubscribe?: ResubscribeOptions;
  /** Server checkpoints on filtered subscriptions every N × 32 scanned events. Default 10. */
  checkpointIntervalMultiplier?: number;
}

export interface EsdbEventStore extends EventStore {
  readonly kind: 'esdb';
}

export const DEFAULT_EVENT_ID_STREAM_PREFIX = '$muster-eventid-';
const CLAIM_EVENT_TYPE = '$muster.event-id-claimed';
const CLAIM_CONCURRENCY = 16;

export async function openEsdbEventStore(options: EsdbEventStoreOptions): Promise<EsdbEventStore> {
  return new EsdbStore(createEsdbClient(options.connectionString), options);
}

interface Head {
  revision: number;
  hash: string;
}

interface Claim {
  stream: string;
  revision: number;
  /** Revision of the claim event in its own stream, for a compare-and-set re-claim. */
  claimRevision: number;
}

type ClaimOutcome =
  | { status: 'claimed' }
  | { status: 'other-stream'; stream: string }
  | { status: 'recorded'; revision: number }
  | { status: 'retry' };

type AttemptResult = { kind: 'done'; result: AppendResult } | { kind: 'retry'; error: unknown };

class EsdbStore implements EsdbEventStore {
  readonly kind = 'esdb' as const;
  private readonly limits: EventStoreLimits;
  private readonly clock: () => Date;
  private readonly pageSize: number;
  private readonly maxAppendBytes: number;
  private readonly maxAppendAttempts: number;
  private readonly pingTimeoutMs: number;
  private readonly idPrefix: string;
  private readonly locks = new KeyedMutex();
  private readonly inFlight = new Set<Promise<unknown>>();
  private readonly subscriptions = new Set<SupervisedSubscription>();
  private closed = false;

  constructor(
    private readonly client: EventStoreDBClient,
    private readonly options: EsdbEventStoreOptions,
  ) {
    this.limits = { ...DEFAULT_LIMITS, ...options.limits };
    this.clock = options.clock ?? (() => new Date());
    this.pageSize = Math.max(2, options.pageSize ?? 500);
    this.maxAppendBytes = options.maxAppendBytes ?? 1024 * 1024;
    this.maxAppendAttempts = Math.max(1, options.maxAppendAttempts ?? 10);
    this.pingTimeoutMs = options.pingTimeoutMs ?? 5000;
    this.idPrefix = options.eventIdStreamPrefix ?? DEFAULT_EVENT_ID_STREAM_PREFIX;
  }

  // ---------------------------------------------------------------- append

  appendToStream(
    stream: string,
    events: readonly EventData[],
    options?: AppendOptions,
  ): Promise<AppendResult> {
    if (this.closed) return Promise.reject(new StoreClosedError());
    let prepared: PreparedAppend;
    try {
      prepared = prepareAppend(stream, events, options?.expectedRevision, this.limits, randomUUID);
      this.checkAppendSize(prepared);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.track(this.locks.run(prepared.stream, () => this.append(prepared)));
  }

  private checkAppendSize(prepared: PreparedAppend): void {
    let total = 0;
    approximateAppendBytes(prepared.events).forEach((bytes, index) => {
      total += bytes;
      if (total > this.maxAppendBytes) throw new EventTooLargeError(index, total, this.maxAppendBytes);
    });
  }

  /**
   * The chain needs the previous hash, so an append reads the stream's head, seals the batch above
   * it and appends with exactly that revision. Another writer in between makes the append fail
   * and start over; the caller's own expectation is checked against what was read.
   */
  private async append(prepared: PreparedAppend): Promise<AppendResult> {
    for (let attempt = 1; ; attempt++) {
      const outcome = await this.attemptAppend(prepared);
      if (outcome.kind === 'done') return outcome.result;
      if (attempt >= this.maxAppendAttempts) {
        throw mapEsdbError(outcome.error, {
          operation: 'append',
          stream: prepared.stream,
          expected: prepared.expectedRevision,
        });
      }
      await delay(backoffDelay(attempt, 10, 500));
    }
  }

  private async attemptAppend(prepared: PreparedAppend): Promise<AttemptResult> {
    const { stream, expectedRevision, events } = prepared;
    const ids = events.map((e) => e.id);
    const head = await this.readHead(stream);
    const current = head?.revision ?? null;

    try {
      checkExpectedRevision(stream, expectedRevision, current);
    } catch (mismatch) {
      // A retried append lands here: its events are already in, after the revision it expected.
      const replay = await this.findReplay(stream, expectedRevision, ids, current);
      if (replay) return { kind: 'done', result: replay };
      throw mismatch;
    }

    const startRevision = current === null ? 0 : current + 1;
    const claims = await mapLimit(ids, CLAIM_CONCURRENCY, (id, i) =>
      this.claim(id, stream, startRevision + i),
    );
    const first = claims[0] as ClaimOutcome;
    if (first.status === 'other-stream') {
      throw new EventIdConflictError(ids[0] as string, `in stream '${first.stream}'`);
    }
    if (first.status === 'recorded') {
      return {
        kind: 'done',
        result: await this.replayAt(stream, expectedRevision, ids, first.revision, current),
      };
    }
    claims.forEach((claim, i) => {
      if (claim.status === 'other-stream') {
        throw new EventIdConflictError(ids[i] as string, `in stream '${claim.stream}'`);
      }
      if (claim.status === 'recorded') {
        throw new EventIdConflictError(
          ids[i] as string,
          `in stream '${stream}' at revision ${claim.revision}`,
        );
      }
    });
    if (claims.some((c) => c.status === 'retry')) {
      return {
        kind: 'retry',
        error: new WrongExpectedRevisionError(stream, expectedRevision, current ?? 'no_stream'),
      };
    }

    const sealed = sealEvents({
      stream,
      startRevision,
      previousHash: head?.hash ?? null,
      recordedAt: this.clock().toISOString(),
      events,
    });
    try {
      await this.client.appendToStream(stream, sealed.map(toEsdbEventData), {
        expectedRevision: expectationFor(current),
      });
    } catch (error) {
      if (isWrongExpectedVersion(error)) return { kind: 'retry', error };
      throw mapEsdbError(error, { operation: 'append', stream, expected: expectedRevision });
    }
    // Positions are only known once written; the read also returns exactly what a reader will see.
    const recorded = await this.readRange(stream, startRevision, sealed.length);
    if (recorded.length !== sealed.length || recorded.some((e, i) => e.id !== sealed[i]?.id)) {
      throw new Error(`Stream '${stream}': the events read back after an append are not the ones appended`);
    }
    // EventStoreDB answers success without writing when the same ids were just appended at the
    // same revision by someone else: their hashes (and recordedAt) are then not ours.
    const idempotent = recorded[0]?.hash !== sealed[0]?.hash;
    return { kind: 'done', result: resultOf(recorded, idempotent) };
  }

  private async findReplay(
    stream: string,
    expected: ExpectedRevision,
    ids: string[],
    current: number | null,
  ): Promise<AppendResult | null> {
    const claim = await this.readClaim(ids[0] as string);
    if (!claim) return null;
    if (claim.stream !== stream) {
      throw new EventIdConflictError(ids[0] as string, `in stream '${claim.stream}'`);
    }
    if ((await this.eventIdAt(stream, claim.revision)) !== ids[0]) return null;
    return this.replayAt(stream, expected, ids, claim.revision, current);
  }

  private async replayAt(
    stream: string,
    expected: ExpectedRevision,
    ids: string[],
    revision: number,
    current: number | null,
  ): Promise<AppendResult> {
    const recorded = await this.readRange(stream, revision, ids.length);
    assertIdempotentReplay(
      stream,
      expected,
      ids,
      { stream, revision, ids: recorded.map((e) => e.id) },
      current,
    );
    return resultOf(recorded, true);
  }

  /**
   * EventStoreDB keeps event ids unique only within a write to one stream. A global claim per id
   * (a stream created with no_stream, so exactly one writer wins it) makes them unique across the
   * store. A claim names the stream and revision the id is meant for; an id claimed for another
   * stream is a conflict even if that append never landed (conservative: no duplicate, ever).
   */
  private async claim(id: string, stream: string, revision: number): Promise<ClaimOutcome> {
    const claimStream = this.claimStream(id);
    try {
      await this.client.appendToStream(claimStream, claimEvent(stream, revision), {
        expectedRevision: NO_STREAM,
      });
      return { status: 'claimed' };
    } catch (error) {
      if (!isWrongExpectedVersion(error)) throw mapEsdbError(error, { operation: 'claim event id' });
    }
    const existing = await this.readClaim(id);
    if (!existing) return { status: 'retry' };
    if (existing.stream !== stream) return { status: 'other-stream', stream: existing.stream };
    if ((await this.eventIdAt(stream, existing.revision)) === id) {
      return { status: 'recorded', revision: existing.revision };
    }
    // Ours, from an append that did not land: point it at the new revision.
    if (existing.revision === revision) return { status: 'claimed' };
    try {
      await this.client.appendToStream(claimStream, claimEvent(stream, revision), {
        expectedRevision: BigInt(existing.claimRevision),
      });
      return { status: 'claimed' };
    } catch (error) {
      if (isWrongExpectedVersion(error)) return { status: 'retry' };
      throw mapEsdbError(error, { operation: 'claim event id' });
    }
  }

  private claimStream(id: string): string {
    return `${this.idPrefix}${id}`;
  }

  private async readClaim(id: string): Promise<Claim | null> {
    const page = await this.readStreamPage(this.claimStream(id), END, BACKWARDS, 1);
    const event = page?.[0]?.event;
    if (!event) return null;
    const data = event.data as { stream?: unknown; revision?: unknown } | undefined;
    if (typeof data?.stream !== 'string' || typeof data.revision !== 'number') {
      throw new Error(`Malformed event id claim in '${this.claimStream(id)}'`);
    }
    return { stream: data.stream, revision: data.revision, claimRevision: toRevisionNumber(event.revision) };
  }

  private async eventIdAt(stream: string, revision: number): Promise<string | null> {
    const page = await this.readStreamPage(stream, BigInt(revision), FORWARDS, 1);
    const event = page?.[0]?.event;
    return event && toRevisionNumber(event.revision) === revision ? event.id.toLowerCase() : null;
  }

  private async readHead(stream: string): Promise<Head | null> {
    const page = await this.readStreamPage(stream, END, BACKWARDS, 1);
    const event = page?.[0]?.event;
    if (!event) return null;
    const recorded = toRecordedEvent(event);
    if (!recorded) throw new ForeignEventError(stream, toRevisionNumber(event.revision));
    return { revision: recorded.revision, hash: recorded.hash };
  }

  private async readRange(stream: string, from: number, count: number): Promise<RecordedEvent[]> {
    const out: RecordedEvent[] = [];
    let cursor = from;
    while (out.length < count) {
      const want = Math.min(this.pageSize, count - out.length);
      const page = (await this.readStreamPage(stream, BigInt(cursor), FORWARDS, want)) ?? [];
      for (const item of page) out.push(this.recordedOf(stream, item));
      if (page.length < want) break;
      cursor += page.length;
    }
    return out;
  }

  // ---------------------------------------------------------------- reads

  async *readStream(stream: string, options?: ReadStreamOptions): AsyncGenerator<RecordedEvent> {
    this.assertOpen();
    const { direction, fromRevision, maxCount } = validateReadStreamOptions(options);
    if (!isValidStreamName(stream)) throw new StreamNotFoundError(String(stream));
    const forwards = direction === 'forwards';
    let cursor: bigint;
    if (forwards) {
      if (fromRevision === 'end' || maxCount === 0) {
        if (!(await this.streamExists(stream))) throw new StreamNotFoundError(stream);
        return;
      }
      cursor = fromRevision === 'start' ? 0n : BigInt(fromRevision);
    } else {
      // A backwards read from past the end would come back short; start at the head instead.
      const head = await this.streamRevision(stream);
      if (head === null) throw new StreamNotFoundError(stream);
      if (maxCount === 0) return;
      cursor = BigInt(
        fromRevision === 'end' ? head : fromRevision === 'start' ? 0 : Math.min(fromRevision, head),
      );
    }
    let remaining = maxCount;
    let first = true;
    while (remaining > 0) {
      this.assertOpen();
      const want = Math.min(this.pageSize, remaining);
      const page = await this.readStreamPage(stream, cursor, forwards ? FORWARDS : BACKWARDS, want);
      if (page === null) {
        if (first) throw new StreamNotFoundError(stream);
        return;
      }
      first = false;
      for (const item of page) yield this.recordedOf(stream, item);
      remaining -= page.length;
      if (page.length < want) return;
      const last = (page[page.length - 1] as ResolvedEvent).event;
      if (!last) return;
      cursor = forwards ? last.revision + 1n : last.revision - 1n;
      if (cursor < 0n) return;
    }
  }

  async *readAll(options?: ReadAllOptions): AsyncGenerator<RecordedEvent> {
    this.assertOpen();
    const { direction, fromPosition, maxCount, filter } = validateReadAllOptions(options);
    const forwards = direction === 'forwards';
    if (forwards && fromPosition === 'end') return;
    if (!forwards && fromPosition === 'start') return;
    const explicit = fromPosition !== 'start' && fromPosition !== 'end';
    let cursor: ReadPosition = explicit ? decodePosition(fromPosition) : forwards ? START : END;
    let remaining = maxCount;
    if (remaining === 0) return;

    // Every read below is paged, and system events are dropped here: the 6.x client has no
    // server-side filter on reads, only on subscriptions.
    const keep = (item: AllStreamResolvedEvent): RecordedEvent | null => {
      const event = item.event;
      if (!event || !acceptsEvent(filter, event.streamId, event.type)) return null;
      return toRecordedEvent(event);
    };

    // Reading $all backwards from a position starts before it; the port's start is inclusive.
    if (!forwards && explicit) {
      const [atStart] = await this.readAllPage(cursor, FORWARDS, 1);
      if (atStart?.event && encodePosition(atStart.event.position) === fromPosition) {
        const recorded = keep(atStart);
        if (recorded) {
          yield recorded;
          if (--remaining === 0) return;
        }
      }
    }

    // Forwards: only positions after the last one seen (the first page: from the start, inclusive).
    // Backwards: only positions before it. Each page starts where the previous one ended.
    // Without a filter a short read needs a short page (headPosition reads one event).
    const pageSize = filter ? this.pageSize : Math.min(this.pageSize, Math.max(32, remaining + 1));
    let boundary: Position | null = explicit ? fromPosition : null;
    let firstPage = true;
    while (remaining > 0) {
      this.assertOpen();
      const page = await this.readAllPage(cursor, forwards ? FORWARDS : BACKWARDS, pageSize);
      for (const item of page) {
        if (!item.event) continue;
        const position = encodePosition(item.event.position);
        if (boundary !== null) {
          const skip = forwards
            ? firstPage
              ? position < boundary
              : position <= boundary
            : position >= boundary;
          if (skip) continue;
        }
        boundary = position;
        const recorded = keep(item);
        if (!recorded) continue;
        yield recorded;
        if (--remaining === 0) return;
      }
      firstPage = false;
      if (page.length < pageSize) return;
      const last = (page[page.length - 1] as AllStreamResolvedEvent).event;
      if (!last) return;
      cursor = last.position;
      boundary = encodePosition(last.position);
    }
  }

  subscribeToAll(options?: SubscribeToAllOptions): Subscription {
    this.assertOpen();
    const subscription = new SupervisedSubscription(
      {
        open: (fromPosition, filter) =>
          this.client.subscribeToAll({ fromPosition, filter, resolveLinkTos: false }),
        rawHead: async () => {
          const [last] = await this.readAllPage(END, BACKWARDS, 1);
          return last?.event?.position ?? null;
        },
      },
      {
        fromPosition: options?.fromPosition ?? 'start',
        filter: options?.filter,
        highWaterMark: validateBatchSize(options?.batchSize, this.pageSize),
        checkpointIntervalMultiplier: this.options.checkpointIntervalMultiplier ?? 10,
        ...(this.options.resubscribe ? { resubscribe: this.options.resubscribe } : {}),
        mapError: (error) => mapEsdbError(error, { operation: 'subscribe to $all' }),
        isPermanent,
      },
    );
    this.subscriptions.add(subscription);
    void subscription.done.finally(() => this.subscriptions.delete(subscription));
    return subscription;
  }

  async streamRevision(stream: string): Promise<number | null> {
    this.assertOpen();
    if (!isValidStreamName(stream)) return null;
    const page = await this.readStreamPage(stream, END, BACKWARDS, 1);
    const event = page?.[0]?.event;
    return event ? toRevisionNumber(event.revision) : null;
  }

  async headPosition(): Promise<Position | null> {
    this.assertOpen();
    for await (const event of this.readAll({ direction: 'backwards', maxCount: 1 })) return event.position;
    return null;
  }

  canonicalPosition(position: string): Position {
    return encodePosition(decodePosition(position));
  }

  async ping(): Promise<void> {
    this.assertOpen();
    const read = this.client.readAll({ direction: BACKWARDS, fromPosition: END, maxCount: 1 });
    try {
      await collect(read, this.pingTimeoutMs);
    } catch (error) {
      const mapped = mapEsdbError(error, { operation: 'ping' });
      if (mapped instanceof StoreUnavailableError) throw mapped;
      throw new StoreUnavailableError(
        `EventStoreDB did not answer (ping): ${error instanceof Error ? error.message : String(error)}`,
        { cause: error },
      );
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([...this.inFlight]);
    await Promise.allSettled([...this.subscriptions].map((s) => s.close()));
    await this.client.dispose();
  }

  // ---------------------------------------------------------------- helpers

  private async streamExists(stream: string): Promise<boolean> {
    return (await this.readStreamPage(stream, START, FORWARDS, 1)) !== null;
  }

  /** One bounded read of a stream; null when the stream does not exist. */
  private async readStreamPage(
    stream: string,
    fromRevision: ReadRevision,
    direction: Direction,
    maxCount: number,
  ): Promise<ResolvedEvent[] | null> {
    try {
      return await collect(this.client.readStream(stream, { fromRevision, direction, maxCount }));
    } catch (error) {
      if (isStreamNotFound(error)) return null;
      throw mapEsdbError(error, { operation: 'read stream', stream });
    }
  }

  private async readAllPage(
    fromPosition: ReadPosition,
    direction: Direction,
    maxCount: number,
  ): Promise<AllStreamResolvedEvent[]> {
    try {
      return await collect(this.client.readAll({ fromPosition, direction, maxCount }));
    } catch (error) {
      throw mapEsdbError(error, { operation: 'read $all' });
    }
  }

  private recordedOf(stream: string, item: ResolvedEvent): RecordedEvent {
    const event = item.event;
    if (!event) throw new Error(`Stream '${stream}': the server returned a link without its event`);
    const recorded = toRecordedEvent(event);
    if (!recorded) throw new ForeignEventError(stream, toRevisionNumber(event.revision));
    return recorded;
  }

  private track<T>(promise: Promise<T>): Promise<T> {
    this.inFlight.add(promise);
    const untrack = () => this.inFlight.delete(promise);
    promise.then(untrack, untrack);
    return promise;
  }

  private assertOpen(): void {
    if (this.closed) throw new StoreClosedError();
  }
}

function claimEvent(stream: string, revision: number) {
  return jsonEvent({ type: CLAIM_EVENT_TYPE, data: { stream, revision } });
}

function resultOf(events: RecordedEvent[], idempotent: boolean): AppendResult {
  const last = events[events.length - 1] as RecordedEvent;
  return { nextExpectedRevision: last.revision, position: last.position, events, idempotent };
}

function isValidStreamName(stream: unknown): stream is string {
  try {
    validateStreamName(stream);
    return true;
  } catch {
    return false;
  }
}

/** Drains a bounded read; with a timeout, cancels it and rejects with StoreUnavailableError. */
async function collect<T>(read: StreamingRead<T>, timeoutMs?: number): Promise<T[]> {
  const drain = (async () => {
    const out: T[] = [];
    for await (const item of read) out.push(item);
    return out;
  })();
  if (timeoutMs === undefined) return drain;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      void read.cancel().catch(() => undefined);
      reject(new StoreUnavailableError(`EventStoreDB did not answer within ${timeoutMs} ms`));
    }, timeoutMs);
  });
  drain.catch(() => undefined);
  try {
    return await Promise.race([drain, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
