import { InvalidReadOptionsError, type Position } from '@muster/event-store';

/**
 * A position is `<transaction id, 20 digits>-<global position, 20 digits>`: the order in which
 * subscribers deliver events (by committing transaction, then by sequence), as a fixed-width
 * string whose plain string order is that same order. Both halves go into a checkpoint, so a
 * subscriber that resumes from it can never skip a transaction that committed late.
 */
export interface Cursor {
  /** xid8 as decimal text (up to 2^64 - 1). */
  xid: string;
  /** global_position as decimal text; may be -1 or past the last row when used as a bound. */
  pos: string;
}

const POSITION = /^(\d{20})-(\d{20})$/;
const MAX_XID8 = 2n ** 64n - 1n;
const MAX_BIGINT = 2n ** 63n - 1n;

export function formatPosition(xid: string, pos: string): Position {
  return `${xid.padStart(20, '0')}-${pos.padStart(20, '0')}`;
}

export function parsePosition(position: string): Cursor {
  const match = POSITION.exec(position);
  if (!match) {
    throw new InvalidReadOptionsError(`'${position.slice(0, 60)}' is not a position of this store`);
  }
  const xid = BigInt(match[1] as string);
  const pos = BigInt(match[2] as string);
  if (xid > MAX_XID8 || pos > MAX_BIGINT) throw new InvalidReadOptionsError('position out of range');
  return { xid: xid.toString(), pos: pos.toString() };
}

/** The exclusive bound just below an inclusive position (positions are integers). */
export function justBefore(cursor: Cursor): Cursor {
  return { xid: cursor.xid, pos: (BigInt(cursor.pos) - 1n).toString() };
}

/** The exclusive bound just above an inclusive position. */
export function justAfter(cursor: Cursor): Cursor {
  return { xid: cursor.xid, pos: (BigInt(cursor.pos) + 1n).toString() };
}

/** Before every event. */
export const ORIGIN: Cursor = { xid: '0', pos: '-1' };
