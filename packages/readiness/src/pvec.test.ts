import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  emptyVec,
  vecFromArray,
  vecGet,
  vecInsertSorted,
  vecLast,
  vecLastIndexAtOrBefore,
  vecPush,
  vecPushAll,
  vecSliceFrom,
  vecTake,
  vecToArray,
} from './pvec.js';

const pushAll = (items: readonly number[]) =>
  items.reduce((vec, item) => vecPush(vec, item), emptyVec<number>());

describe('PVec', () => {
  it('behaves like an array under push, get and toArray, for sizes across trie levels', () => {
    for (const size of [0, 1, 31, 32, 33, 64, 65, 1024, 1056, 1057, 1088, 33 * 32 + 1, 40_000]) {
      const items = Array.from({ length: size }, (_, i) => i * 3);
      const vec = pushAll(items);
      expect(vec.n).toBe(size);
      expect(vecToArray(vec)).toEqual(items);
      for (const i of [0, 1, 31, 32, 33, 1023, 1024, 1055, 1056, size - 1]) {
        if (i >= 0 && i < size) {
          expect(vecGet(vec, i)).toBe(items[i]);
        }
      }
      expect(vecLast(vec)).toBe(items.at(-1));
    }
  });

  it('builds from an array exactly the trie that pushing builds, so equal contents serialise equally', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 3000 }), (size) => {
        const items = Array.from({ length: size }, (_, i) => i);
        expect(JSON.stringify(vecFromArray(items))).toBe(JSON.stringify(pushAll(items)));
      }),
      { numRuns: 60 },
    );
  });

  it('never changes an older version', () => {
    const base = pushAll(Array.from({ length: 100 }, (_, i) => i));
    const snapshot = JSON.stringify(base);
    const longer = vecPush(vecPush(base, 100), 101);
    const inserted = vecInsertSorted(base, 50, (x) => x);
    expect(JSON.stringify(base)).toBe(snapshot);
    expect(longer.n).toBe(102);
    expect(inserted.n).toBe(101);
  });

  it('rejects indexes out of range', () => {
    expect(() => vecGet(emptyVec(), 0)).toThrow(RangeError);
    expect(() => vecGet(pushAll([1]), 1.5)).toThrow(RangeError);
    expect(() => vecGet(pushAll([1]), -1)).toThrow(RangeError);
  });

  it('keeps items sorted on insert, equal keys in insertion order, and finds the last at or before a key', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 50 }), { maxLength: 300 }),
        fc.integer({ min: -1, max: 51 }),
        (keys, probe) => {
          let vec = emptyVec<{ key: number; seq: number }>();
          keys.forEach((key, seq) => {
            vec = vecInsertSorted(vec, { key, seq }, (item) => item.key);
          });
          const expected = keys
            .map((key, seq) => ({ key, seq }))
            .sort((a, b) => a.key - b.key || a.seq - b.seq);
          expect(vecToArray(vec)).toEqual(expected);
          const index = vecLastIndexAtOrBefore(vec, probe, (item) => item.key);
          const expectedIndex = expected.findLastIndex((item) => item.key <= probe);
          expect(index).toBe(expectedIndex);
        },
      ),
    );
  });

  it('takes a prefix and appends many as the trie pushing them one by one would build', () => {
    const sizes = fc.oneof(
      fc.integer({ min: 0, max: 100 }),
      fc.constantFrom(1024, 1056, 1057, 1088, 32 * 32 * 32 + 32, 32 * 32 * 32 + 33),
      fc.integer({ min: 0, max: 40_000 }),
    );
    fc.assert(
      fc.property(
        sizes,
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.integer({ min: 0, max: 200 }),
        (size, cut, extra) => {
          const items = Array.from({ length: size }, (_, i) => i);
          const vec = vecFromArray(items);
          const frozen = JSON.stringify(vec);
          const count = Math.floor(size * cut);
          const taken = vecTake(vec, count);
          expect(JSON.stringify(taken)).toBe(JSON.stringify(vecFromArray(items.slice(0, count))));
          expect(vecSliceFrom(vec, count)).toEqual(items.slice(count));
          const more = Array.from({ length: extra }, (_, i) => -i);
          expect(JSON.stringify(vecPushAll(taken, more))).toBe(
            JSON.stringify(vecFromArray([...items.slice(0, count), ...more])),
          );
          expect(JSON.stringify(vec)).toBe(frozen);
        },
      ),
      { numRuns: 80 },
    );
    expect(vecTake(pushAll([1, 2, 3]), 5).n).toBe(3);
    expect(vecTake(pushAll([1, 2, 3]), -1).n).toBe(0);
  });

  it('inserts backdated items at their place whatever the size, sharing the trie before them', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 5000 }),
        fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 1, maxLength: 20 }),
        (size, where) => {
          let vec = vecFromArray(Array.from({ length: size }, (_, i) => ({ key: i * 2, seq: i })));
          const expected = vecToArray(vec);
          where.forEach((w, j) => {
            const item = { key: Math.floor(w * size * 2) + 1, seq: size + j };
            const before = JSON.stringify(vec);
            const next = vecInsertSorted(vec, item, (x) => x.key);
            expect(JSON.stringify(vec)).toBe(before);
            expected.splice(expected.findLastIndex((x) => x.key <= item.key) + 1, 0, item);
            vec = next;
          });
          expect(vecToArray(vec)).toEqual(expected);
          expect(JSON.stringify(vec)).toBe(JSON.stringify(vecFromArray(expected)));
        },
      ),
      { numRuns: 60 },
    );
  });
});
