import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { instantMs, instantSchema, isCanonicalInstant, toMs } from './instant.js';

const MIN = Date.UTC(1000, 0, 1);
const MAX = Date.UTC(9999, 11, 31, 23, 59, 59, 999);
const sameNumber = (a: number, b: number) => (Number.isNaN(a) ? Number.isNaN(b) : a === b);

describe('instants in the canonical form', () => {
  it('read as Date.parse reads them, from year 1000 to 9999', () => {
    fc.assert(
      fc.property(fc.integer({ min: MIN, max: MAX }), (ms) => {
        const text = new Date(ms).toISOString();
        expect(isCanonicalInstant(text)).toBe(true);
        expect(instantMs(text)).toBe(ms);
        expect(toMs(text)).toBe(ms);
      }),
      { numRuns: 2000 },
    );
    for (const leap of ['2024-02-29T00:00:00.000Z', '2000-02-29T23:59:59.999Z', '1600-02-29T12:00:00.000Z']) {
      expect(instantMs(leap)).toBe(Date.parse(leap));
      expect(isCanonicalInstant(leap)).toBe(true);
    }
  });

  it('anything else falls back to Date.parse, and the fast path accepts only what the schema does', () => {
    const chars = '0123456789-:TZ.+ x';
    fc.assert(
      fc.property(
        fc.integer({ min: MIN, max: MAX }),
        fc.nat(23),
        fc.nat(chars.length - 1),
        (ms, at, pick) => {
          const base = new Date(ms).toISOString();
          const text = base.slice(0, at) + chars[pick] + base.slice(at + 1);
          expect(sameNumber(instantMs(text), Date.parse(text))).toBe(true);
          if (isCanonicalInstant(text)) {
            expect(instantSchema.safeParse(text).success).toBe(true);
            expect(instantMs(text)).toBe(Date.parse(text));
          }
        },
      ),
      { numRuns: 3000 },
    );
    for (const bad of [
      '2023-02-29T00:00:00.000Z',
      '1900-02-29T00:00:00.000Z',
      '2024-04-31T00:00:00.000Z',
      '2024-13-01T00:00:00.000Z',
      '2024-00-01T00:00:00.000Z',
      '2024-01-00T00:00:00.000Z',
      '2024-01-01T24:00:00.000Z',
      '2024-01-01T00:60:00.000Z',
      '2024-01-01T00:00:60.000Z',
      '0999-12-31T23:59:59.999Z',
      '2024-01-01T00:00:00.00xZ',
      '2024-01-01T00:00:00Z',
    ]) {
      expect(isCanonicalInstant(bad)).toBe(false);
    }
  });
});
