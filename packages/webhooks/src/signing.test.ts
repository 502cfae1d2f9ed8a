import fc from 'fast-check';
import { Webhook } from 'standardwebhooks';
import { describe, expect, it } from 'vitest';
import { isWebhookError } from './errors.js';
import { generateSecret, SECRET_PREFIX, secretBox, secretBytes, signatureHeader } from './signing.js';

describe('Standard Webhooks signing', () => {
  it('makes whsec_ secrets of 32 random bytes', () => {
    const a = generateSecret();
    expect(a.startsWith(SECRET_PREFIX)).toBe(true);
    expect(secretBytes(a)).toHaveLength(32);
    expect(generateSecret()).not.toBe(a);
  });

  it('keeps the bytes of a secret in memory of their own (posting a pooled Buffer to the sender thread copies the pool)', () => {
    const bytes = secretBytes(generateSecret());
    expect(bytes.length).toBe(32);
    expect(bytes.buffer.byteLength).toBe(32);
    expect(bytes.equals(secretBytes(`${SECRET_PREFIX}${bytes.toString('base64')}`))).toBe(true);
  });

  it('signs what the independent standardwebhooks verifier accepts, for any id and body (property)', () => {
    fc.assert(
      fc.property(
        fc.stringMatching(/^msg_[A-Za-z0-9_-]{1,40}$/),
        fc.jsonValue(),
        fc.integer({ min: 0, max: 3 }),
        (id, value, extra) => {
          const secrets = Array.from({ length: extra + 1 }, generateSecret);
          const body = JSON.stringify({ type: 'readiness.changed', data: value });
          const now = Math.floor(Date.now() / 1000);
          const header = signatureHeader(secrets.map(secretBytes), id, now, body);
          expect(header.split(' ')).toHaveLength(secrets.length);
          for (const secret of secrets) {
            expect(() =>
              new Webhook(secret).verify(body, {
                'webhook-id': id,
                'webhook-timestamp': String(now),
                'webhook-signature': header,
              }),
            ).not.toThrow();
          }
          expect(() =>
            new Webhook(generateSecret()).verify(body, {
              'webhook-id': id,
              'webhook-timestamp': String(now),
              'webhook-signature': header,
            }),
          ).toThrow();
        },
      ),
      { numRuns: 50 },
    );
  });

  it('a changed byte of the body fails verification', () => {
    const secret = generateSecret();
    const now = Math.floor(Date.now() / 1000);
    const body = '{"type":"readiness.changed","data":{"a":"\\u001b"}}';
    const header = signatureHeader([secretBytes(secret)], 'msg_1', now, body);
    const headers = { 'webhook-id': 'msg_1', 'webhook-timestamp': String(now), 'webhook-signature': header };
    expect(() => new Webhook(secret).verify(body, headers)).not.toThrow();
    expect(() => new Webhook(secret).verify(body.replace('\\u001b', '\\u001B'), headers)).toThrow();
  });
});

describe('secrets at rest', () => {
  const key = Buffer.alloc(32, 7).toString('base64');

  it('encrypts with the key, bound to the subscription, and reads back', () => {
    const box = secretBox(key);
    const secret = generateSecret();
    const sealed = box.seal(secret, 'wh_1');
    expect(sealed).not.toContain(secret.slice(6));
    expect(sealed.startsWith('gcm:')).toBe(true);
    expect(box.open(sealed, 'wh_1')).toBe(secret);
    expect(() => box.open(sealed, 'wh_2')).toThrow(/does not decrypt/);
    expect(() => secretBox(Buffer.alloc(32, 8)).open(sealed, 'wh_1')).toThrow(/does not decrypt/);
    expect(() => secretBox().open(sealed, 'wh_1')).toThrow(/no secretKey/);
  });

  it('without a key keeps them readable (marked plain), and a key added later still reads them', () => {
    const secret = generateSecret();
    const sealed = secretBox().seal(secret, 'wh_1');
    expect(sealed).toBe(`plain:${secret}`);
    expect(secretBox(key).open(sealed, 'wh_1')).toBe(secret);
  });

  it('refuses a key of the wrong size', () => {
    try {
      secretBox(Buffer.alloc(16).toString('base64'));
      expect.unreachable();
    } catch (error) {
      expect(isWebhookError(error) && error.code).toBe('webhook-invalid-config');
    }
  });
});
