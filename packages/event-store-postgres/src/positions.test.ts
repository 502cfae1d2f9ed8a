import { InvalidReadOptionsError } from '@muster/event-store';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatPosition, justAfter, justBefore, parsePosition } from './positions.js';

const xid8 = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });
const position = fc.bigInt({ min: 0n, max: 2n ** 63n - 1n });
const compareTuples = (a: [bigint, bigint], b: [bigint, bigint]) =>
  a[0] !== b[0] ? (a[0] < b[0] ? -1 : 1) : a[1] !== b[1] ? (a[1] < b[1] ? -1 : 1) : 0;
const compareStrings = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

describe('positions', () => {
  it('plain string order is (transaction id, global position) order', () => {
    fc.assert(
      fc.property(fc.tuple(xid8, position), fc.tuple(xid8, position), (a, b) => {
        const pa = formatPosition(a[0].toString(), a[1].toString());
        const pb = formatPosition(b[0].toString(), b[1].toString());
        expect(pa).toHaveLength(41);
        expect(compareStrings(pa, pb)).toBe(compareTuples(a, b));
      }),
    );
  });

  it('parses what it formats, and bounds sit right next to a position', () => {
    fc.assert(
      fc.property(xid8, position, (x, p) => {
        const cursor = parsePosition(formatPosition(x.toString(), p.toString()));
        expect(cursor).toEqual({ xid: x.toString(), pos: p.toString() });
        expect(BigInt(justAfter(cursor).pos) - BigInt(justBefore(cursor).pos)).toBe(2n);
      }),
    );
  });

  it('rejects anything that is not a position of this store', () => {
    for (const bad of [
      '',
      '12',
      '00000000000000000001',
      '00000000000000000001:00000000000000000002',
      '0000000000000000001-00000000000000000002',
      `${'9'.repeat(20)}-00000000000000000002`,
      `00000000000000000001-${'9'.repeat(20)}`,
      ' 00000000000000000001-00000000000000000002',
    ]) {
      expect(() => parsePosition(bad)).toThrow(InvalidReadOptionsError);
    }
  });
});
