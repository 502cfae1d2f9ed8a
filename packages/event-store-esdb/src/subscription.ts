import {
  type AllStreamResolvedEvent,
  type AllStreamSubscription,
  type Position as EsdbPosition,
  type Filter,
  type ReadPosition,
  START,
} from '@eventstore/db-client';
import {
  AsyncQueue,
  type EventFilter,
  type Position,
  StoreUnavailableError,
  type Subscription,
  type SubscriptionMessage,
} from '@muster/event-store';
import { toRecordedEvent } from './envelope.js';
import { acceptsEvent, planServerFilter, type ServerFilterPlan, toEsdbFilter } from './filters.js';
import { backoffDelay } from './keyed-mutex.js';
import { decodePosition, encodePosition } from './positions.js';

/** What the supervisor needs from the client: a way to (re)subscribe, and the log's raw head. */
export interface SubscriptionSource {
  open(from: ReadPosition, filter: Filter): AllStreamSubscription;
  /** Position of the last record in `$all` (system records included), or null when empty. */
  rawHead(): Promise<EsdbPosition | null>;
}

export interface ResubscribeOptions {
  /** First delay after a drop; doubles per failed attempt, with jitter. Default 100 ms. */
  initialDelayMs?: number;
  /** Default 5 s. */
  maxDelayMs?: number;
  /** Consecutive failed attempts before the subscription fails. Default: unlimited. */
  maxAttempts?: number;
  /**
   * A subscription that stayed up this long, or delivered something, counts as healthy: the
   * next drop starts the backoff over. Default 10 s.
   */
  stableAfterMs?: number;
}

export interface SupervisorOptions {
  fromPosition: Position | 'start' | 'end';
  filter: EventFilter | undefined;
  /** Messages buffered ahead of the consumer before the supervisor stops reading. */
  highWaterMark: number;
  checkpointIntervalMultiplier: number;
  /** Events dropped on the client in a row before a checkpoint is reported anyway. */
  dropCheckpointEvery?: number;
  resubscribe?: ResubscribeOptions;
  mapError: (error: unknown) => unknown;
  isPermanent: (error: unknown) => boolean;
}

/**
 * A message the server sent between events (caught up, checkpoint). It is emitted once the
 * events that came before it, possibly still sitting in the client's readable buffer, have
 * been delivered: `after` counts them.
 */
type Marker = { after: number } & ({ kind: 'caught-up' } | { kind: 'checkpoint'; position: Position });

interface AttemptOutcome {
  /** It moved the subscription forward, or stayed up a while: the backoff starts over. */
  healthy: boolean;
  error: unknown;
}

/**
 * A catch-up subscription to `$all` that survives drops. EventStoreDB does not resubscribe for
 * you; this restarts from the last event it received (delivered or filtered out), skips anything
 * at or before it, and reports `caught-up` once.
 */
export class SupervisedSubscription implements Subscription {
  readonly done: Promise<void>;
  private readonly queue: AsyncQueue<SubscriptionMessage>;
  private readonly plan: ServerFilterPlan;
  private readonly dropCheckpointEvery: number;
  private wake: (() => void) | null = null;
  private stopped = false;
  /** Position of the last event the server sent (or the exclusive start): restart and dedupe point. */
  private lastSeen: Position | null = null;
  /** The furthest position reported to the consumer (event or checkpoint). */
  private reported: Position | null = null;
  private droppedSinceReport = 0;
  private caughtUpSent = false;

