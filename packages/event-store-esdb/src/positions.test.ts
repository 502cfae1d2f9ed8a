import { InvalidReadOptionsError } from '@muster/event-store';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodePosition, encodePosition, isEsdbPosition } from './positions.js';

const MAX = (1n << 64n) - 1n;
// Mostly small offsets (a real log), sometimes the extremes of the 64-bit range.
const offset = fc.oneof(
  fc.bigInt({ min: 0n, max: 1_000_000n }),
  fc.bigInt({ min: 0n, max: MAX }),
  fc.constantFrom(0n, 1n, 9n, 10n, 99n, 100n, MAX - 1n, MAX),
);
const position = fc.record({ commit: offset, prepare: offset });

const tupleOrder = (a: { commit: bigint; prepare: bigint }, b: { commit: bigint; prepare: bigint }) =>
  a.commit !== b.commit
    ? a.commit < b.commit
      ? -1
      : 1
    : a.prepare === b.prepare
      ? 0
      : a.prepare < b.prepare
        ? -1
        : 1;
const stringOrder = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

describe('$all positions as strings', () => {
  it('plain string order is (commit, prepare) order', () => {
    fc.assert(
      fc.property(position, position, (a, b) => {
        expect(stringOrder(encodePosition(a), encodePosition(b))).toBe(tupleOrder(a, b));
      }),
      { numRuns: 2000 },
    );
  });

  it('round-trips, at a fixed width', () => {
    fc.assert(
      fc.property(position, (p) => {
        const encoded = encodePosition(p);
        expect(encoded).toHaveLength(41);
        expect(isEsdbPosition(encoded)).toBe(true);
        expect(decodePosition(encoded)).toEqual(p);
      }),
    );
  });

  it('keeps commit ahead of prepare: a later commit wins whatever the prepare', () => {
    expect(encodePosition({ commit: 2n, prepare: 0n }) > encodePosition({ commit: 1n, prepare: MAX })).toBe(
      true,
    );
    expect(encodePosition({ commit: 10n, prepare: 10n })).toBe('00000000000000000010/00000000000000000010');
  });

  it('rejects what it did not emit', () => {
    for (const bad of [
      '',
      '42',
      '00000000000000000042',
      '0000000000000000001/00000000000000000001',
      '00000000000000000001:00000000000000000001',
      '99999999999999999999/00000000000000000001',
      ' 00000000000000000001/00000000000000000001',
      42 as unknown as string,
    ]) {
      expect(() => decodePosition(bad)).toThrow(InvalidReadOptionsError);
    }
    expect(() => encodePosition({ commit: -1n, prepare: 0n })).toThrow(RangeError);
    expect(() => encodePosition({ commit: 0n, prepare: MAX + 1n })).toThrow(RangeError);
  });
});
