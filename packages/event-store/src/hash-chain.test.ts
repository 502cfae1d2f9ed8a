import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalJson, NotJsonError } from './canonical-json.js';
import { computeEventHash, hashInput, hashInputParts, sealEvents, verifyStream } from './hash-chain.js';
import type { RecordedEvent } from './types.js';
import { DEFAULT_LIMITS } from './types.js';
import { prepareAppend } from './validation.js';

const json = fc.jsonValue({ maxDepth: 4 }) as fc.Arbitrary<unknown>;
const uuid = fc.uuid();

function sealedChain(stream: string, datas: unknown[], ids: string[]): RecordedEvent[] {
  let n = 0;
  const prepared = prepareAppend(
    stream,
    datas.map((data, i) => ({ id: ids[i], type: 'Thing', data })),
    'any',
    DEFAULT_LIMITS,
    () => `00000000-0000-4000-8000-${String(n++).padStart(12, '0')}`,
  );
  return sealEvents({
    stream,
    startRevision: 0,
    previousHash: null,
    recordedAt: '2024-03-01T09:00:00.000Z',
    events: prepared.events,
  }).map((s, i) => ({
    id: s.id,
    stream: s.stream,
    revision: s.revision,
    position: String(i).padStart(20, '0'),
    type: s.type,
    data: JSON.parse(s.dataJson),
    metadata: JSON.parse(s.metadataJson),
    recordedAt: s.recordedAt,
    hash: s.hash,
    previousHash: s.previousHash,
  }));
}

describe('canonical JSON', () => {
  it('is stable under parse and re-serialise, whatever the key order', () => {
    fc.assert(
      fc.property(json, (value) => {
        const once = canonicalJson(value);
        expect(canonicalJson(JSON.parse(once))).toBe(once);
      }),
    );
  });

  it('sorts keys and drops undefined object fields', () => {
    expect(canonicalJson({ b: 1, a: [true, null, 'x'], c: undefined })).toBe('{"a":[true,null,"x"],"b":1}');
  });

  it('holds the same value as JSON.stringify, with every object key in code-unit order', () => {
    fc.assert(
      fc.property(json, (value) => {
        const text = canonicalJson(value);
        expect(JSON.parse(text)).toEqual(JSON.parse(JSON.stringify(value)));
        // Re-serialising with keys sorted by hand gives the same text.
        expect(text).toBe(sortedStringify(JSON.parse(JSON.stringify(value))));
      }),
    );
  });

  it('names what is not JSON and where', () => {
    const cycle: Record<string, unknown> = { a: 1 };
    cycle.self = { back: cycle };
    let deep: unknown = 1;
    for (let i = 0; i < 70; i++) deep = [deep];
    const cases: Array<[unknown, RegExp]> = [
      [{ a: { b: Number.NaN } }, /^a\.b: NaN is not a finite number$/],
      [{ list: [1, undefined] }, /^list\[1\]: undefined is not JSON$/],
      [{ when: new Date(0) }, /^when: Date is not a plain JSON object$/],
      [{ f: () => 1 }, /^f: function is not JSON$/],
      [cycle, /^self\.back: circular reference$/],
      [deep, /nested deeper than 64 levels$/],
      [{ n: 10n }, /^n: bigint is not JSON$/],
    ];
    for (const [value, message] of cases) {
      expect(() => canonicalJson(value)).toThrow(NotJsonError);
      expect(() => canonicalJson(value)).toThrow(message);
    }
  });
});

describe('hash chain', () => {
  it('hashInput is the canonical JSON of the envelope, and the parts rebuild it', () => {
    fc.assert(
      fc.property(
        uuid,
        fc.string({ maxLength: 30 }),
        json,
        fc.option(fc.string({ minLength: 64, maxLength: 64 })),
        fc.nat(),
        (id, stream, data, prev, revision) => {
          const dataJson = canonicalJson(data);
          const metadataJson = canonicalJson({ occurredAt: '2024-01-01T00:00:00.000Z' });
          const recordedAt = '2024-01-02T00:00:00.000Z';
          const input = hashInput(id, stream, revision, 'T', dataJson, metadataJson, recordedAt, prev);
          expect(input).toBe(
            canonicalJson({
              v: 1,
              id,
              stream,
              revision,
              type: 'T',
              data,
              metadata: JSON.parse(metadataJson),
              recordedAt,
              previousHash: prev,
            }),
          );
          const parts = hashInputParts(id, stream, 'T', dataJson, metadataJson, recordedAt);
          expect(
            parts.head +
              (prev === null ? 'null' : JSON.stringify(prev)) +
              parts.middle +
              revision +
              parts.tail,
          ).toBe(input);
        },
      ),
    );
  });

  it('verifies any sealed chain and catches any single-field change', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(json, { minLength: 1, maxLength: 6 }),
        fc.nat(),
        fc.constantFrom(
          'data',
          'type',
          'recordedAt',
          'metadata',
          'revision',
          'previousHash',
          'hash',
          'id',
          'stream',
        ),
        async (datas, pick, field) => {
          const ids = datas.map((_, i) => `10000000-0000-4000-8000-${String(i).padStart(12, '0')}`);
          const chain = sealedChain('s-1', datas, ids);
          expect(await verifyStream(chain)).toMatchObject({ ok: true, count: chain.length });
          for (const e of chain) expect(computeEventHash(e)).toBe(e.hash);
          const at = pick % chain.length;
          const victim = chain[at] as RecordedEvent;
          const changed: RecordedEvent = { ...victim };
          switch (field) {
            case 'data':
              changed.data = { tampered: victim.data };
              break;
            case 'type':
              changed.type = `${victim.type}X`;
              break;
            case 'recordedAt':
              changed.recordedAt = '2024-03-01T09:00:00.001Z';
              break;
            case 'metadata':
              changed.metadata = { ...victim.metadata, occurredAt: '2020-01-01T00:00:00.000Z' };
              break;
            case 'revision':
              changed.revision = victim.revision + 1;
              break;
            case 'previousHash':
              changed.previousHash = 'f'.repeat(64);
              break;
            case 'hash':
              changed.hash = '0'.repeat(64);
              break;
            case 'id':
              changed.id = '20000000-0000-4000-8000-000000000000';
              break;
            case 'stream':
              changed.stream = 's-2';
              break;
          }
          const tampered = chain.map((e, i) => (i === at ? changed : e));
          const verdict = await verifyStream(tampered);
          expect(verdict.ok).toBe(false);
          if (!verdict.ok) expect(verdict.brokenAt.index).toBeLessThanOrEqual(at + 1);
        },
      ),
    );
  });
});

/** An independent canonical form: keys compared by code unit, built by hand. */
function sortedStringify(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(sortedStringify).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${sortedStringify(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}
