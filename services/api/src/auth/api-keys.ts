import { hash, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * API keys are `mk_<keyId>_<secret>`: the key id is public (it names the key in logs, events and
 * the admin API), the secret is 256 random bits. Only a SHA-256 of the secret is stored; keys
 * are compared by hash in constant time.
 */
const KEY_PATTERN = /^mk_([a-z0-9]{16})_([A-Za-z0-9_-]{43})$/;

export interface GeneratedKey {
  keyId: string;
  /** The whole key, shown once. */
  token: string;
  secretHash: string;
}

export function generateApiKey(): GeneratedKey {
  const keyId = randomBytes(10).toString('hex').slice(0, 16);
  const secret = randomBytes(32).toString('base64url');
  const token = `mk_${keyId}_${secret}`;
  return { keyId, token, secretHash: hashSecret(secret) };
}

export function parseApiKey(token: string): { keyId: string; secret: string } | null {
  const match = KEY_PATTERN.exec(token);
  if (!match) return null;
  return { keyId: match[1] as string, secret: match[2] as string };
}

export function hashSecret(secret: string): string {
  return hash('sha256', secret, 'hex');
}

/** Constant-time comparison of two hex digests of equal length. */
export function sameHash(a: string, b: string): boolean {
  const left = Buffer.from(a, 'hex');
  const right = Buffer.from(b, 'hex');
  if (left.length !== right.length || left.length === 0) return false;
  return timingSafeEqual(left, right);
}

/** The key id under which a free-form bootstrap key is registered: derived, so restarts agree. */
export function bootstrapKeyId(token: string): string {
  return `boot${hashSecret(`bootstrap:${token}`).slice(0, 12)}`;
}

/** Reads `Authorization: Bearer <key>`; null when absent or malformed. */
export function bearerToken(header: string | string[] | undefined): string | null {
  if (typeof header !== 'string') return null;
  const match = /^Bearer\s+(\S{1,512})\s*$/i.exec(header);
  return match ? (match[1] as string) : null;
}
