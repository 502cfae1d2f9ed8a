import type { Position as EsdbPosition } from '@eventstore/db-client';
import { InvalidReadOptionsError, type Position } from '@muster/event-store';

/**
 * `$all` positions are `{ commit, prepare }` pairs of unsigned 64-bit transaction-file offsets,
 * ordered by commit then prepare. Both are written as 20 zero-padded digits, so plain string order
 * of `commit/prepare` is log order and a stored checkpoint sorts against any other position.
 */
const WIDTH = 20;
const MAX = (1n << 64n) - 1n;
const POSITION = /^(\d{20})\/(\d{20})$/;

export function encodePosition(position: EsdbPosition): Position {
  const { commit, prepare } = position;
  if (commit < 0n || prepare < 0n || commit > MAX || prepare > MAX) {
    throw new RangeError(`position out of range: ${commit}/${prepare}`);
  }
  return `${commit.toString().padStart(WIDTH, '0')}/${prepare.toString().padStart(WIDTH, '0')}`;
}

/** Parses a position this adapter emitted; anything else is a caller error. */
export function decodePosition(position: string): EsdbPosition {
  const match = typeof position === 'string' ? POSITION.exec(position) : null;
  if (!match) {
    throw new InvalidReadOptionsError(
      `'${String(position).slice(0, 50)}' is not an EventStoreDB position (expected 20 digits, '/', 20 digits)`,
    );
  }
  const commit = BigInt(match[1] as string);
  const prepare = BigInt(match[2] as string);
  if (commit > MAX || prepare > MAX) throw new InvalidReadOptionsError('position out of range');
  return { commit, prepare };
}

export function isEsdbPosition(value: unknown): value is Position {
  return typeof value === 'string' && POSITION.test(value);
}
