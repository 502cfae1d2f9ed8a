import {
  AccessDeniedError,
  type Position as EsdbPosition,
  EVENT_TYPE,
  type Filter,
  type ReadPosition,
  START,
  STREAM_NAME,
} from '@eventstore/db-client';
import {
  type EventFilter,
  type RecordedEvent,
  StoreUnavailableError,
  type SubscriptionMessage,
} from '@muster/event-store';
import { afterEach, describe, expect, it } from 'vitest';
import { isPermanent, mapEsdbError } from './errors.js';
import { encodePosition } from './positions.js';
import { type SubscriptionSource, SupervisedSubscription, type SupervisorOptions } from './subscription.js';
import {
  caughtUpMessage,
  checkpointMessage,
  clientSubscription,
  confirmationMessage,
  FakeCall,
  foreignRecord,
  readEventMessage,
  type StoredRecord,
  sealBatch,
  storedOf,
} from './testing/wire.js';

/**
 * A scripted `$all`: records with positions, served to subscriptions the way EventStoreDB does
 * (confirmation, history after the start position, checkpoints every N scanned records on a
 * filtered subscription, caught-up, then live records). Each call can be broken on demand.
 */
class ScriptedLog {
  readonly records: StoredRecord[] = [];
  readonly calls: Array<{ call: FakeCall; from: ReadPosition }> = [];
  /** Serve the start position itself too (a server that is inclusive): the supervisor must dedupe. */
  inclusiveStart = false;
  checkpointEvery = 5;
  private nextCommit = 1000n;
  private readonly heads = new Map<string, { revision: number; hash: string }>();
  private readonly live = new Set<{ call: FakeCall; filter: Filter }>();

  append(stream: string, types: string[], data: (i: number) => unknown = (i) => ({ i })): StoredRecord[] {
    const head = this.heads.get(stream);
    const sealed = sealBatch(
      stream,
      types.map((type, i) => ({ type, data: data(i) })),
      { startRevision: head ? head.revision + 1 : 0, previousHash: head?.hash ?? null },
    );
    const last = sealed[sealed.length - 1];
    if (last) this.heads.set(stream, { revision: last.revision, hash: last.hash });
    return sealed.map((s) => this.store(storedOf(s, this.position())));
  }

  appendForeign(stream: string, type: string): StoredRecord {
    return this.store(foreignRecord(stream, 0, type, this.position()));
  }

  /** Any record, at the next position. */
  appendRaw(record: StoredRecord): StoredRecord {
    const commit = this.position();
    return this.store({ ...record, commit, prepare: commit });
  }

  source(): SubscriptionSource {
    return {
      open: (from, filter) => {
        const call = new FakeCall();
        this.calls.push({ call, from });
        setImmediate(() => this.serve(call, from, filter));
        return clientSubscription(call, filter);
      },
      rawHead: async () => {
        const last = this.records[this.records.length - 1];
        return last ? { commit: last.commit, prepare: last.prepare } : null;
      },
    };
  }

  private position(): bigint {
    this.nextCommit += 137n;
    return this.nextCommit;
  }

  private store(record: StoredRecord): StoredRecord {
    this.records.push(record);
    for (const sub of this.live) {
      if (!sub.call.destroyed && passesServerFilter(sub.filter, record))
        sub.call.write(readEventMessage(record));
    }
    return record;
  }

  private serve(call: FakeCall, from: ReadPosition, filter: Filter): void {
    if (call.destroyed) return;
    call.write(confirmationMessage());
    let scanned = 0;
    for (const record of this.records) {
      if (from !== START && typeof from !== 'string') {
        const after = compare(record, from);
        if (after < 0 || (after === 0 && !this.inclusiveStart)) continue;
      }
      scanned++;
      if (passesServerFilter(filter, record)) call.write(readEventMessage(record));
      if (scanned % this.checkpointEvery === 0) call.write(checkpointMessage(record.commit, record.prepare));
    }
    call.write(caughtUpMessage());
    const sub = { call, filter };
    this.live.add(sub);
    call.once('close', () => this.live.delete(sub));
  }
}

function compare(record: StoredRecord, position: EsdbPosition): number {
  if (record.commit !== position.commit) return record.commit < position.commit ? -1 : 1;
  return record.prepare === position.prepare ? 0 : record.prepare < position.prepare ? -1 : 1;
}

