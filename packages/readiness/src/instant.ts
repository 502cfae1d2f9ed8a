import { z } from 'zod';
import { DomainError } from './errors.js';

/** An ISO 8601 instant with `Z` or an offset. Compared at millisecond precision. */
export const instantSchema = z.iso.datetime({ offset: true });

/** Milliseconds since the epoch; throws `invalid-instant` for anything else than an instant. */
export function toMs(instant: string, field = 'instant'): number {
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
  return toIso(toMs(instant, field));
}
