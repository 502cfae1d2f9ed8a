import { describe, expect, it } from 'vitest';
import { isWebhookError, type WebhookErrorCode } from './errors.js';
import { backends } from './test-support/databases.js';
import { drain, harness } from './test-support/harness.js';
import { verifyCapture } from './test-support/receiver.js';

async function expectCode(
  promise: Promise<unknown>,
  code: WebhookErrorCode,
): Promise<Record<string, unknown>> {
  try {
    await promise;
  } catch (error) {
    if (!isWebhookError(error)) throw error;
    expect(error.code).toBe(code);
    return { message: error.message, status: error.status, ...error.details };
  }
  throw new Error(`expected ${code}, but it succeeded`);
}

for (const backend of backends) {
  describe.skipIf(backend.skip)(
    `subscriptions on ${backend.name}${backend.skip ? ` (skipped: ${backend.skip})` : ''}`,
    () => {
      const h = harness(backend);

      it('creates a subscription and shows the whsec_ secret once', async () => {
        const { sql } = await h.db();
        const service = await h.service(sql);
        const created = await service.createSubscription('kenya', {
          url: 'https://hooks.example.org/muster',
          missions: ['mss-haiti'],
          eventTypes: ['readiness.changed'],
          description: 'Nairobi operations centre',
        });
        expect(created.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
        expect(created).toMatchObject({
          url: 'https://hooks.example.org/muster',
          missions: ['mss-haiti'],
          eventTypes: ['readiness.changed'],
          description: 'Nairobi operations centre',
          status: 'enabled',
          disabledReason: null,
        });
        expect(created.secrets).toEqual([{ createdAt: created.createdAt, expiresAt: null }]);
        const fetched = await service.getSubscription('kenya', created.id);
        expect(fetched).not.toHaveProperty('secret');
        expect(JSON.stringify(fetched)).not.toContain(created.secret.slice(6));
        // Defaults: every mission, every event type.
        const all = await service.createSubscription('kenya', { url: 'https://hooks.example.org/all' });
        expect(all.missions).toBe('*');
        expect(all.eventTypes).toEqual(['readiness.changed', 'precondition.changed', 'pledge.changed']);
      });

      it('caps the subscriptions of one agency, so that one key cannot multiply every change', async () => {
        const { sql } = await h.db();
        const service = await h.service(sql, { maxSubscriptionsPerAgency: 3 });
        const made: string[] = [];
        for (let i = 0; i < 3; i++)
          made.push(
            (await service.createSubscription('kenya', { url: `https://hooks.example.org/${i}` })).id,
          );
        const refused = await expectCode(
          service.createSubscription('kenya', { url: 'https://hooks.example.org/3' }),
          'webhook-subscription-limit',
        );
        expect(refused).toMatchObject({ status: 409, limit: 3 });
        expect((await service.listSubscriptions('kenya')).items).toHaveLength(3);
        // Another agency has its own allowance, and a deletion gives one back.
        await service.createSubscription('canada', { url: 'https://hooks.example.org/c' });
        await service.deleteSubscription('kenya', made[0] as string);
        await service.createSubscription('kenya', { url: 'https://hooks.example.org/again' });
      });

      it('never shows one agency the subscriptions of another', async () => {
        const { sql } = await h.db();
        const service = await h.service(sql);
        const kenya = await service.createSubscription('kenya', { url: 'https://hooks.example.org/k' });
        await service.createSubscription('canada', { url: 'https://hooks.example.org/c' });
        expect((await service.listSubscriptions('kenya')).items.map((s) => s.id)).toEqual([kenya.id]);
        await expectCode(service.getSubscription('canada', kenya.id), 'webhook-not-found');
        await expectCode(
          service.updateSubscription('canada', kenya.id, { description: 'x' }),
          'webhook-not-found',
        );
        await expectCode(service.deleteSubscription('canada', kenya.id), 'webhook-not-found');
        await expectCode(service.rotateSecret('canada', kenya.id), 'webhook-not-found');
        await expectCode(service.sendTest('canada', kenya.id), 'webhook-not-found');
        await expectCode(service.listDeliveries('canada', kenya.id), 'webhook-not-found');
        await expectCode(service.replay('canada', kenya.id, { afterChangeSeq: 0 }), 'webhook-not-found');
        await expectCode(
          service.listOperationalEvents('canada', { subscriptionId: kenya.id }),
          'webhook-not-found',
        );
        const test = await service.sendTest('kenya', kenya.id);
        await expectCode(service.getDelivery('canada', test.id), 'webhook-delivery-not-found');
        await expectCode(service.listAttempts('canada', test.id), 'webhook-delivery-not-found');
        await expectCode(service.replayDelivery('canada', test.id), 'webhook-delivery-not-found');
        expect((await service.getSubscription('kenya', kenya.id)).id).toBe(kenya.id);
      });

      it('reports every invalid field at once, with stable codes', async () => {
        const { sql } = await h.db();
        const service = await h.service(sql);
        const problem = await expectCode(
          service.createSubscription('kenya', {
            missions: [],
            eventTypes: ['readiness.changed', 'verdict.flipped'],
            description: 'x'.repeat(501),
            colour: 'blue',
          }),
          'webhook-validation-failed',
        );
        expect(problem.status).toBe(400);
        // Each field's problem is coded as the API's own validation errors are (zod's issue codes).
        const byPath = Object.fromEntries(
          (problem.errors as Array<{ path: string; code: string; in: string }>).map((e) => [
            e.path,
            `${e.in}:${e.code}`,
          ]),
        );
        expect(byPath).toEqual({
          colour: 'body:unrecognized_keys',
          description: 'body:too_big',
          'eventTypes[1]': 'body:invalid_value',
          missions: 'body:invalid_type',
          url: 'body:invalid_type',
        });
        const query = await expectCode(
          service.listSubscriptions('kenya', { limit: '0', after: 'garbage', colour: 'blue' }),
          'webhook-validation-failed',
        );
        expect(
          (query.errors as Array<{ path: string; code: string; in: string }>).map(
            (e) => `${e.path} ${e.in}:${e.code}`,
          ),
        ).toEqual([
          'colour query:unrecognized_keys',
          'after query:invalid_format',
          'limit query:invalid_value',
        ]);
        await expectCode(service.createSubscription('kenya', 'not an object'), 'webhook-validation-failed');
        await expectCode(
          service.createSubscription('kenya', { url: 'not a url' }),
          'webhook-validation-failed',
        );
        await expectCode(
          service.createSubscription('kenya', { url: 'ftp://example.org/x' }),
          'webhook-url-not-allowed',
        );
        await expectCode(
          service.createSubscription('kenya', { url: 'https://user:pw@hooks.example.org/' }),
          'webhook-url-not-allowed',
        );
        await expectCode(
          service.rotateSecret('kenya', 'wh_missing', { overlapSeconds: 1 }),
          'webhook-not-found',
        );
        const sub = await service.createSubscription('kenya', { url: 'https://hooks.example.org/k' });
        for (const overlapSeconds of [-1, 1.5, 8 * 24 * 3600, '60']) {
          await expectCode(
            service.rotateSecret('kenya', sub.id, { overlapSeconds }),
            'webhook-validation-failed',
          );
        }
        await expectCode(
          service.updateSubscription('kenya', sub.id, { enabled: 'yes' }),
          'webhook-validation-failed',
        );
        await expectCode(service.listDeliveries('kenya', sub.id, { limit: 0 }), 'webhook-validation-failed');
        await expectCode(
          service.listDeliveries('kenya', sub.id, { status: 'lost' }),
          'webhook-validation-failed',
        );
        await expectCode(service.replay('kenya', sub.id, {}), 'webhook-validation-failed');
        await expectCode(
          service.replay('kenya', sub.id, { since: '2025-01-01T00:00:00Z', afterChangeSeq: 3 }),
          'webhook-validation-failed',
        );
        // Instants by the event store's rule: a date that does not exist, or not ISO 8601.
        for (const since of ['2024-02-30T00:00:00Z', 'March 1 2024', '2024-03-01']) {
          await expectCode(service.replay('kenya', sub.id, { since }), 'webhook-validation-failed');
        }
        // Nothing was written by the refused calls.
        expect((await service.listSubscriptions('kenya')).items).toHaveLength(1);
      });

      it('requires https unless plain http is enabled', async () => {
        const { sql } = await h.db();
        const strict = await h.service(sql, { allowHttp: false });
        const problem = await expectCode(
          strict.createSubscription('kenya', { url: 'http://hooks.example.org/x' }),
          'webhook-url-not-allowed',
        );
        expect(problem.message).toMatch(/https/);
        expect(problem.status).toBe(422);
      });

      const id0 = (ids: string[]) => ids[0] as string;
      it('updates, disables and re-enables, lists in pages, and deletes', async () => {
        const { sql } = await h.db();
        const service = await h.service(sql);
        const ids: string[] = [];
        for (let i = 0; i < 5; i++) {
          ids.push((await service.createSubscription('kenya', { url: `https://hooks.example.org/${i}` })).id);
        }
        const first = await service.listSubscriptions('kenya', { limit: 2 });
        expect(first.items.map((s) => s.id)).toEqual(ids.slice(0, 2));
        const second = await service.listSubscriptions('kenya', { limit: '2', after: first.next });
        expect(second.items.map((s) => s.id)).toEqual(ids.slice(2, 4));
        const third = await service.listSubscriptions('kenya', { limit: 2, after: second.next });
        expect(third.items.map((s) => s.id)).toEqual(ids.slice(4));
        expect(third.next).toBeNull();
        // A cursor that is not an id of that list is refused, not compared as a string.
        for (const after of ['garbage', 'zzz', `${first.next} `]) {
          await expectCode(service.listSubscriptions('kenya', { after }), 'webhook-validation-failed');
          await expectCode(service.listDeliveries('kenya', id0(ids), { after }), 'webhook-validation-failed');
          await expectCode(service.listOperationalEvents('kenya', { after }), 'webhook-validation-failed');
        }
        const delivery = 'dlv_0mx2ebn6n00002c8bfacb';
        await expectCode(
          service.listSubscriptions('kenya', { after: delivery }),
          'webhook-validation-failed',
        );
        await expectCode(
          service.listDeliveries('kenya', id0(ids), { after: first.next }),
          'webhook-validation-failed',
        );
        await expectCode(
          service.listOperationalEvents('kenya', { after: delivery }),
          'webhook-validation-failed',
        );
        expect((await service.listDeliveries('kenya', id0(ids), { after: delivery })).items).toEqual([]);

        const id = ids[0] as string;
        const updated = await service.updateSubscription('kenya', id, {
          url: 'https://hooks.example.org/new',
          missions: ['b', 'a', 'a'],
          eventTypes: ['pledge.changed'],
          description: 'renamed',
        });
        expect(updated).toMatchObject({
          url: 'https://hooks.example.org/new',
          missions: ['a', 'b'],
          eventTypes: ['pledge.changed'],
          description: 'renamed',
        });
        const disabled = await service.updateSubscription('kenya', id, { enabled: false });
        expect(disabled).toMatchObject({ status: 'disabled', disabledReason: 'manual' });
        const enabled = await service.updateSubscription('kenya', id, { enabled: true });
        expect(enabled).toMatchObject({ status: 'enabled', disabledReason: null, disabledAt: null });
        await service.deleteSubscription('kenya', id);
        await expectCode(service.getSubscription('kenya', id), 'webhook-not-found');
        expect((await service.listSubscriptions('kenya')).items).toHaveLength(4);
      });

      it('rotates secrets: both sign during the overlap, the old one stops when it ends; 0 revokes at once', async () => {
        const { sql } = await h.db();
        const clock = h.clock();
        const receiver = await h.receiver(clock);
        const service = await h.service(sql, { clock });
        const sub = await service.createSubscription('kenya', { url: receiver.url });
        const rotated = await service.rotateSecret('kenya', sub.id, { overlapSeconds: 3600 });
        expect(rotated.secret).not.toBe(sub.secret);
        expect(rotated.secrets).toHaveLength(2);
        expect(rotated.secrets[1]?.expiresAt).toBe(new Date(clock.now() + 3600_000).toISOString());

        await service.sendTest('kenya', sub.id);
        await drain(service);
        const during = receiver.captures.at(-1);
        if (!during) throw new Error('no capture');
        expect(String(during.headers['webhook-signature']).split(' ')).toHaveLength(2);
        expect(verifyCapture(sub.secret, during)).toMatchObject({ type: 'webhook.test' });
        expect(verifyCapture(rotated.secret, during)).toMatchObject({ type: 'webhook.test' });

        clock.advance(3600_000 + 1);
        await service.sendTest('kenya', sub.id);
        await drain(service);
        const after = receiver.captures.at(-1);
        if (!after || after === during) throw new Error('no second capture');
        expect(String(after.headers['webhook-signature']).split(' ')).toHaveLength(1);
        expect(verifyCapture(rotated.secret, after)).toBeTruthy();
        expect(() => verifyCapture(sub.secret, after)).toThrow();

        const revoked = await service.rotateSecret('kenya', sub.id, { overlapSeconds: 0 });
        expect(revoked.secrets).toHaveLength(1);
        await service.sendTest('kenya', sub.id);
        await drain(service);
        const last = receiver.captures.at(-1);
        if (!last || last === after) throw new Error('no third capture');
        expect(verifyCapture(revoked.secret, last)).toBeTruthy();
        expect(() => verifyCapture(rotated.secret, last)).toThrow();
        expect(() => verifyCapture(sub.secret, last)).toThrow();
      });

      it('keeps at most 3 live secrets', async () => {
        const { sql } = await h.db();
        const service = await h.service(sql);
        const sub = await service.createSubscription('kenya', { url: 'https://hooks.example.org/k' });
        await service.rotateSecret('kenya', sub.id);
        const third = await service.rotateSecret('kenya', sub.id, { overlapSeconds: 60 });
        expect(third.secrets).toHaveLength(3);
        const problem = await expectCode(service.rotateSecret('kenya', sub.id), 'webhook-secret-limit');
        expect(problem.status).toBe(409);
        expect(problem.liveSecrets).toBe(3);
        const revoked = await service.rotateSecret('kenya', sub.id, { overlapSeconds: 0 });
        expect(revoked.secrets).toHaveLength(1);
      });

      it('stores secrets encrypted when a key is configured, and still signs with them', async () => {
        const { sql } = await h.db();
        const clock = h.clock();
        const receiver = await h.receiver(clock);
        const service = await h.service(sql, { clock, secretKey: Buffer.alloc(32, 3).toString('base64') });
        const sub = await service.createSubscription('kenya', { url: receiver.url });
        const stored = await sql.query<{ secret: string }>('SELECT secret FROM webhook_secrets');
        expect(stored).toHaveLength(1);
        expect(stored[0]?.secret.startsWith('gcm:')).toBe(true);
        expect(stored[0]?.secret).not.toContain(sub.secret.slice(6));
        await service.sendTest('kenya', sub.id);
        await drain(service);
        expect(receiver.captures).toHaveLength(1);
        expect(verifyCapture(sub.secret, receiver.captures[0] as never)).toBeTruthy();
      });

      it('sends a webhook.test message through the outbox and logs the attempt', async () => {
        const { sql } = await h.db();
        const clock = h.clock();
        const receiver = await h.receiver(clock);
        const service = await h.service(sql, { clock });
        const sub = await service.createSubscription('kenya', { url: receiver.url });
        const queued = await service.sendTest('kenya', sub.id);
        expect(queued).toMatchObject({ status: 'pending', trigger: 'test', eventType: 'webhook.test' });
        await drain(service);
        const capture = receiver.captures[0];
        if (!capture) throw new Error('no capture');
        expect(capture.headers['webhook-id']).toBe(queued.messageId);
        expect(capture.headers['webhook-event-type']).toBe('webhook.test');
        expect(capture.headers['webhook-attempt']).toBe('1');
        expect(capture.headers['webhook-timestamp']).toBe(String(Math.floor(clock.now() / 1000)));
        expect(verifyCapture(sub.secret, capture)).toMatchObject({
          type: 'webhook.test',
          data: { subscriptionId: sub.id },
        });
        const delivery = await service.getDelivery('kenya', queued.id);
        expect(delivery).toMatchObject({ status: 'delivered', attempts: 1, lastStatusCode: 200 });
        expect(delivery.payload).toEqual(JSON.parse(capture.rawBody));
        const attempts = await service.listAttempts('kenya', queued.id);
        expect(attempts).toEqual([
          expect.objectContaining({ attempt: 1, outcome: 'succeeded', statusCode: 200, responseBody: 'ok' }),
        ]);
      });
    },
  );
}
