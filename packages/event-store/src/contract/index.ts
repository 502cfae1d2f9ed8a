import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  EventIdConflictError,
  EventTooLargeError,
  InvalidEventError,
  InvalidExpectedRevisionError,
  InvalidReadOptionsError,
  InvalidStreamNameError,
  StreamNotFoundError,
  WrongExpectedRevisionError,
} from '../errors.js';
import { computeEventHash, verifyStream } from '../hash-chain.js';
import type {
  EventData,
  EventStore,
  RecordedEvent,
  StreamTail,
  Subscription,
  SubscriptionMessage,
} from '../types.js';

export interface ContractOptions {
  /** When set, the suite is skipped and the reason printed (a store that cannot be reached). */
  skip?: string | undefined;
  /** Largest event the store accepts, when the factory configures a smaller limit than the default. */
  maxEventBytes?: number;
  /**
   * Whether the store offers `appendUnderLock`; when given, the suite checks it, so that a store
   * meant to offer it cannot skip its tests unnoticed. Its tests run on every store that offers it.
   */
  appendUnderLock?: boolean;
}

/**
 * The event store contract: one suite, run unchanged against every adapter. Tests share one
 * store per run and never assume it is empty: each uses its own stream names and reads the
 * log from the head position it saw before appending.
 */
export function runEventStoreContract(
  name: string,
  factory: () => Promise<EventStore> | EventStore,
  options: ContractOptions = {},
): void {
  if (options.skip) {
    describe.skip(`event store contract: ${name} (skipped: ${options.skip})`, () => {
      it('needs a reachable store', () => {});
    });
    // Visible in the test output even with reporters that hide skipped suites.
    process.stderr.write(`[contract] ${name} skipped: ${options.skip}\n`);
    return;
  }

  describe(`event store contract: ${name}`, () => {
    let store: EventStore;
    const run = randomUUID().slice(0, 8);
    const streamName = (label: string) => `contract-${run}-${label}-${randomUUID().slice(0, 8)}`;
    const ev = (
      type = 'ThingHappened',
      data: unknown = { n: 1 },
      extra: Partial<EventData> = {},
    ): EventData => ({
      type,
      data,
      ...extra,
    });

    beforeAll(async () => {
      store = await factory();
    });
    afterAll(async () => {
      await store?.close();
    });

    describe('expected revision', () => {
      it('starts streams at revision 0 and counts up by one per event', async () => {
        const s = streamName('rev');
        const first = await store.appendToStream(s, [ev(), ev()], { expectedRevision: 'no_stream' });
        expect(first.nextExpectedRevision).toBe(1);
        expect(first.events.map((e) => e.revision)).toEqual([0, 1]);
        const second = await store.appendToStream(s, [ev()], { expectedRevision: 1 });
        expect(second.nextExpectedRevision).toBe(2);
        expect(second.events[0]?.revision).toBe(2);
        expect(await store.streamRevision(s)).toBe(2);
      });

      it('no_stream succeeds once and then reports the actual revision', async () => {
        const s = streamName('nostream');
        await store.appendToStream(s, [ev()], { expectedRevision: 'no_stream' });
        const error = await store
          .appendToStream(s, [ev()], { expectedRevision: 'no_stream' })
          .catch((e) => e);
        expect(error).toBeInstanceOf(WrongExpectedRevisionError);
        expect(error.expected).toBe('no_stream');
        expect(error.actual).toBe(0);
        expect(error.code).toBe('wrong-expected-revision');
      });

      it('stream_exists fails on a new stream and succeeds on an existing one', async () => {
        const s = streamName('exists');
        const error = await store
          .appendToStream(s, [ev()], { expectedRevision: 'stream_exists' })
          .catch((e) => e);
        expect(error).toBeInstanceOf(WrongExpectedRevisionError);
        expect(error.actual).toBe('no_stream');
        await expect(store.streamRevision(s)).resolves.toBeNull();
        await store.appendToStream(s, [ev()]);
        const ok = await store.appendToStream(s, [ev()], { expectedRevision: 'stream_exists' });
        expect(ok.nextExpectedRevision).toBe(1);
      });

      it('an exact revision must equal the last revision', async () => {
        const s = streamName('exact');
        await store.appendToStream(s, [ev(), ev(), ev()]);
        const stale = await store.appendToStream(s, [ev()], { expectedRevision: 1 }).catch((e) => e);
        expect(stale).toBeInstanceOf(WrongExpectedRevisionError);
        expect(stale.expected).toBe(1);
        expect(stale.actual).toBe(2);
        const ahead = await store.appendToStream(s, [ev()], { expectedRevision: 5 }).catch((e) => e);
        expect(ahead).toBeInstanceOf(WrongExpectedRevisionError);
        const missing = await store
          .appendToStream(streamName('none'), [ev()], { expectedRevision: 0 })
          .catch((e) => e);
        expect(missing).toBeInstanceOf(WrongExpectedRevisionError);
        expect(missing.actual).toBe('no_stream');
        const ok = await store.appendToStream(s, [ev()], { expectedRevision: 2 });
        expect(ok.nextExpectedRevision).toBe(3);
      });

      it('any never checks', async () => {
        const s = streamName('any');
        await store.appendToStream(s, [ev()], { expectedRevision: 'any' });
        const r = await store.appendToStream(s, [ev()], { expectedRevision: 'any' });
        expect(r.nextExpectedRevision).toBe(1);
        const dflt = await store.appendToStream(s, [ev()]);
        expect(dflt.nextExpectedRevision).toBe(2);
      });

      it('rejects an unknown expected revision value', async () => {
        for (const bad of ['latest', -1, 1.5, Number.NaN, null, {}]) {
          const error = await store
            .appendToStream(streamName('badrev'), [ev()], { expectedRevision: bad as never })
            .catch((e) => e);
          expect(error).toBeInstanceOf(InvalidExpectedRevisionError);
        }
      });
    });

    describe('idempotent appends', () => {
      it('re-appending the same ids at the same expected revision succeeds without writing', async () => {
        const s = streamName('idem');
        const batch = [ev('A', { i: 1 }, { id: randomUUID() }), ev('B', { i: 2 }, { id: randomUUID() })];
        const first = await store.appendToStream(s, batch, { expectedRevision: 'no_stream' });
        expect(first.idempotent).toBe(false);
        const again = await store.appendToStream(s, batch, { expectedRevision: 'no_stream' });
        expect(again.idempotent).toBe(true);
        expect(again.nextExpectedRevision).toBe(1);
        expect(again.position).toBe(first.position);
        expect(again.events.map((e) => e.id)).toEqual(first.events.map((e) => e.id));
        const more = [ev('C', {}, { id: randomUUID() })];
        await store.appendToStream(s, more, { expectedRevision: 1 });
        const moreAgain = await store.appendToStream(s, more, { expectedRevision: 1 });
        expect(moreAgain.idempotent).toBe(true);
        const anyAgain = await store.appendToStream(s, more, { expectedRevision: 'any' });
        expect(anyAgain.idempotent).toBe(true);
        const events = await collect(store.readStream(s));
        expect(events).toHaveLength(3);
      });

      it('the same ids at another expected revision are a conflict, and ids are unique across streams', async () => {
        const s = streamName('idem2');
        const batch = [ev('A', {}, { id: randomUUID() })];
        await store.appendToStream(s, batch, { expectedRevision: 'no_stream' });
        await store.appendToStream(s, [ev()], { expectedRevision: 0 });
        const wrongPlace = await store.appendToStream(s, batch, { expectedRevision: 1 }).catch((e) => e);
        expect(wrongPlace).toBeInstanceOf(WrongExpectedRevisionError);
        const otherStream = await store.appendToStream(streamName('other'), batch).catch((e) => e);
        expect(otherStream).toBeInstanceOf(EventIdConflictError);
        const partial = await store
          .appendToStream(s, [batch[0] as EventData, ev('X', {}, { id: randomUUID() })], {
            expectedRevision: 'any',
          })
          .catch((e) => e);
        expect(partial).toBeInstanceOf(EventIdConflictError);
        // The id is in this very stream: the message names it and does not send the reader to
        // look elsewhere.
        const id = (batch[0] as EventData).id as string;
        expect(partial.eventId).toBe(id);
        expect(partial.message).toContain(id);
        expect(partial.message).not.toMatch(/elsewhere|another stream/);
        expect(await collect(store.readStream(s))).toHaveLength(2);
      });
    });

    describe('concurrency', () => {
      it('N parallel appenders on one stream: exactly one wins each revision', async () => {
        const s = streamName('race');
        const appenders = 12;
        const rounds = 5;
        for (let round = 0; round < rounds; round++) {
          const expected = round === 0 ? ('no_stream' as const) : round - 1;
          const outcomes = await Promise.allSettled(
            Array.from({ length: appenders }, (_, i) =>
              store.appendToStream(s, [ev('Raced', { round, i })], { expectedRevision: expected }),
            ),
          );
          const won = outcomes.filter((o) => o.status === 'fulfilled');
          const lost = outcomes.filter((o) => o.status === 'rejected');
          expect(won).toHaveLength(1);
          for (const l of lost)
            expect((l as PromiseRejectedResult).reason).toBeInstanceOf(WrongExpectedRevisionError);
        }
        const events = await collect(store.readStream(s));
        expect(events.map((e) => e.revision)).toEqual([0, 1, 2, 3, 4]);
        expect((await verifyStream(events)).ok).toBe(true);
      });

      it('applies appends to one stream in the order they were issued, without waiting between them', async () => {
        const s = streamName('pipeline');
        const results = await Promise.all(
          Array.from({ length: 30 }, (_, i) =>
            store.appendToStream(s, [ev('Piped', { i })], {
              expectedRevision: i === 0 ? 'no_stream' : i - 1,
            }),
          ),
        );
        expect(results.map((r) => r.nextExpectedRevision)).toEqual(Array.from({ length: 30 }, (_, i) => i));
        const events = await collect(store.readStream(s));
        expect(events.map((e) => (e.data as { i: number }).i)).toEqual(
          Array.from({ length: 30 }, (_, i) => i),
        );
      });

      it('parallel appends with any are all kept, with contiguous revisions and one chain', async () => {
        const s = streamName('anyrace');
        await Promise.all(Array.from({ length: 40 }, (_, i) => store.appendToStream(s, [ev('Any', { i })])));
        const events = await collect(store.readStream(s));
        expect(events.map((e) => e.revision)).toEqual(Array.from({ length: 40 }, (_, i) => i));
        expect(new Set(events.map((e) => (e.data as { i: number }).i)).size).toBe(40);
        expect((await verifyStream(events)).ok).toBe(true);
      });
    });

    describe('appendUnderLock (where offered)', () => {
      type LockedAppend = NonNullable<EventStore['appendUnderLock']>;
      const lockedAppend = (skip: (note?: string) => never): LockedAppend => {
        const append = store.appendUnderLock;
        if (!append) skip('the store does not offer appendUnderLock');
        return append.bind(store);
      };

      if (options.appendUnderLock !== undefined) {
        const offered = options.appendUnderLock;
        it(`is ${offered ? '' : 'not '}offered`, () => {
          expect(typeof store.appendUnderLock === 'function').toBe(offered);
        });
      }

      it('gives decide exactly the events past the known revision, and the revision the stream is at', async ({
        skip,
      }) => {
        const appendUnderLock = lockedAppend(skip);
        const s = streamName('tail');
        const seen: StreamTail[] = [];
        const look = (knownRevision: number | null) =>
          appendUnderLock(s, { knownRevision }, (tail) => {
            seen.push(tail);
            return [];
          });
        expect(await look(null)).toBeNull();
        expect(seen).toEqual([{ revision: null, events: [] }]);
        await store.appendToStream(
          s,
          Array.from({ length: 5 }, (_, i) => ev('Told', { i })),
        );
        const recorded = await collect(store.readStream(s));
        for (const known of [null, 0, 2, 4, 7]) expect(await look(known)).toBeNull();
        expect(seen.slice(1)).toEqual([
          { revision: 4, events: recorded },
          { revision: 4, events: recorded.slice(1) },
          { revision: 4, events: recorded.slice(3) },
          { revision: 4, events: [] },
          { revision: 4, events: [] },
        ]);
        expect(await store.streamRevision(s)).toBe(4);
      });

      it('appends what decide returns right after the tail, on the chain, and answers like an append', async ({
        skip,
      }) => {
        const appendUnderLock = lockedAppend(skip);
        const s = streamName('locked');
        const counted = (tail: StreamTail, n: number) =>
          Array.from({ length: n }, (_, i) =>
            ev('Counted', { after: tail.revision, told: tail.events.length, i }),
          );
        const before = Date.now();
        const first = await appendUnderLock(s, { knownRevision: null }, (tail) => counted(tail, 1));
        expect(first).toMatchObject({ nextExpectedRevision: 0, idempotent: false });
        expect(first?.events.map((e) => [e.revision, e.previousHash, e.data])).toEqual([
          [0, null, { after: null, told: 0, i: 0 }],
        ]);
        await store.appendToStream(s, [ev('Plain'), ev('Plain')], { expectedRevision: 0 });
        const second = await appendUnderLock(s, { knownRevision: 0 }, (tail) => counted(tail, 2));
        expect(second?.events.map((e) => [e.revision, e.data])).toEqual([
          [3, { after: 2, told: 2, i: 0 }],
          [4, { after: 2, told: 2, i: 1 }],
        ]);
        expect(second?.nextExpectedRevision).toBe(4);
        const log = await collect(store.readStream(s));
        expect(second?.events).toEqual(log.slice(3));
        expect(second?.position).toBe(log[4]?.position);
        expect(first?.events).toEqual(log.slice(0, 1));
        expect(log[3]?.previousHash).toBe(log[2]?.hash);
        expect(await verifyStream(log)).toMatchObject({ ok: true, count: 5 });
        assertStrictlyIncreasing(log.map((e) => e.position));
        const stamped = log[3] as RecordedEvent;
        expect(stamped.recordedAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
        expect(Date.parse(stamped.recordedAt)).toBeGreaterThanOrEqual(before - 1000);
        expect(stamped.metadata.occurredAt).toBe(stamped.recordedAt);
        expect(await store.headPosition()).toBe(second?.position);
      });

      it('appends nothing when decide refuses, returns no events or returns what no append may hold', async ({
        skip,
      }) => {
        const appendUnderLock = lockedAppend(skip);
        const s = streamName('locked-refused');
        await store.appendToStream(s, [ev('A', {}, { id: randomUUID() }), ev('B', {}, { id: randomUUID() })]);
        const log = await collect(store.readStream(s));
        const refusal = new Error('refused on the stream as it is');
        const refused = await appendUnderLock(s, { knownRevision: 0 }, () => {
          throw refusal;
        }).catch((e) => e);
        expect(refused).toBe(refusal);
        expect(await appendUnderLock(s, { knownRevision: 1 }, () => [])).toBeNull();
        const invalid = await appendUnderLock(s, { knownRevision: 1 }, () => [ev('has space')]).catch(
          (e) => e,
        );
        expect(invalid).toBeInstanceOf(InvalidEventError);
        // Ids already recorded follow the rules of any append: earlier in the same stream, the
        // append is at the wrong revision; in another stream, the id is taken.
        const recordedHere = log[1] as RecordedEvent;
        const again = await appendUnderLock(s, { knownRevision: 1 }, () => [
          { id: recordedHere.id, type: recordedHere.type, data: recordedHere.data },
        ]).catch((e) => e);
        expect(again).toBeInstanceOf(WrongExpectedRevisionError);
        const elsewhere = streamName('locked-elsewhere');
        const taken = randomUUID();
        await store.appendToStream(elsewhere, [ev('Taken', {}, { id: taken })]);
        const conflict = await appendUnderLock(s, { knownRevision: 1 }, () => [
          ev('Fresh', {}, { id: randomUUID() }),
          ev('Reused', {}, { id: taken }),
        ]).catch((e) => e);
        expect(conflict).toBeInstanceOf(EventIdConflictError);
        expect(await collect(store.readStream(s))).toEqual(log);
        // And the stream takes a locked append after all that.
        const ok = await appendUnderLock(s, { knownRevision: 1 }, () => [ev('C')]);
        expect(ok?.nextExpectedRevision).toBe(2);
      });

      it('refuses a bad stream name or known revision without calling decide', async ({ skip }) => {
        const appendUnderLock = lockedAppend(skip);
        let called = 0;
        const decide = () => {
          called++;
          return [ev()];
        };
        await expect(appendUnderLock('', { knownRevision: null }, decide)).rejects.toBeInstanceOf(
          InvalidStreamNameError,
        );
        for (const bad of [-1, 1.5, '3', undefined]) {
          await expect(
            appendUnderLock(streamName('badknown'), { knownRevision: bad as never }, decide),
          ).rejects.toBeInstanceOf(InvalidReadOptionsError);
        }
        expect(called).toBe(0);
      });

      it('takes its turn among this store’s appends to the stream, in the order they were issued', async ({
        skip,
      }) => {
        const appendUnderLock = lockedAppend(skip);
        const s = streamName('locked-order');
        const first = store.appendToStream(s, [ev('A')], { expectedRevision: 'no_stream' });
        const locked = appendUnderLock(s, { knownRevision: null }, (tail) => [
          ev('B', { after: tail.revision }),
        ]);
        const last = store.appendToStream(s, [ev('C')], { expectedRevision: 1 });
        const results = await Promise.all([first, locked, last]);
        expect(results.map((r) => r?.nextExpectedRevision)).toEqual([0, 1, 2]);
        const log = await collect(store.readStream(s));
        expect(log.map((e) => [e.type, e.data])).toEqual([
          ['A', { n: 1 }],
          ['B', { after: 0 }],
          ['C', { n: 1 }],
        ]);
      });

      it('interleaved with plain appends on one stream: nothing lost or doubled, each decision on the stream as it was, one chain', async ({
        skip,
      }) => {
        const appendUnderLock = lockedAppend(skip);
        const s = streamName('locked-mixed');
        const rounds = 20;
        const issued: Array<Promise<unknown>> = [];
        for (let i = 0; i < rounds; i++) {
          issued.push(store.appendToStream(s, [ev('Plain', { i })]));
          issued.push(
            appendUnderLock(s, { knownRevision: i === 0 ? null : i - 1 }, (tail) => [
              ev('Locked', { i, after: tail.revision, told: tail.events.map((e) => e.revision) }),
            ]),
          );
        }
        const outcomes = await Promise.allSettled(issued);
        expect(outcomes.filter((o) => o.status === 'rejected')).toEqual([]);
        const log = await collect(store.readStream(s));
        expect(log.map((e) => e.revision)).toEqual(Array.from({ length: 2 * rounds }, (_, i) => i));
        expect(new Set(log.map((e) => e.id)).size).toBe(2 * rounds);
        expect(await verifyStream(log)).toMatchObject({ ok: true, count: 2 * rounds });
        // Issue order, and every locked decision saw the stream up to the event before its own.
        expect(log.map((e) => `${e.type} ${(e.data as { i: number }).i}`)).toEqual(
          Array.from({ length: 2 * rounds }, (_, r) => `${r % 2 === 0 ? 'Plain' : 'Locked'} ${r >> 1}`),
        );
        for (const e of log.filter((x) => x.type === 'Locked')) {
          const { i, after, told } = e.data as { i: number; after: number; told: number[] };
          expect({ revision: e.revision, after }).toEqual({ revision: e.revision, after: e.revision - 1 });
          const known = i === 0 ? -1 : i - 1;
          expect(told).toEqual(Array.from({ length: e.revision - 1 - known }, (_, k) => known + 1 + k));
        }
      });

      it('is delivered to a live subscription from the end', async ({ skip }) => {
        const appendUnderLock = lockedAppend(skip);
        const prefix = streamName('locked-live');
        const sub = store.subscribeToAll({ fromPosition: 'end', filter: { streamPrefixes: [prefix] } });
        try {
          // Appended at once, while the subscription may still be finding out where the end is.
          const written = await appendUnderLock(`${prefix}-1`, { knownRevision: null }, () => [ev('Live')]);
          const [got] = await new MessageReader(sub).events(1);
          expect(got).toEqual(written?.events[0]);
        } finally {
          await sub.close();
        }
      });
    });

    describe('readStream', () => {
      let s: string;
      beforeAll(async () => {
        s = streamName('read');
        for (let i = 0; i < 10; i += 5) {
          await store.appendToStream(
            s,
            Array.from({ length: 5 }, (_, j) => ev('Counted', { i: i + j })),
          );
        }
      });
      const values = (events: RecordedEvent[]) => events.map((e) => (e.data as { i: number }).i);

      it('reads forwards from the start', async () => {
        expect(values(await collect(store.readStream(s)))).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
      });
      it('reads forwards from a revision with maxCount', async () => {
        expect(values(await collect(store.readStream(s, { fromRevision: 3, maxCount: 4 })))).toEqual([
          3, 4, 5, 6,
        ]);
      });
      it('reads backwards from the end and from a revision', async () => {
        expect(values(await collect(store.readStream(s, { direction: 'backwards', maxCount: 3 })))).toEqual([
          9, 8, 7,
        ]);
        expect(
          values(await collect(store.readStream(s, { direction: 'backwards', fromRevision: 2 }))),
        ).toEqual([2, 1, 0]);
      });
      it('reads nothing past the end, and maxCount 0 reads nothing', async () => {
        expect(await collect(store.readStream(s, { fromRevision: 10 }))).toEqual([]);
        expect(await collect(store.readStream(s, { maxCount: 0 }))).toEqual([]);
      });
      it('throws StreamNotFoundError for a stream with no events', async () => {
        await expect(collect(store.readStream(streamName('missing')))).rejects.toBeInstanceOf(
          StreamNotFoundError,
        );
      });
      it('reads a long stream across pages', async () => {
        const long = streamName('long');
        for (let i = 0; i < 1200; i += 200) {
          await store.appendToStream(
            long,
            Array.from({ length: 200 }, (_, j) => ev('Counted', { i: i + j })),
          );
        }
        const events = await collect(store.readStream(long));
        expect(values(events)).toEqual(Array.from({ length: 1200 }, (_, i) => i));
        const back = await collect(store.readStream(long, { direction: 'backwards' }));
        expect(values(back)).toEqual(Array.from({ length: 1200 }, (_, i) => 1199 - i));
      });
    });

    describe('readAll', () => {
      it('pages through the log in position order, from an inclusive position', async () => {
        const prefix = streamName('all');
        const before = await store.headPosition();
        const a = `${prefix}-a`;
        const b = `${prefix}-b`;
        for (let i = 0; i < 30; i++) {
          await store.appendToStream(
            i % 2 === 0 ? a : b,
            Array.from({ length: 50 }, (_, j) => ev('Paged', { n: i * 50 + j })),
          );
        }
        const all = await collect(
          store.readAll({ fromPosition: before ?? 'start', filter: { streamPrefixes: [prefix] } }),
        );
        expect(all).toHaveLength(1500);
        expect(all.map((e) => (e.data as { n: number }).n)).toEqual(
          Array.from({ length: 1500 }, (_, i) => i),
        );
        assertStrictlyIncreasing(all.map((e) => e.position));

        // Page by hand: fromPosition is inclusive, so each page after the first drops its first event.
        const paged: RecordedEvent[] = [];
        let from: string = all[0]?.position as string;
        for (;;) {
          const page = await collect(
            store.readAll({ fromPosition: from, maxCount: 101, filter: { streamPrefixes: [prefix] } }),
          );
          const fresh = paged.length === 0 ? page : page.slice(1);
          if (fresh.length === 0) break;
          paged.push(...fresh);
          from = page[page.length - 1]?.position as string;
        }
        expect(paged.map((e) => e.id)).toEqual(all.map((e) => e.id));

        const backwards = await collect(
          store.readAll({ direction: 'backwards', maxCount: 10, filter: { streamPrefixes: [prefix] } }),
        );
        expect(backwards.map((e) => e.id)).toEqual(
          all
            .slice(-10)
            .reverse()
            .map((e) => e.id),
        );
        expect(await store.headPosition()).toBe(all[all.length - 1]?.position);
      });

      it('reads the log backwards from a position, that position included', async () => {
        const stream = streamName('back-from');
        await store.appendToStream(stream, [ev(), ev(), ev()]);
        const mine = await collect(store.readStream(stream));
        const middle = mine[1]?.position as string;
        const back = await collect(
          store.readAll({ fromPosition: middle, direction: 'backwards', maxCount: 2 }),
        );
        expect(back[0]?.id).toBe(mine[1]?.id);
        expect(back).toHaveLength(2);
        expect((back[1]?.position ?? middle) < middle).toBe(true);
      });

      it('gives its own positions back unchanged and refuses texts that are not positions', async () => {
        const stream = streamName('canonical');
        await store.appendToStream(stream, [ev(), ev()]);
        const emitted = (await collect(store.readStream(stream))).map((e) => e.position);
        for (const position of emitted) expect(store.canonicalPosition(position)).toBe(position);
        for (const bad of ['', 'abc', '-1', ' 1', `${emitted[0]}x`, '9'.repeat(90)]) {
          expect(() => store.canonicalPosition(bad), bad).toThrow(InvalidReadOptionsError);
        }
      });

      it('filters by event type', async () => {
        const prefix = streamName('types');
        await store.appendToStream(`${prefix}-x`, [ev('Alpha'), ev('Beta'), ev('AlphaTwo'), ev('Gamma')]);
        const exact = await collect(
          store.readAll({ filter: { streamPrefixes: [prefix], eventTypes: ['Alpha', 'Gamma'] } }),
        );
        expect(exact.map((e) => e.type)).toEqual(['Alpha', 'Gamma']);
        const prefixed = await collect(
          store.readAll({ filter: { streamPrefixes: [prefix], eventTypePrefixes: ['Alpha'] } }),
        );
        expect(prefixed.map((e) => e.type)).toEqual(['Alpha', 'AlphaTwo']);
      });

      it('stops early without reading the rest of the log', async () => {
        const prefix = streamName('early');
        await store.appendToStream(
          `${prefix}-1`,
          Array.from({ length: 300 }, () => ev()),
        );
        let seen = 0;
        for await (const _ of store.readAll({ filter: { streamPrefixes: [prefix] } })) {
          seen++;
          if (seen === 3) break;
        }
        expect(seen).toBe(3);
      });
    });

    describe('subscribeToAll', () => {
      it('catches up, reports caught-up, then delivers live events', async () => {
        const prefix = streamName('sub');
        await store.appendToStream(
          `${prefix}-1`,
          Array.from({ length: 5 }, (_, i) => ev('Sub', { i })),
        );
        const sub = store.subscribeToAll({ fromPosition: 'start', filter: { streamPrefixes: [prefix] } });
        try {
          const reader = new MessageReader(sub);
          const caughtUp = await reader.eventsUntilCaughtUp();
          expect(caughtUp.map((e) => (e.data as { i: number }).i)).toEqual([0, 1, 2, 3, 4]);
          await store.appendToStream(`${prefix}-2`, [ev('Sub', { i: 5 }), ev('Sub', { i: 6 })]);
          const live = await reader.events(2);
          expect(live.map((e) => (e.data as { i: number }).i)).toEqual([5, 6]);
        } finally {
          await sub.close();
        }
      });

      it('hands over what it holds at once (takeBuffered, where offered) in the order iteration gives', async () => {
        const prefix = streamName('buffered');
        const count = 120;
        await store.appendToStream(
          `${prefix}-1`,
          Array.from({ length: count }, (_, i) => ev('Sub', { i })),
        );
        const sub = store.subscribeToAll({
          fromPosition: 'start',
          filter: { streamPrefixes: [prefix] },
          batchSize: 50,
        });
        try {
          if (!sub.takeBuffered) return;
          const iterator = sub[Symbol.asyncIterator]();
          const seen: number[] = [];
          let bulk = 0;
          const note = (message: SubscriptionMessage) => {
            if (message.kind === 'event') seen.push((message.event.data as { i: number }).i);
            return message.kind === 'caught-up';
          };
          let caughtUp = false;
          while (!caughtUp) {
            const first = await withTimeout(iterator.next(), 10_000, 'next message');
            caughtUp = note(first.value as SubscriptionMessage);
            await new Promise((resolve) => setTimeout(resolve, 20));
            const held = sub.takeBuffered(7);
            expect(held.length).toBeLessThanOrEqual(7);
            bulk += held.length;
            for (const message of held) caughtUp = note(message) || caughtUp;
          }
          expect(bulk).toBeGreaterThan(0);
          expect(seen).toEqual(Array.from({ length: count }, (_, i) => i));
          expect(sub.takeBuffered(10)).toEqual([]);
        } finally {
          await sub.close();
        }
      });

      it('resumes strictly after a checkpoint', async () => {
        const prefix = streamName('resume');
        const r = await store.appendToStream(
          `${prefix}-1`,
          Array.from({ length: 6 }, (_, i) => ev('Sub', { i })),
        );
        const checkpoint = r.events[2]?.position as string;
        const sub = store.subscribeToAll({ fromPosition: checkpoint, filter: { streamPrefixes: [prefix] } });
        try {
          const events = await new MessageReader(sub).eventsUntilCaughtUp();
          expect(events.map((e) => (e.data as { i: number }).i)).toEqual([3, 4, 5]);
        } finally {
          await sub.close();
        }
      });

      it("from 'end' delivers only what is appended later", async () => {
        const prefix = streamName('end');
        await store.appendToStream(`${prefix}-1`, [ev('Old')]);
        const sub = store.subscribeToAll({ fromPosition: 'end', filter: { streamPrefixes: [prefix] } });
        try {
          const reader = new MessageReader(sub);
          expect(await reader.eventsUntilCaughtUp()).toEqual([]);
          await store.appendToStream(`${prefix}-1`, [ev('New')]);
          expect((await reader.events(1)).map((e) => e.type)).toEqual(['New']);
        } finally {
          await sub.close();
        }
      });

      it('filters by stream prefix and event type, and reports progress past events it filters out', async () => {
        const prefix = streamName('filter');
        const sub = store.subscribeToAll({
          fromPosition: (await store.headPosition()) ?? 'start',
          filter: { streamPrefixes: [`${prefix}-keep`], eventTypes: ['Wanted'] },
        });
        try {
          const reader = new MessageReader(sub);
          await reader.eventsUntilCaughtUp();
          await store.appendToStream(`${prefix}-keep`, [
            ev('Wanted', { i: 1 }),
            ev('Unwanted'),
            ev('Wanted', { i: 2 }),
          ]);
          await store.appendToStream(`${prefix}-drop`, [ev('Wanted', { i: 99 })]);
          const last = await store.appendToStream(`${prefix}-keep`, [ev('Unwanted')]);
          const got = await reader.events(2);
          expect(got.map((e) => (e.data as { i: number }).i)).toEqual([1, 2]);
          // A subscriber with a sparse filter must still learn how far it has scanned.
          const progress = await reader.progressAtLeast(last.position);
          expect(progress >= last.position).toBe(true);
        } finally {
          await sub.close();
        }
      });

      it('never skips or reorders events under concurrent appends', async () => {
        const prefix = streamName('conc');
        const start = (await store.headPosition()) ?? 'start';
        const sub = store.subscribeToAll({ fromPosition: start, filter: { streamPrefixes: [prefix] } });
        try {
          const reader = new MessageReader(sub);
          const writers = 8;
          const perWriter = 40;
          const appends = Array.from({ length: writers }, async (_, w) => {
            for (let i = 0; i < perWriter; i++) {
              await store.appendToStream(`${prefix}-${w % 3}`, [ev('Conc', { w, i })]);
            }
          });
          const received = reader.events(writers * perWriter);
          await Promise.all(appends);
          const got = await received;
          const positions = got.map((e) => e.position);
          assertStrictlyIncreasing(positions);
          expect(new Set(got.map((e) => e.id)).size).toBe(writers * perWriter);
          const logged = await collect(
            store.readAll({ fromPosition: start, filter: { streamPrefixes: [prefix] } }),
          );
          expect(got.map((e) => e.id)).toEqual(logged.map((e) => e.id));
          for (let w = 0; w < writers; w++) {
            const mine = got
              .filter((e) => (e.data as { w: number }).w === w)
              .map((e) => (e.data as { i: number }).i);
            expect(mine).toEqual(Array.from({ length: perWriter }, (_, i) => i));
          }
        } finally {
          await sub.close();
        }
      });

      it('refuses a batch size that is not a positive integer', async () => {
        for (const batchSize of [0, -1, 1.5, Number.NaN]) {
          // Refused when subscribing or at the first read, as the adapter finds out.
          const error = await (async () => {
            const sub = store.subscribeToAll({ fromPosition: 'end', batchSize });
            try {
              await withTimeout(sub[Symbol.asyncIterator]().next(), 5000, 'first message');
            } finally {
              await sub.close();
            }
          })().catch((e) => e);
          expect(error, String(batchSize)).toBeInstanceOf(InvalidReadOptionsError);
        }
      });

      it('close drops what the subscription already holds: no event reaches the consumer after it', async () => {
        const prefix = streamName('close-held');
        await store.appendToStream(
          `${prefix}-1`,
          Array.from({ length: 20 }, (_, i) => ev('Held', { i })),
        );
        const sub = store.subscribeToAll({ fromPosition: 'start', filter: { streamPrefixes: [prefix] } });
        const iterator = sub[Symbol.asyncIterator]();
        const first = await withTimeout(iterator.next(), 10_000, 'first message');
        expect(first.value?.kind).toBe('event');
        await sub.close();
        expect(await withTimeout(iterator.next(), 5000, 'read after close')).toEqual({
          done: true,
          value: undefined,
        });
        expect(sub.takeBuffered?.(100) ?? []).toEqual([]);
      });

      it('close ends the iteration', async () => {
        const sub = store.subscribeToAll({ fromPosition: 'end' });
        const iterator = sub[Symbol.asyncIterator]();
        const pending = (async () => {
          for (;;) {
            const r = await iterator.next();
            if (r.done) return 'done';
          }
        })();
        await sub.close();
        await expect(withTimeout(pending, 5000)).resolves.toBe('done');
      });
    });

    describe('recorded events', () => {
      it('round-trips data, metadata and occurredAt, and stamps recordedAt', async () => {
        const s = streamName('meta');
        const id = randomUUID();
        const data = {
          text: 'héllo ✓ \u0000 "quoted"',
          nested: { list: [1, 2.5, -3, true, null] },
          empty: {},
        };
        const metadata = {
          actor: { agency: 'ke-interior', keyId: 'key_1' },
          commandId: 'cmd-1',
          correlationId: 'corr-1',
          causationId: 'cause-1',
          occurredAt: '2024-03-11T18:30:00+03:00',
          custom: { anything: ['goes'] },
        };
        const before = Date.now();
        const r = await store.appendToStream(s, [{ id, type: 'Detailed', data, metadata }]);
        const [read] = await collect(store.readStream(s));
        expect(read).toBeDefined();
        const e = read as RecordedEvent;
        expect(e.id).toBe(id);
        expect(e.stream).toBe(s);
        expect(e.type).toBe('Detailed');
        expect(e.data).toEqual(data);
        expect(e.metadata).toEqual({ ...metadata, occurredAt: '2024-03-11T15:30:00.000Z' });
        expect(e.position).toBe(r.position);
        expect(Date.parse(e.recordedAt)).toBeGreaterThanOrEqual(before - 1000);
        expect(e.recordedAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
        expect(r.events[0]).toEqual(e);
      });

      it('round-trips stream names with quotes, backslashes, JSON syntax and non-ASCII text', async () => {
        const from = await store.headPosition();
        const names = [
          'say "hi"',
          'back\\slash\\',
          '\\u0041 not an escape',
          '"],[1,2,3',
          "it's {}, [] and ,",
          'héllo ✓ 日本 🚀',
          'inner  spaces, \\t and \\n as text',
        ].map((label) => `${streamName('names')}/${label}`);
        for (const [i, s] of names.entries()) await store.appendToStream(s, [ev('Named', { i })]);
        for (const [i, s] of names.entries()) {
          const [e] = await collect(store.readStream(s));
          expect(e?.stream).toBe(s);
          expect(e?.data).toEqual({ i });
        }
        const all = await collect(store.readAll({ fromPosition: from ?? 'start' }));
        const named = all.filter((e) => e.type === 'Named' && names.includes(e.stream));
        expect(named.map((e) => e.stream)).toEqual(names);
      });

      it('defaults occurredAt to recordedAt', async () => {
        const s = streamName('occ');
        await store.appendToStream(s, [ev()]);
        const [e] = await collect(store.readStream(s));
        expect(e?.metadata.occurredAt).toBe(e?.recordedAt);
      });
    });

    describe('hash chain', () => {
      it('links each event to the previous one in its stream and verifies', async () => {
        const s = streamName('chain');
        await store.appendToStream(s, [ev('A', { i: 0 }), ev('B', { i: 1 })]);
        await store.appendToStream(s, [ev('C', { i: 2 })]);
        const events = await collect(store.readStream(s));
        expect(events[0]?.previousHash).toBeNull();
        expect(events[1]?.previousHash).toBe(events[0]?.hash);
        expect(events[2]?.previousHash).toBe(events[1]?.hash);
        for (const e of events) expect(computeEventHash(e)).toBe(e.hash);
        expect(await verifyStream(events)).toMatchObject({ ok: true, count: 3, lastHash: events[2]?.hash });
      });

      it('reports the first broken link of a tampered copy', async () => {
        const s = streamName('tamper');
        await store.appendToStream(
          s,
          Array.from({ length: 5 }, (_, i) => ev('T', { i })),
        );
        const events = await collect(store.readStream(s));
        const tampered = events.map((e, i) => (i === 3 ? { ...e, data: { i: 33 } } : e));
        expect(await verifyStream(tampered)).toMatchObject({
          ok: false,
          reason: 'hash-mismatch',
          brokenAt: { revision: 3 },
        });
        const reordered = [events[0], events[2], events[1]] as RecordedEvent[];
        expect(await verifyStream(reordered)).toMatchObject({ ok: false, brokenAt: { index: 1 } });
      });
    });

    describe('bad input writes nothing', () => {
      const rejects = async (stream: string, events: unknown, errorType: new (...args: never[]) => Error) => {
        const error = await store.appendToStream(stream, events as EventData[]).catch((e) => e);
        expect(error).toBeInstanceOf(errorType);
        if (typeof stream === 'string' && stream.startsWith('contract-'))
          await expect(store.streamRevision(stream)).resolves.toBeNull();
      };

      it('rejects bad stream names', async () => {
        await rejects('', [ev()], InvalidStreamNameError);
        await rejects(`contract-${'x'.repeat(200)}`, [ev()], InvalidStreamNameError);
        await rejects('contract-bell\u0007', [ev()], InvalidStreamNameError);
        await rejects('contract-new\nline', [ev()], InvalidStreamNameError);
        // Unpaired surrogates have no UTF-8 form: the store would keep another name than the one hashed.
        await rejects('contract-half\ud800', [ev()], InvalidStreamNameError);
        await rejects('contract-\udc00half', [ev()], InvalidStreamNameError);
        await rejects(42 as unknown as string, [ev()], InvalidStreamNameError);
      });

      it('rejects bad event types, ids, data and metadata; a batch with one bad event writes none', async () => {
        await rejects(streamName('bad'), [ev('')], InvalidEventError);
        await rejects(streamName('bad'), [ev('has space')], InvalidEventError);
        await rejects(streamName('bad'), [ev('1starts-with-digit')], InvalidEventError);
        await rejects(streamName('bad'), [{ type: 'T', data: { f: () => 1 } }], InvalidEventError);
        await rejects(streamName('bad'), [{ type: 'T', data: { n: 10n } }], InvalidEventError);
        await rejects(streamName('bad'), [{ type: 'T', data: { n: Number.NaN } }], InvalidEventError);
        await rejects(streamName('bad'), [{ type: 'T', data: new Date() }], InvalidEventError);
        const cyclic: Record<string, unknown> = {};
        cyclic.self = cyclic;
        await rejects(streamName('bad'), [{ type: 'T', data: cyclic }], InvalidEventError);
        await rejects(streamName('bad'), [{ type: 'T' }], InvalidEventError);
        await rejects(streamName('bad'), [{ type: 'T', data: {}, id: 'not-a-uuid' }], InvalidEventError);
        await rejects(
          streamName('bad'),
          [{ type: 'T', data: {}, metadata: { occurredAt: 'yesterday' } }],
          InvalidEventError,
        );
        await rejects(streamName('bad'), [], InvalidEventError);
        const ten = Array.from({ length: 10 }, (_, i) =>
          i === 7 ? { type: 'T', data: { bad: undefined, f: Symbol('x') } } : ev(),
        );
        await rejects(streamName('batch'), ten, InvalidEventError);
      });

      it('rejects an event over the size limit', async () => {
        const limit = options.maxEventBytes ?? 1024 * 1024;
        const big = { blob: 'x'.repeat(limit) };
        const error = await store.appendToStream(streamName('big'), [ev(), ev('Big', big)]).catch((e) => e);
        expect(error).toBeInstanceOf(EventTooLargeError);
        expect(error.index).toBe(1);
        const justUnder = { blob: 'y'.repeat(Math.floor(limit / 2)) };
        const s = streamName('fits');
        await store.appendToStream(s, [ev('Fits', justUnder)]);
        expect(await store.streamRevision(s)).toBe(0);
      });
    });

    it('answers ping', async () => {
      await expect(store.ping()).resolves.toBeUndefined();
    });
  });
}

export async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}

function assertStrictlyIncreasing(positions: string[]): void {
  for (let i = 1; i < positions.length; i++) {
    if (!((positions[i - 1] as string) < (positions[i] as string))) {
      throw new Error(`positions out of order at ${i}: ${positions[i - 1]} then ${positions[i]}`);
    }
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, what = 'operation'): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Reads subscription messages with timeouts, so a broken adapter fails instead of hanging. */
export class MessageReader {
  private readonly iterator: AsyncIterator<SubscriptionMessage>;
  private progress: string | null = null;

  constructor(
    subscription: Subscription,
    private readonly timeoutMs = 10_000,
  ) {
    this.iterator = subscription[Symbol.asyncIterator]();
  }

  async next(): Promise<SubscriptionMessage> {
    const result = await withTimeout(this.iterator.next(), this.timeoutMs, 'subscription read');
    if (result.done) throw new Error('subscription ended');
    const message = result.value;
    if (message.kind === 'event') this.progress = message.event.position;
    else if (message.position !== null) this.progress = message.position;
    return message;
  }

  async eventsUntilCaughtUp(): Promise<RecordedEvent[]> {
    const out: RecordedEvent[] = [];
    for (;;) {
      const m = await this.next();
      if (m.kind === 'caught-up') return out;
      if (m.kind === 'event') out.push(m.event);
    }
  }

  async events(count: number): Promise<RecordedEvent[]> {
    const out: RecordedEvent[] = [];
    while (out.length < count) {
      const m = await this.next();
      if (m.kind === 'event') out.push(m.event);
    }
    return out;
  }

  /** Reads until the subscription has reported progress at or past `position`. */
  async progressAtLeast(position: string): Promise<string> {
    while (this.progress === null || this.progress < position) {
      const m = await this.next();
      if (m.kind === 'event') throw new Error(`unexpected event ${m.event.type} at ${m.event.position}`);
    }
    return this.progress;
  }
}