  constructor(
    private readonly source: SubscriptionSource,
    private readonly options: SupervisorOptions,
  ) {
    this.queue = new AsyncQueue<SubscriptionMessage>(Math.max(1, options.highWaterMark));
    this.plan = planServerFilter(options.filter);
    this.dropCheckpointEvery = Math.max(1, options.dropCheckpointEvery ?? 32);
    const from = options.fromPosition;
    if (from !== 'start' && from !== 'end') {
      decodePosition(from);
      this.lastSeen = from;
      this.reported = from;
    }
    this.done = this.run().then(
      () => this.queue.end(),
      (error) => this.queue.fail(options.mapError(error)),
    );
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<SubscriptionMessage> {
    const iterator: AsyncIterableIterator<SubscriptionMessage> = {
      next: () => this.queue.next(),
      return: async () => {
        await this.close();
        return { value: undefined, done: true };
      },
      [Symbol.asyncIterator]: () => iterator,
    };
    return iterator;
  }

  takeBuffered(max: number): SubscriptionMessage[] {
    return this.queue.takeBuffered(max);
  }

  async close(): Promise<void> {
    if (!this.stopped) {
      this.stopped = true;
      this.queue.cancel();
      this.wake?.();
    }
    await this.done;
  }

  private async run(): Promise<void> {
    const retry = this.options.resubscribe ?? {};
    const maxAttempts = retry.maxAttempts ?? Number.POSITIVE_INFINITY;
    // 'end' is resolved once, so that a resubscription after a drop does not jump over what
    // came in between; a server that is away at that moment is retried like a drop.
    let startResolved = this.options.fromPosition !== 'end';
    let failures = 0;
    while (!this.stopped) {
      let outcome: AttemptOutcome;
      if (!startResolved) {
        try {
          const head = await this.source.rawHead();
          if (head) {
            this.lastSeen = encodePosition(head);
            this.reported = this.lastSeen;
          }
          startResolved = true;
          continue;
        } catch (error) {
          outcome = { healthy: false, error };
        }
      } else {
        outcome = await this.attempt();
      }
      if (this.stopped) return;
      if (outcome.error !== undefined && this.options.isPermanent(outcome.error)) throw outcome.error;
      failures = outcome.healthy ? 1 : failures + 1;
      if (failures > maxAttempts) {
        throw outcome.error ?? new StoreUnavailableError('EventStoreDB kept ending the subscription');
      }
      await this.sleep(backoffDelay(failures, retry.initialDelayMs ?? 100, retry.maxDelayMs ?? 5000));
    }
  }

  /** One subscription, read until it ends, fails or the consumer closes. */
  private async attempt(): Promise<AttemptOutcome> {
    const from: ReadPosition = this.lastSeen === null ? START : decodePosition(this.lastSeen);
    const markers: Marker[] = [];
    const startedAt = Date.now();
    const reportedBefore = this.reported;
    let delivered = 0;
    let ended = false;
    let failure: unknown;
    const holder: { sub: AllStreamSubscription | null } = { sub: null };
    const buffered = () => holder.sub?.readableLength ?? 0;
    const addMarker = (marker: Marker) => {
      // Everything before it is already delivered: emit now, in order.
      if (markers.length === 0 && marker.after <= delivered) this.applyMarker(marker);
      else markers.push(marker);
    };
    const flushMarkers = () => {
      while (markers.length > 0 && (markers[0] as Marker).after <= delivered) {
        this.applyMarker(markers.shift() as Marker);
      }
    };
    const signal = () => this.wake?.();

    let sub: AllStreamSubscription;
    try {
      sub = this.source.open(
        from,
        toEsdbFilter(this.plan, {
          checkpointIntervalMultiplier: this.options.checkpointIntervalMultiplier,
          checkpointReached: (_s, position) =>
            addMarker({
              kind: 'checkpoint',
              position: encodePosition(position),
              after: delivered + buffered(),
            }),
        }),
      );
    } catch (error) {
      return { healthy: false, error };
    }
    holder.sub = sub;
    sub.on('error', (error) => {
      failure ??= error;
      signal();
    });
    sub.on('end', () => {
      ended = true;
      signal();
    });
    sub.on('close', () => {
      ended = true;
      signal();
    });
    sub.on('caughtUp', () => addMarker({ kind: 'caught-up', after: delivered + buffered() }));

    try {
      while (!this.stopped) {
        // read() may run the client's transform synchronously, which may add a marker; the item
        // being read is still counted in readableLength then, so the marker lands after it.
        const item = sub.read() as AllStreamResolvedEvent | null;
        if (item !== null) {
          delivered++;
          this.handle(item, sub.readableLength);
          flushMarkers();
          await this.queue.waitForDemand();
          continue;
        }
        flushMarkers();
        if (failure !== undefined || ended) break;
        await new Promise<void>((resolve) => {
          const done = () => {
            sub.off('readable', done);
            if (this.wake === done) this.wake = null;
            resolve();
          };
          this.wake = done;
          sub.once('readable', done);
        });
      }
    } finally {
      // Errors after this point (the cancellation itself) are of no interest.
      sub.on('error', () => {});
      await sub.unsubscribe().catch(() => undefined);
    }
    if (failure === undefined && !this.stopped) {
      failure = new StoreUnavailableError('EventStoreDB ended the subscription');
    }
    const stableAfterMs = this.options.resubscribe?.stableAfterMs ?? 10_000;
    const healthy = this.reported !== reportedBefore || Date.now() - startedAt >= stableAfterMs;
    return { healthy, error: failure };
  }

  private handle(item: AllStreamResolvedEvent, stillBuffered: number): void {
    const event = item.event;
    if (!event) return;
    const position = encodePosition(event.position);
    // A resubscription (or an inclusive start) may repeat what was already seen.
    if (this.lastSeen !== null && position <= this.lastSeen) return;
    this.lastSeen = position;
    if (acceptsEvent(this.options.filter, event.streamId, event.type)) {
      const recorded = toRecordedEvent(event);
      if (recorded) {
        this.queue.push({ kind: 'event', event: recorded });
        this.reported = position;
        this.droppedSinceReport = 0;
        return;
      }
    }
    // Dropped on this side: the consumer still learns how far the scan got, once the burst is
    // drained (nothing more buffered) or every so many dropped events.
    this.droppedSinceReport++;
    if (stillBuffered === 0 || this.droppedSinceReport >= this.dropCheckpointEvery) this.checkpoint(position);
  }

  private applyMarker(marker: Marker): void {
    if (marker.kind === 'checkpoint') {
      this.checkpoint(marker.position);
    } else if (!this.caughtUpSent) {
      this.caughtUpSent = true;
      this.queue.push({ kind: 'caught-up', position: this.reported });
    }
  }

  private checkpoint(position: Position): void {
    this.droppedSinceReport = 0;
    if (this.reported !== null && position <= this.reported) return;
    this.reported = position;
    this.queue.push({ kind: 'checkpoint', position });
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        if (this.wake === done) this.wake = null;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wake = done;
    });
  }
}
