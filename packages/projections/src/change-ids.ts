import { hash } from 'node:crypto';

/**
 * A stable id for a derived row: a UUID-shaped cut of sha256 over its parts. The parts name the
 * mission, what kind of row it is, what it concerns and its cause (an event id, or `at:<ms>` for
 * a change time alone caused), so a rebuild from zero yields the same ids.
 */
export function derivedId(...parts: readonly (string | number)[]): string {
  const hex = hash('sha256', parts.join('\u0000'), 'hex');
  const variant = ((Number.parseInt(hex[16] as string, 16) & 0x3) | 0x8).toString(16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-${variant}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}
