import { randomUUID } from 'node:crypto';

/**
 * A time-ordered UUID (RFC 9562 version 7): 48 bits of Unix milliseconds, then randomness.
 * Ids generated for events that carry none are of this kind so that the unique index on event
 * ids grows at its right edge instead of touching a random page per insert. The random bits come
 * from randomUUID, which draws from a pooled entropy buffer (randomBytes per id costs a syscall).
 */
export function uuidv7(now: number = Date.now()): string {
  const random = randomUUID();
  const ms = now.toString(16).padStart(12, '0').slice(-12);
  const variant = ((Number.parseInt(random[19] as string, 16) & 0x3) | 0x8).toString(16);
  return `${ms.slice(0, 8)}-${ms.slice(8, 12)}-7${random.slice(15, 18)}-${variant}${random.slice(20, 23)}-${random.slice(24)}`;
}
