import { canonicalJson, computeEventHash, type RecordedEvent, verifyStream } from '@muster/event-store';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  approximateAppendBytes,
  ENVELOPE_KEY,
  isSystemEvent,
  packMetadata,
  toEsdbEventData,
  toRecordedEvent,
  unpackMetadata,
} from './envelope.js';
import { encodePosition } from './positions.js';
import { decoded, foreignRecord, sealBatch, storedOf } from './testing/wire.js';

const json = fc.jsonValue({ maxDepth: 3 });
const metadataArb = fc.record(
  {
    actor: fc.record({ agency: fc.string(), keyId: fc.string() }),
    commandId: fc.string(),
    correlationId: fc.string(),
    causationId: fc.string(),
    occurredAt: fc
      .date({ min: new Date('1990-01-01'), max: new Date('2090-01-01'), noInvalidDate: true })
      .map((d) => d.toISOString()),
    $muster: json,
    custom: json,
  },
  { requiredKeys: [] },
);

function roundTrip(
  events: Array<{ type: string; data: unknown; metadata?: Record<string, unknown> }>,
): RecordedEvent[] {
  const sealed = sealBatch('mission-haiti', events);
  return sealed.map((s, i) => {
    const recorded = toRecordedEvent(decoded(storedOf(s, BigInt(1000 + i * 200))).event as never);
    if (!recorded) throw new Error('lost the envelope');
    return recorded;
  });
}

describe('metadata envelope', () => {
  it('round-trips data and the caller metadata through the client encoding, and the chain verifies', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ data: json, metadata: metadataArb }), { minLength: 1, maxLength: 5 }),
        async (batch) => {
          const events = batch.map((b) => ({ type: 'LogisticsPledged', data: b.data, metadata: b.metadata }));
          const recorded = roundTrip(events);
          recorded.forEach((r, i) => {
            const given = events[i] as (typeof events)[number];
            expect(r.data).toEqual(JSON.parse(canonicalJson(given.data)));
            const { occurredAt, ...rest } = r.metadata;
            const { occurredAt: givenOccurredAt, ...givenRest } = given.metadata;
            // Keys the caller set to undefined are absent, as in every store.
            expect(rest).toEqual(JSON.parse(canonicalJson(givenRest)));
            expect(occurredAt).toBe(givenOccurredAt ?? r.recordedAt);
            expect(computeEventHash(r)).toBe(r.hash);
          });
          expect(await verifyStream(recorded)).toMatchObject({ ok: true, count: events.length });
        },
      ),
      { numRuns: 150 },
    );
  });

  it('keeps its own fields out of the metadata the caller reads back, even a caller key named $muster', () => {
    const [r] = roundTrip([
      { type: 'T', data: {}, metadata: { $muster: 'mine', correlationId: 'c-1', causationId: 'k-1' } },
    ]);
    expect(r?.metadata).toEqual({
      $muster: 'mine',
      correlationId: 'c-1',
      causationId: 'k-1',
      occurredAt: '2024-03-11T09:00:00.000Z',
    });
    expect(r?.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(r?.previousHash).toBeNull();
    expect(r?.position).toBe(encodePosition({ commit: 1000n, prepare: 1000n }));
  });

  it("copies correlation and causation ids where EventStoreDB's projections look for them", () => {
    const [sealed] = sealBatch('s-1', [
      { type: 'T', data: 1, metadata: { correlationId: 'c', causationId: 'k' } },
    ]);
    const outer = JSON.parse(packMetadata(sealed as never));
    expect(outer.$correlationId).toBe('c');
    expect(outer.$causationId).toBe('k');
    expect(Object.keys(outer[ENVELOPE_KEY]).sort()).toEqual([
      'hash',
      'metadata',
      'previousHash',
      'recordedAt',
      'v',
    ]);
    const [plain] = sealBatch('s-1', [{ type: 'T', data: 1 }]);
    expect(Object.keys(JSON.parse(packMetadata(plain as never)))).toEqual([ENVELOPE_KEY]);
  });

  it('sends metadata as a plain Uint8Array, the only form the client passes through untouched', () => {
    const [sealed] = sealBatch('s-1', [{ type: 'T', data: { a: 1 } }]);
    const data = toEsdbEventData(sealed as never);
    expect(data.metadata?.constructor).toBe(Uint8Array);
    expect(data.contentType).toBe('application/json');
    expect(data.id).toBe(sealed?.id);
  });

  it('recognises events it did not write', () => {
    expect(
      toRecordedEvent(decoded(foreignRecord('orders-1', 0, 'OrderPlaced', 5n)).event as never),
    ).toBeNull();
    for (const bad of [
      null,
      'text',
      [],
      {},
      { $muster: null },
      {
        $muster: {
          v: 2,
          hash: 'a'.repeat(64),
          previousHash: null,
          recordedAt: 'x',
          metadata: { occurredAt: 'x' },
        },
      },
      {
        $muster: { v: 1, hash: 'nothex', previousHash: null, recordedAt: 'x', metadata: { occurredAt: 'x' } },
      },
      {
        $muster: {
          v: 1,
          hash: 'a'.repeat(64),
          previousHash: 'short',
          recordedAt: 'x',
          metadata: { occurredAt: 'x' },
        },
      },
      { $muster: { v: 1, hash: 'a'.repeat(64), previousHash: null, recordedAt: 'x', metadata: {} } },
      { $muster: { v: 1, hash: 'a'.repeat(64), previousHash: null, metadata: { occurredAt: 'x' } } },
    ]) {
      expect(unpackMetadata(bad)).toBeNull();
    }
  });

  it('tells system events apart', () => {
    expect(isSystemEvent('$muster-eventid-1', 'X')).toBe(true);
    expect(isSystemEvent('mission-1', '$metadata')).toBe(true);
    expect(isSystemEvent('mission-1', 'CouncilApproved')).toBe(false);
  });

  it('over-estimates what an append will weigh on the server, never under', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ data: json, metadata: metadataArb }), { minLength: 1, maxLength: 4 }),
        (batch) => {
          const events = batch.map((b) => ({ type: 'T', data: b.data, metadata: b.metadata }));
          const sealed = sealBatch('s', events, { startRevision: 3, previousHash: 'b'.repeat(64) });
          const estimates = approximateAppendBytes(
            events.map((e, i) => ({
              id: sealed[i]?.id as string,
              type: 'T',
              dataJson: canonicalJson(e.data),
              metadata: { ...e.metadata },
            })) as never,
          );
          sealed.forEach((s, i) => {
            const data = toEsdbEventData(s);
            const actual =
              Buffer.byteLength(JSON.stringify(data.data)) + (data.metadata as Uint8Array).byteLength;
            expect(estimates[i]).toBeGreaterThanOrEqual(actual);
          });
        },
      ),
    );
  });
});
