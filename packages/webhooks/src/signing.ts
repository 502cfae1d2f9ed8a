import { createCipheriv, createDecipheriv, createHmac, randomBytes } from 'node:crypto';
import { WebhookError } from './errors.js';

/**
 * Standard Webhooks signing: `whsec_` + standard base64 of 32 random bytes, and
 * `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, one entry per live secret,
 * space-separated. The body is signed exactly as it is sent.
 */
export const SECRET_PREFIX = 'whsec_';

export function generateSecret(): string {
  return `${SECRET_PREFIX}${randomBytes(32).toString('base64')}`;
}

export function secretBytes(secret: string): Buffer {
  const decoded = Buffer.from(
    secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : secret,
    'base64',
  );
  // A small Buffer is a view into Node's shared 8 KiB pool, and posting it to the sender thread
  // copies the whole pool with it, at every attempt: the key gets a memory of its own.
  return Buffer.from(decoded.buffer.slice(decoded.byteOffset, decoded.byteOffset + decoded.length));
}

export function signatureOf(
  secret: Uint8Array,
  msgId: string,
  timestampSeconds: number,
  body: string,
): string {
  const mac = createHmac('sha256', secret)
    .update(`${msgId}.${timestampSeconds}.`)
    .update(body)
    .digest('base64');
  return `v1,${mac}`;
}

export function signatureHeader(
  secrets: readonly Uint8Array[],
  msgId: string,
  timestampSeconds: number,
  body: string,
): string {
  if (secrets.length === 1) return signatureOf(secrets[0] as Uint8Array, msgId, timestampSeconds, body);
  return secrets.map((secret) => signatureOf(secret, msgId, timestampSeconds, body)).join(' ');
}

/**
 * How secrets are kept at rest. With a 32-byte key, AES-256-GCM bound to the subscription id (a
 * row copied to another subscription does not decrypt); without one, as they are, marked so, so
 * that adding a key later re-encrypts nothing by surprise and reads keep working.
 */
export interface SecretBox {
  readonly encrypting: boolean;
  seal(secret: string, subscriptionId: string): string;
  open(stored: string, subscriptionId: string): string;
}

export function secretBox(key?: string | Buffer): SecretBox {
  const keyBytes = key === undefined ? undefined : typeof key === 'string' ? Buffer.from(key, 'base64') : key;
  if (keyBytes !== undefined && keyBytes.length !== 32) {
    throw new WebhookError(
      'webhook-invalid-config',
      `secretKey must be 32 bytes (base64 of 32 random bytes), got ${keyBytes.length}`,
    );
  }
  return {
    encrypting: keyBytes !== undefined,
    seal(secret, subscriptionId) {
      if (!keyBytes) return `plain:${secret}`;
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', keyBytes, iv);
      cipher.setAAD(Buffer.from(subscriptionId));
      const sealed = Buffer.concat([cipher.update(secret, 'utf8'), cipher.final()]);
      return `gcm:${Buffer.concat([iv, cipher.getAuthTag(), sealed]).toString('base64')}`;
    },
    open(stored, subscriptionId) {
      if (stored.startsWith('plain:')) return stored.slice('plain:'.length);
      if (!stored.startsWith('gcm:') || !keyBytes) {
        throw new WebhookError(
          'webhook-secret-unreadable',
          `a signing secret of ${subscriptionId} is encrypted and no secretKey is configured`,
        );
      }
      try {
        const raw = Buffer.from(stored.slice('gcm:'.length), 'base64');
        const decipher = createDecipheriv('aes-256-gcm', keyBytes, raw.subarray(0, 12));
        decipher.setAAD(Buffer.from(subscriptionId));
        decipher.setAuthTag(raw.subarray(12, 28));
        return Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString('utf8');
      } catch (error) {
        throw new WebhookError(
          'webhook-secret-unreadable',
          `a signing secret of ${subscriptionId} does not decrypt with the configured secretKey`,
          {},
          { cause: error },
        );
      }
    },
  };
}
