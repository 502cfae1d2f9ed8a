import { z } from 'zod';
import { DomainError } from './errors.js';

/** An ISO 8601 instant with `Z` or an offset. Compared at millisecond precision. */
export const instantSchema = z.iso.datetime({ offset: true });

const digit = (text: string, index: number): number => {
  const code = text.charCodeAt(index) - 48;
  return code >= 0 && code <= 9 ? code : Number.NaN;
};

/**
 * Epoch milliseconds of an instant in the canonical form `2024-03-01T00:00:00.000Z` (what
 * `toIso` writes and every event carries), or undefined for any other string. Exact: every
 * field is range-checked, so no invalid date is accepted. Much cheaper than the full pattern or
 * Date.parse on the hot paths of fold and evaluate.
 */
function canonicalMs(instant: string): number | undefined {
  if (
    instant.length !== 24 ||
    instant.charCodeAt(4) !== 45 || // -
    instant.charCodeAt(7) !== 45 ||
    instant.charCodeAt(10) !== 84 || // T
    instant.charCodeAt(13) !== 58 || // :
    instant.charCodeAt(16) !== 58 ||
    instant.charCodeAt(19) !== 46 || // .
    instant.charCodeAt(23) !== 90 // Z
  ) {
    return undefined;
  }
  const year =
    digit(instant, 0) * 1000 + digit(instant, 1) * 100 + digit(instant, 2) * 10 + digit(instant, 3);
  const month = digit(instant, 5) * 10 + digit(instant, 6);
  const day = digit(instant, 8) * 10 + digit(instant, 9);
  const hour = digit(instant, 11) * 10 + digit(instant, 12);
  const minute = digit(instant, 14) * 10 + digit(instant, 15);
  const second = digit(instant, 17) * 10 + digit(instant, 18);
  const milli = digit(instant, 20) * 100 + digit(instant, 21) * 10 + digit(instant, 22);
  if (
    !(year >= 1000) ||
    !(month >= 1 && month <= 12) ||
    !(day >= 1 && day <= daysInMonth(year, month)) ||
    !(hour <= 23) ||
    !(minute <= 59) ||
    !(second <= 59) ||
    !(milli >= 0)
  ) {
    return undefined;
  }
  return Date.UTC(year, month - 1, day, hour, minute, second, milli);
}

function daysInMonth(year: number, month: number): number {
  if (month === 2) {
    return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  }
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

/** Whether a value is an instant in the canonical form (`2024-03-01T00:00:00.000Z`). */
export function isCanonicalInstant(value: unknown): value is string {
  return typeof value === 'string' && canonicalMs(value) !== undefined;
}

/** Whether a value is an instant `instantSchema` accepts; the canonical form is checked cheaply. */
export function isInstant(value: unknown): value is string {
  return (
    typeof value === 'string' && (canonicalMs(value) !== undefined || instantSchema.safeParse(value).success)
  );
}

/** Milliseconds since the epoch; throws `invalid-instant` for anything else than an instant. */
export function toMs(instant: string, field = 'instant'): number {
  const fast = typeof instant === 'string' ? canonicalMs(instant) : undefined;
  if (fast !== undefined) {
    return fast;
  }
  if (!instantSchema.safeParse(instant).success) {
    throw new DomainError('invalid-instant', { field, value: instant });
  }
  return Date.parse(instant);
}

/** The canonical form of an instant: UTC, millisecond precision, as `Date#toISOString` writes it. */
export function toIso(ms: number): string {
  return new Date(ms).toISOString();
}

export function canonicalInstant(instant: string, field?: string): string {
  return canonicalMs(instant) === undefined ? toIso(toMs(instant, field)) : instant;
}

/**
 * Epoch milliseconds of an instant already validated (events reach `evolve` through decide or
 * fromStoredEvent): the canonical form directly, anything else through Date.parse.
 */
export function validatedMs(instant: string): number {
  return canonicalMs(instant) ?? Date.parse(instant);
}

/**
 * `Date.parse`, with a fast path for the canonical form (what the stores write): the same number,
 * NaN included, for every string.
 */
export function instantMs(value: string): number {
  return canonicalMs(value) ?? Date.parse(value);
}
