import { isoInstantMs } from '@muster/event-store';
import { ProjectionError } from './errors.js';

/**
 * Epoch milliseconds of an instant given from outside (a query, a CLI flag), by the event store's
 * rule: ISO 8601 with a time zone, and a date that exists (`Date.parse` alone reads 2024-02-30
 * as March 1st). Throws `invalid-instant` otherwise.
 */
export function parseInstant(value: unknown): number {
  const ms = isoInstantMs(value);
  if (ms === null) throw new ProjectionError('invalid-instant', { value: String(value).slice(0, 60) });
  return ms;
}
