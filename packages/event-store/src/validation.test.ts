import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InvalidStreamNameError } from './errors.js';
import { isIsoInstant, normaliseInstant, validateStreamName } from './validation.js';

const pad = (n: number, width = 2) => String(n).padStart(width, '0');
const daysIn = (year: number, month: number) => new Date(Date.UTC(year, month, 0)).getUTCDate();

describe('normaliseInstant', () => {
  it('reads every existing UTC time to the same instant, in the canonical form', () => {
    fc.assert(
      fc.property(
        fc.date({
          min: new Date('0001-01-01T00:00:00Z'),
          max: new Date('9999-12-31T23:59:59.999Z'),
          noInvalidDate: true,
        }),
        (date) => {
          const canonical = date.toISOString();
          expect(normaliseInstant(canonical)).toBe(canonical);
          expect(normaliseInstant(canonical.replace('Z', '+00:00'))).toBe(canonical);
        },
      ),
    );
  });

  it('refuses a day past the end of its month, whatever the year, instead of rolling it over', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 9999 }),
        fc.integer({ min: 1, max: 12 }),
        fc.integer({ min: 1, max: 31 }),
        (year, month, day) => {
          const text = `${pad(year, 4)}-${pad(month)}-${pad(day)}T12:00:00Z`;
          if (day > daysIn(year, month)) {
            expect(normaliseInstant(text), text).toBeNull();
            expect(isIsoInstant(text), text).toBe(false);
          } else {
            expect(normaliseInstant(text), text).toBe(
              `${pad(year, 4)}-${pad(month)}-${pad(day)}T12:00:00.000Z`,
            );
          }
        },
      ),
    );
  });

  it('knows leap years, and refuses hour 24 and months outside 1-12', () => {
    expect(normaliseInstant('2024-02-29T00:00:00Z')).toBe('2024-02-29T00:00:00.000Z');
    expect(normaliseInstant('2000-02-29T00:00:00Z')).toBe('2000-02-29T00:00:00.000Z');
    for (const bad of [
      '2023-02-29T00:00:00Z',
      '1900-02-29T00:00:00Z',
      '2024-02-30T00:00:00Z',
      '2024-04-31T00:00:00Z',
      '2024-01-01T24:00:00Z',
      '2024-00-10T00:00:00Z',
      '2024-13-10T00:00:00Z',
      '2024-01-00T00:00:00Z',
    ]) {
      expect(normaliseInstant(bad), bad).toBeNull();
    }
  });
});

describe('validateStreamName', () => {
  it('keeps paired surrogates (emoji) and refuses unpaired ones, which no UTF-8 store can hold', () => {
    expect(validateStreamName('launch 🚀')).toBe('launch 🚀');
    for (const bad of ['a\ud800', '\ud800b', 'a\udc00', '\udc00\ud800', 'x\ud83d']) {
      expect(() => validateStreamName(bad), JSON.stringify(bad)).toThrow(InvalidStreamNameError);
    }
  });
});
