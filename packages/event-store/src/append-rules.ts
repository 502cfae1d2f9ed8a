import { EventIdConflictError, WrongExpectedRevisionError } from './errors.js';
import type { EventFilter, ExpectedRevision } from './types.js';

/** Throws unless `current` (null = no stream) satisfies the expected revision. */
export function checkExpectedRevision(
  stream: string,
  expected: ExpectedRevision,
  current: number | null,
): void {
  const actual = current ?? 'no_stream';
  switch (expected) {
    case 'any':
      return;
    case 'no_stream':
      if (current !== null) throw new WrongExpectedRevisionError(stream, expected, actual);
      return;
    case 'stream_exists':
      if (current === null) throw new WrongExpectedRevisionError(stream, expected, actual);
      return;
    default:
      if (current !== expected) throw new WrongExpectedRevisionError(stream, expected, actual);
  }
}

export interface StoredIdRun {
  /** Where the batch's first id is recorded. */
  stream: string;
  revision: number;
  /** Ids recorded in that stream from `revision` on, at most as many as the batch has. */
  ids: readonly string[];
}

/**
 * Decides what an append whose first event id is already recorded means. Appending the same
 * ids again where they were first written is an idempotent success (as in EventStoreDB); any
 * other reuse of an id is a conflict; a replay at the wrong revision is a revision mismatch.
 */
export function assertIdempotentReplay(
  stream: string,
  expected: ExpectedRevision,
  batchIds: readonly string[],
  found: StoredIdRun,
  current: number | null,
): void {
  if (found.stream !== stream)
    throw new EventIdConflictError(batchIds[0] ?? '', `in stream '${found.stream}'`);
  const same = found.ids.length === batchIds.length && found.ids.every((id, i) => id === batchIds[i]);
  if (!same)
    throw new EventIdConflictError(batchIds[0] ?? '', `at revision ${found.revision} with other events`);
  const fits =
    expected === 'any' ||
    expected === 'stream_exists' ||
    (expected === 'no_stream' && found.revision === 0) ||
    (typeof expected === 'number' && found.revision === expected + 1);
  if (!fits) throw new WrongExpectedRevisionError(stream, expected, current ?? 'no_stream');
}

export function matchesFilter(filter: EventFilter | undefined, stream: string, type: string): boolean {
  if (!filter) return true;
  if (
    filter.streamPrefixes &&
    filter.streamPrefixes.length > 0 &&
    !filter.streamPrefixes.some((p) => stream.startsWith(p))
  ) {
    return false;
  }
  const byType = (filter.eventTypes?.length ?? 0) > 0 || (filter.eventTypePrefixes?.length ?? 0) > 0;
  if (byType) {
    const exact = filter.eventTypes?.includes(type) ?? false;
    const prefixed = filter.eventTypePrefixes?.some((p) => type.startsWith(p)) ?? false;
    if (!exact && !prefixed) return false;
  }
  return true;
}

/** Positions are fixed-width strings, so plain string order is log order. */
export function comparePositions(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Leading zeros by count: every event read is given a position, and padStart costs twice this. */
const ZEROS = Array.from({ length: 21 }, (_, n) => '0'.repeat(n));

/** A 64-bit unsigned sequence as a fixed-width position string. */
export function sequencePosition(sequence: number | bigint): string {
  const digits = sequence.toString();
  return digits.length >= 20 ? digits : (ZEROS[20 - digits.length] as string) + digits;
}