function passesServerFilter(filter: Filter, record: StoredRecord): boolean {
  const value = filter.filterOn === STREAM_NAME ? record.stream : record.data.type;
  if ('prefixes' in filter) return filter.prefixes.some((p) => value.startsWith(p));
  return new RegExp(filter.regex).test(value);
}

const opened: SupervisedSubscription[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((s) => s.close()));
});

function subscribe(
  log: ScriptedLog,
  options: Partial<SupervisorOptions> & { fromPosition?: SupervisorOptions['fromPosition'] } = {},
): SupervisedSubscription {
  const subscription = new SupervisedSubscription(log.source(), {
    fromPosition: 'start',
    filter: undefined,
    highWaterMark: 8,
    checkpointIntervalMultiplier: 1,
    resubscribe: { initialDelayMs: 5, maxDelayMs: 20 },
    mapError: (error) => mapEsdbError(error, { operation: 'subscribe to $all' }),
    isPermanent,
    ...options,
  });
  opened.push(subscription);
  return subscription;
}

/** Reads messages, slowly if asked, until `until` says stop. */
async function read(
  subscription: SupervisedSubscription,
  until: (messages: SubscriptionMessage[]) => boolean,
  options: { slowMs?: number; timeoutMs?: number } = {},
): Promise<SubscriptionMessage[]> {
  const iterator = subscription[Symbol.asyncIterator]();
  const out: SubscriptionMessage[] = [];
  const deadline = Date.now() + (options.timeoutMs ?? 5000);
  while (!until(out)) {
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`timed out after ${out.length} messages: ${show(out)}`);
    let timer: NodeJS.Timeout | undefined;
    const next = await Promise.race([
      iterator.next(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no message; so far: ${show(out)}`)), left);
      }),
    ]).finally(() => clearTimeout(timer));
    if (next.done) break;
    out.push(next.value);
    if (options.slowMs) await new Promise((resolve) => setTimeout(resolve, options.slowMs));
  }
  return out;
}

const events = (messages: SubscriptionMessage[]): RecordedEvent[] =>
  messages.flatMap((m) => (m.kind === 'event' ? [m.event] : []));
const showOne = (m: SubscriptionMessage) =>
  m.kind === 'event' ? `${m.event.stream}@${m.event.revision}` : `${m.kind}:${m.position ?? 'null'}`;
const show = (messages: SubscriptionMessage[]) => messages.map(showOne).join(' ');
const positionOf = (r: StoredRecord) => encodePosition({ commit: r.commit, prepare: r.prepare });
const count = (n: number) => (messages: SubscriptionMessage[]) => events(messages).length >= n;

describe('supervised subscription (client Subscription over a scripted server)', () => {
  it('delivers history in order, then caught-up after every buffered event, then live events', async () => {
    const log = new ScriptedLog();
    const history = [
      ...log.append(
        'mission-1',
        Array.from({ length: 60 }, () => 'PhaseReached'),
      ),
      log.appendForeign('orders-1', 'OrderPlaced'),
      ...log.append(
        'mission-2',
        Array.from({ length: 40 }, () => 'PhaseReached'),
      ),
    ];
    log.appendRaw(foreignRecord('$muster-eventid-x', 0, '$muster.event-id-claimed', 0n));
    log.appendRaw(foreignRecord('$$mission-1', 0, '$metadata', 0n));
    const subscription = subscribe(log);
    const untilCaughtUp = await read(subscription, (m) => m.some((x) => x.kind === 'caught-up'), {
      slowMs: 1,
    });
    const delivered = events(untilCaughtUp);
    const expected = history.filter((r) => r.stream.startsWith('mission-'));
    expect(delivered.map((e) => e.id)).toEqual(expected.map((r) => r.data.id));
    expect(delivered.map((e) => e.position)).toEqual(expected.map(positionOf));
    expect(untilCaughtUp[untilCaughtUp.length - 1]?.kind).toBe('caught-up');

    const live = log.append('mission-3', ['CouncilApproved', 'CouncilApproved']);
    const after = await read(subscription, count(2));
    expect(events(after).map((e) => e.id)).toEqual(live.map((r) => r.data.id));
    expect(after.some((m) => m.kind === 'caught-up')).toBe(false);
  });

  it('restarts a dropped subscription after the last event it received: no duplicate, no gap', async () => {
    const log = new ScriptedLog();
    log.inclusiveStart = true;
    const first = log.append(
      'mission-1',
      Array.from({ length: 50 }, () => 'Counted'),
    );
    const subscription = subscribe(log);
    const before = await read(subscription, count(20), { slowMs: 1 });
    log.calls[0]?.call.breakConnection();
    const second = log.append(
      'mission-1',
      Array.from({ length: 30 }, () => 'Counted'),
    );
    const rest = await read(
      subscription,
      (m) => events(m).length >= 80 - events(before).length && m.some((x) => x.kind === 'caught-up'),
      { slowMs: 1 },
    );
    const all = [...events(before), ...events(rest)];
    expect(all.map((e) => e.revision)).toEqual(Array.from({ length: 80 }, (_, i) => i));
    expect(all.map((e) => e.id)).toEqual([...first, ...second].map((r) => r.data.id));
    expect([...before, ...rest].filter((m) => m.kind === 'caught-up')).toHaveLength(1);
    expect(log.calls.length).toBeGreaterThanOrEqual(2);
    // The second call starts at an event the first one delivered, never before the start.
    const resumedFrom = log.calls[1]?.from as EsdbPosition;
    expect(typeof resumedFrom).toBe('object');
    expect(first.some((r) => r.commit === resumedFrom.commit)).toBe(true);
  });

  it('reports progress on a sparse filter: server checkpoints, and events it drops itself', async () => {
    const log = new ScriptedLog();
    log.checkpointEvery = 4;
    const filter: EventFilter = { streamPrefixes: ['keep-'], eventTypes: ['Wanted'] };
    log.append('keep-1', ['Wanted']);
    log.append(
      'drop-1',
      Array.from({ length: 12 }, () => 'Wanted'),
    );
    log.append('keep-1', ['Unwanted', 'Wanted']);
    const last = log.append('keep-1', ['Unwanted', 'Unwanted']);
    const subscription = subscribe(log, { filter });
    const lastPosition = positionOf(last[last.length - 1] as StoredRecord);
    const messages = await read(subscription, (m) =>
      m.some((x) => x.kind !== 'event' && x.position !== null && x.position >= lastPosition),
    );
    expect(events(messages).map((e) => [e.stream, e.type])).toEqual([
      ['keep-1', 'Wanted'],
      ['keep-1', 'Wanted'],
    ]);
    // Every report moves forward, and never claims more than what came before it.
    let progress = '';
    for (const m of messages) {
      const p = m.kind === 'event' ? m.event.position : m.position;
      if (p === null) continue;
      if (m.kind === 'checkpoint') expect(p > progress).toBe(true);
      else expect(p >= progress).toBe(true);
      progress = p;
    }
    expect(messages.filter((m) => m.kind === 'checkpoint').length).toBeGreaterThan(0);
    expect(log.calls[0]?.from).toBe(START);
  });

  it("from 'end' starts after the head as it was when subscribing, and keeps that across a drop", async () => {
    const log = new ScriptedLog();
    const old = log.append('mission-1', ['Old', 'Old']);
    const subscription = subscribe(log, { fromPosition: 'end' });
    const caughtUp = await read(subscription, (m) => m.some((x) => x.kind === 'caught-up'));
    expect(events(caughtUp)).toEqual([]);
    expect(caughtUp[0]).toEqual({ kind: 'caught-up', position: positionOf(old[1] as StoredRecord) });
    log.calls[0]?.call.breakConnection();
    const fresh = log.append('mission-1', ['New']);
    const got = await read(subscription, count(1));
    expect(events(got).map((e) => e.id)).toEqual(fresh.map((r) => r.data.id));
  });

  it("from 'end' retries reading the head while the server is away", async () => {
    const log = new ScriptedLog();
    const old = log.append('mission-1', ['Old']);
    const source = log.source();
    let headReads = 0;
    const flaky: SubscriptionSource = {
      open: source.open,
      rawHead: async () => {
        headReads++;
        if (headReads < 3)
          throw Object.assign(new Error('14 UNAVAILABLE: No connection established'), { code: 14 });
        return source.rawHead();
      },
    };
    const subscription = new SupervisedSubscription(flaky, {
      fromPosition: 'end',
      filter: undefined,
      highWaterMark: 8,
      checkpointIntervalMultiplier: 1,
      resubscribe: { initialDelayMs: 1, maxDelayMs: 5 },
      mapError: (e) => e,
      isPermanent,
    });
    opened.push(subscription);
    const caughtUp = await read(subscription, (m) => m.some((x) => x.kind === 'caught-up'));
    expect(headReads).toBe(3);
    expect(caughtUp).toEqual([{ kind: 'caught-up', position: positionOf(old[0] as StoredRecord) }]);
  });

  it('resumes strictly after an explicit position', async () => {
    const log = new ScriptedLog();
    log.inclusiveStart = true;
    const records = log.append(
      'mission-1',
      Array.from({ length: 6 }, () => 'Sub'),
    );
    const subscription = subscribe(log, { fromPosition: positionOf(records[2] as StoredRecord) });
    const got = await read(subscription, (m) => m.some((x) => x.kind === 'caught-up'));
    expect(events(got).map((e) => e.revision)).toEqual([3, 4, 5]);
  });

  it('close ends a waiting iteration and cancels the call', async () => {
    const log = new ScriptedLog();
    const subscription = subscribe(log, { fromPosition: 'end' });
    await read(subscription, (m) => m.some((x) => x.kind === 'caught-up'));
    const pending = subscription[Symbol.asyncIterator]().next();
    await subscription.close();
    await expect(pending).resolves.toEqual({ value: undefined, done: true });
    expect(log.calls[0]?.call.cancelled).toBe(true);
  });

  it('fails the iteration on an error retrying cannot fix', async () => {
    const log = new ScriptedLog();
    const subscription = subscribe(log);
    await read(subscription, (m) => m.some((x) => x.kind === 'caught-up'));
    log.calls[0]?.call.destroy(
      Object.assign(new Error('16 UNAUTHENTICATED'), { code: 16, details: 'denied' }),
    );
    await expect(read(subscription, () => false)).rejects.toBeInstanceOf(AccessDeniedError);
    expect(log.calls).toHaveLength(1);
  });

  it('gives up after the configured number of failed attempts in a row', async () => {
    const log = new ScriptedLog();
    const source = log.source();
    const failing: SubscriptionSource = {
      rawHead: source.rawHead,
      open: (from, filter) => {
        const sub = source.open(from, filter);
        const call = log.calls[log.calls.length - 1]?.call as FakeCall;
        setImmediate(() => call.breakConnection());
        return sub;
      },
    };
    const subscription = new SupervisedSubscription(failing, {
      fromPosition: 'start',
      filter: undefined,
      highWaterMark: 8,
      checkpointIntervalMultiplier: 1,
      resubscribe: { initialDelayMs: 1, maxDelayMs: 2, maxAttempts: 3 },
      mapError: (error) => mapEsdbError(error, { operation: 'subscribe to $all' }),
      isPermanent,
    });
    opened.push(subscription);
    await expect(read(subscription, () => false)).rejects.toBeInstanceOf(StoreUnavailableError);
    expect(log.calls.length).toBeGreaterThanOrEqual(3);
  });

  it('builds the server filter the plan asks for', async () => {
    const log = new ScriptedLog();
    const filters: Filter[] = [];
    const source = log.source();
    const spy: SubscriptionSource = {
      rawHead: source.rawHead,
      open: (from, filter) => {
        filters.push(filter);
        return source.open(from, filter);
      },
    };
    for (const filter of [undefined, { streamPrefixes: ['m-'] }, { eventTypePrefixes: ['Pledge'] }]) {
      const subscription = new SupervisedSubscription(spy, {
        fromPosition: 'start',
        filter,
        highWaterMark: 8,
        checkpointIntervalMultiplier: 7,
        mapError: (e) => e,
        isPermanent,
      });
      opened.push(subscription);
      await read(subscription, (m) => m.some((x) => x.kind === 'caught-up'));
    }
    expect(
      filters.map((f) => [f.filterOn, 'prefixes' in f ? f.prefixes : f.regex, f.checkpointInterval]),
    ).toEqual([
      [EVENT_TYPE, '^[^$].*', 7],
      [STREAM_NAME, ['m-'], 7],
      [EVENT_TYPE, ['Pledge'], 7],
    ]);
  });
});
