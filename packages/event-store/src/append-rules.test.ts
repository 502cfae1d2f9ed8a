import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { comparePositions, sequencePosition } from './append-rules.js';

describe('sequence positions', () => {
  const sequence = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });

  it('are the decimal sequence, zero-padded to 20 digits', () => {
    fc.assert(
      fc.property(sequence, (n) => {
        const position = sequencePosition(n);
        expect(position).toHaveLength(20);
        expect(BigInt(position)).toBe(n);
        expect(sequencePosition(n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n)).toBe(position);
      }),
    );
    expect(sequencePosition(0)).toBe('00000000000000000000');
    expect(sequencePosition(2n ** 64n - 1n)).toBe('18446744073709551615');
  });

  it('order as strings exactly as the sequences order as numbers', () => {
    fc.assert(
      fc.property(sequence, sequence, (a, b) => {
        expect(Math.sign(comparePositions(sequencePosition(a), sequencePosition(b)))).toBe(
          a < b ? -1 : a > b ? 1 : 0,
        );
      }),
    );
  });
});
