import { z } from 'zod';
import { DomainError } from './errors.js';

/** An ISO 8601 instant with `Z` or an offset. Compared at millisecond precision. */
export const instantSchema = z.iso.datetime({ offset: true });

/** Two decimal digits at `index`, or -1 if either is not a digit. */
function twoDigits(text: string, index: number): number {
  const a = text.charCodeAt(index) - 48;
  const b = text.charCodeAt(index + 1) - 48;
  return a >= 0 && a <= 9 && b >= 0 && b <= 9 ? a * 10 + b : -1;
}

const DAY_MS = 86_400_000;

/** Days from 1970-01-01 to a date of the proleptic Gregorian calendar (H. Hinnant's algorithm). */
function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (month > 2 ? month - 3 : month + 9) + 2) / 5) + day - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146_097 + doe - 719_468;
}

/**
 * Epoch milliseconds of an instant in the canonical form `2024-03-01T00:00:00.000Z` (what
 * `toIso` writes and every event carries), or undefined for any other string. Exact: every
 * field is range-checked, so no invalid date is accepted. Much cheaper than the full pattern or
 * Date.parse on the hot paths of fold and evaluate.
 */
function canonicalMs(instant: string): number | undefined {
  // The same two instants (an event's occurredAt and recordedAt) are read several times over
  // while one event is folded and evaluated: the last two answers are kept.
  if (instant === lastText) {
    return lastMs;
  }
  if (instant === otherText) {
    return otherMs;
  }
  const ms = parseCanonical(instant);
  otherText = lastText;
  otherMs = lastMs;
  lastText = instant;
  lastMs = ms;
  return ms;
}

let lastText: string | undefined;
let lastMs: number | undefined;
let otherText: string | undefined;
let otherMs: number | undefined;

function parseCanonical(instant: string): number | undefined {
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
  const century = twoDigits(instant, 0);
  const yy = twoDigits(instant, 2);
  const month = twoDigits(instant, 5);
  const day = twoDigits(instant, 8);
  const hour = twoDigits(instant, 11);
  const minute = twoDigits(instant, 14);
  const second = twoDigits(instant, 17);
  const centi = twoDigits(instant, 20);
  const milliDigit = instant.charCodeAt(22) - 48;
  const year = century * 100 + yy;
  if (
    century < 10 ||
    yy < 0 ||
    month < 1 ||
    month > 12 ||
    day < 1 ||
    day > daysInMonth(year, month) ||
    hour < 0 ||
    hour > 23 ||
    minute < 0 ||
    minute > 59 ||
    second < 0 ||
    second > 59 ||
    centi < 0 ||
    !(milliDigit >= 0 && milliDigit <= 9)
  ) {
    return undefined;
  }
  return (
    daysFromCivil(year, month, day) * DAY_MS +
    hour * 3_600_000 +
    minute * 60_000 +
    second * 1000 +
    centi * 10 +
    milliDigit
  );
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
