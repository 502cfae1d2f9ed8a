import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { emptyMap, hashKey, mapEntries, mapGet, mapHas, mapSet, mapValues } from './pmap.js';

describe('PMap', () => {
  it('behaves like a Map under set and get', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.string({ maxLength: 6 }), fc.integer()), { maxLength: 400 }),
        (ops) => {
          const model = new Map<string, number>();
          let map = emptyMap<number>();
          for (const [key, value] of ops) {
            model.set(key, value);
            map = mapSet(map, key, value);
          }
          expect(map.size).toBe(model.size);
          for (const [key, value] of model) {
            expect(mapGet(map, key)).toBe(value);
            expect(mapHas(map, key)).toBe(true);
          }
          expect(mapGet(map, '\u0000absent')).toBeUndefined();
          expect(mapEntries(map)).toEqual([...model.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1)));
          expect(mapValues(map)).toHaveLength(model.size);
        },
      ),
    );
  });

  it('has a shape that depends only on its entries, not on the order they were set', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.string({ maxLength: 5 }), { maxLength: 200 }), (keys) => {
        const forwards = keys.reduce((map, key) => mapSet(map, key, key.length), emptyMap<number>());
        const backwards = [...keys]
          .reverse()
          .reduce((map, key) => mapSet(map, key, key.length), emptyMap<number>());
        expect(JSON.stringify(forwards)).toBe(JSON.stringify(backwards));
      }),
    );
  });

  it('handles keys whose hashes collide in all 32 bits', () => {
    // Found by brute force over base-36 counters.
    const pair: [string, string] = ['7yzx', 'e6ad'];
    expect(hashKey(pair[0])).toBe(hashKey(pair[1]));
    const [a, b] = pair;
    let map = mapSet(mapSet(emptyMap<string>(), b, 'b'), a, 'a');
    expect(mapGet(map, a)).toBe('a');
    expect(mapGet(map, b)).toBe('b');
    map = mapSet(map, a, 'a2');
    expect(map.size).toBe(2);
    expect(mapGet(map, a)).toBe('a2');
    expect(mapEntries(map).map(([key]) => key)).toEqual([a, b].sort());
    expect(JSON.stringify(mapSet(mapSet(emptyMap<string>(), a, 'a'), b, 'b'))).toBe(
      JSON.stringify(mapSet(mapSet(emptyMap<string>(), b, 'b'), a, 'a')),
    );
  });

  it('never changes an older version', () => {
    const base = ['a', 'b', 'c'].reduce((map, key) => mapSet(map, key, 1), emptyMap<number>());
    const snapshot = JSON.stringify(base);
    mapSet(mapSet(base, 'a', 2), 'd', 3);
    expect(JSON.stringify(base)).toBe(snapshot);
  });
});
