import type { Position } from '@muster/event-store';

/**
 * Positions are opaque, fixed-width strings ordered by plain comparison. Lag in events can only
 * be estimated where a position carries a dense sequence: SQLite's is the sequence itself, and
 * PostgreSQL's `<xid>-<global position>` ends with one. Elsewhere (EventStoreDB byte offsets) it
 * is unknown and only "behind or not" is reported.
 */
export function sequenceOf(position: Position | null): bigint | null {
  if (position === null) return 0n;
  if (/^\d{1,20}$/.test(position)) return BigInt(position);
  const match = /^\d{20}-(\d{20})$/.exec(position);
  return match ? BigInt(match[1] as string) : null;
}

/** Events between a checkpoint and the head, when the store's positions allow counting them. */
export function lagInEvents(checkpoint: Position | null, head: Position | null): number | null {
  if (head === null) return 0;
  if (checkpoint !== null && checkpoint >= head) return 0;
  const a = sequenceOf(checkpoint);
  const b = sequenceOf(head);
  if (a === null || b === null) return null;
  return b > a ? Number(b - a) : 0;
}

export function atOrAfter(position: Position | null, target: Position): boolean {
  return position !== null && position >= target;
}
