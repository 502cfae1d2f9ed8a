import { createHash } from 'node:crypto';

/** Lower-case slug, 3 to 64 characters: letters, digits and inner hyphens. */
export const MISSION_ID_PATTERN = /^[a-z0-9](?:[a-z0-9-]{1,62})[a-z0-9]$/;

export function missionStreamName(missionId: string): string {
  return `mission-${missionId}`;
}

/**
 * The id of the `index`-th event a command produces: a version-4-shaped UUID cut from
 * sha256(missionId:commandId:index). A retried command yields the same ids, so appending its
 * events again is idempotent in the store; the mission id keeps equal command ids on different
 * missions apart.
 */
export function eventIdFor(missionId: string, commandId: string, index: number): string {
  const hex = createHash('sha256').update(`${missionId}:${commandId}:${index}`).digest('hex');
  const variant = ((Number.parseInt(hex[16] as string, 16) & 0x3) | 0x8).toString(16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-${variant}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}
