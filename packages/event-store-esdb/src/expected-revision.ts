import {
  ANY,
  type AppendExpectedRevision,
  type CurrentRevision,
  NO_STREAM,
  STREAM_EXISTS,
} from '@eventstore/db-client';
import type { ExpectedRevision } from '@muster/event-store';

/** The port's expected revision as @eventstore/db-client 6.x spells it (`expectedRevision`). */
export function toEsdbExpectedRevision(expected: ExpectedRevision): AppendExpectedRevision {
  switch (expected) {
    case 'any':
      return ANY;
    case 'no_stream':
      return NO_STREAM;
    case 'stream_exists':
      return STREAM_EXISTS;
    default:
      return BigInt(expected);
  }
}

export function fromEsdbExpectedRevision(expected: AppendExpectedRevision): ExpectedRevision {
  switch (expected) {
    case ANY:
      return 'any';
    case NO_STREAM:
      return 'no_stream';
    case STREAM_EXISTS:
      return 'stream_exists';
    default:
      return toRevisionNumber(expected);
  }
}

/** The revision a write must expect so that it lands right after `current` (null = no stream). */
export function expectationFor(current: number | null): AppendExpectedRevision {
  return current === null ? NO_STREAM : BigInt(current);
}

export function fromEsdbCurrentRevision(current: CurrentRevision | undefined): number | 'no_stream' {
  if (current === undefined || current === NO_STREAM) return 'no_stream';
  // The client turns a missing revision into -1 on some paths.
  if (current < 0n) return 'no_stream';
  return toRevisionNumber(current);
}

export function toRevisionNumber(revision: bigint): number {
  if (revision < 0n || revision > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new RangeError(`stream revision ${revision} is out of range`);
  }
  return Number(revision);
}
