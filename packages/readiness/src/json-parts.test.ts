import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { jsonParts } from './json-parts.js';
import { deserializeState, fold, serializeState, serializeStateParts } from './state.js';
import { historyArb } from './test-support/arbitraries.js';
import { syntheticMission } from './test-support/synthetic.js';

/** Plain data as states hold it, nested deep and wide enough to be walked, with undefined members. */
const plainArb = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constant(null),
    fc.boolean(),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.integer(),
    fc.string({ unit: 'binary' }),
    fc.array(tie('value'), { maxLength: 40 }),
    fc.dictionary(fc.string(), fc.option(tie('value'), { nil: undefined }), { maxKeys: 40 }),
  ),
})).value;

describe('jsonParts', () => {
  it('joins to exactly JSON.stringify, for any plain data, part size and leaf size', () => {
    fc.assert(
      fc.property(plainArb, fc.integer({ min: 1, max: 5000 }), fc.nat(64), (value, size, leaf) => {
        expect([...jsonParts(value, size, leaf)].join('')).toBe(JSON.stringify(value));
      }),
      { numRuns: 300 },
    );
  });

  it('writes what JSON.stringify writes for undefined, functions and NaN in arrays and objects', () => {
    const wide = Array.from({ length: 3000 }, (_, i) => ({
      i,
      skip: undefined,
      fn: () => i,
      nan: Number.NaN,
    }));
    const value = {
      wide,
      holes: [undefined, () => 1, Symbol('s'), Number.POSITIVE_INFINITY],
      at: new Date(0),
    };
    expect([...jsonParts(value, 100)].join('')).toBe(JSON.stringify(value));
  });

  it('never holds the whole text: parts stay near their size for a large state', () => {
    const state = fold(syntheticMission(20_000).events);
    const whole = serializeState(state);
    const size = 16 * 1024;
    const parts = [...serializeStateParts(state, size)];
    expect(parts.join('')).toBe(whole);
    expect(parts.length).toBeGreaterThan(whole.length / (2 * size));
    // A part ends at the first subtree (of at most 2,048 values) that takes it past its size.
    for (const part of parts) expect(part.length).toBeLessThan(size + 128 * 1024);
    expect(deserializeState(parts.join(''))).toEqual(state);
  });

  it('gives the serialised state of any valid history', () => {
    fc.assert(
      fc.property(historyArb, fc.integer({ min: 1, max: 2000 }), (history, size) => {
        expect([...serializeStateParts(history.state, size)].join('')).toBe(serializeState(history.state));
      }),
      { numRuns: 50 },
    );
  });

  it('refuses a part size that is not positive', () => {
    expect(() => [...jsonParts({}, 0)]).toThrow(RangeError);
  });
});
