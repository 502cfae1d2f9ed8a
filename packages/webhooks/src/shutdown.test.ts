import { describe, expect, it } from 'vitest';
import { isWebhookError } from './errors.js';
import { backends } from './test-support/databases.js';
import { change, produce } from './test-support/feed.js';
import { harness } from './test-support/harness.js';

for (const backend of backends) {
  describe.skipIf(backend.skip)(
    `graceful shutdown on ${backend.name}${backend.skip ? ` (skipped: ${backend.skip})` : ''}`,
    () => {
      const h = harness(backend);

      it('waits for requests in flight within the timeout and records them', async () => {
        const { sql } = await h.db();
        const receiver = await h.receiver();
        receiver.respond = () => ({ status: 200, delayMs: 300 });
        const service = await h.service(sql, { pollIntervalMs: 20 });
        const sub = await service.createSubscription('kenya', { url: receiver.url });
        await service.start();
        await produce(sql, [change('m1')]);
        service.notifyChanges();
        await receiver.waitFor(1);
        await service.stop({ timeoutMs: 5_000 });
        const [delivery] = (await service.listDeliveries('kenya', sub.id)).items;
        expect(delivery).toMatchObject({ status: 'delivered', attempts: 1 });
        await expect(service.createSubscription('kenya', { url: receiver.url })).rejects.toSatisfy(
          (e) => isWebhookError(e) && e.code === 'webhook-service-stopped',
        );
      });

      it('gives back what is still in flight at the timeout; the next process sends it with the same webhook-id', async () => {
        const { sql } = await h.db();
        const receiver = await h.receiver();
        let slow = true;
        receiver.respond = () => ({ status: 200, delayMs: slow ? 5_000 : 0 });
        const first = await h.service(sql, { pollIntervalMs: 20, dispatcherId: 'dsp_first' });
        const sub = await first.createSubscription('kenya', { url: receiver.url });
        await first.start();
        await produce(sql, [change('m1')]);
        first.notifyChanges();
        await receiver.waitFor(1);
        const started = Date.now();
        await first.stop({ timeoutMs: 200 });
        expect(Date.now() - started).toBeLessThan(3_000);
        const [row] = await sql.query<{ lease_owner: string | null; attempts: number; status: string }>(
          'SELECT lease_owner, attempts, status FROM webhook_deliveries',
        );
        expect(row).toEqual({ lease_owner: null, attempts: 0, status: 'pending' });
        expect(await sql.query('SELECT * FROM webhook_attempts')).toEqual([]);

        slow = false;
        const second = await h.service(sql, { pollIntervalMs: 20, dispatcherId: 'dsp_second' });
        await second.start();
        await receiver.waitFor(2);
        expect(receiver.captures[1]?.id).toBe(receiver.captures[0]?.id);
        await second.stop();
        const [delivery] = (await second.listDeliveries('kenya', sub.id)).items;
        expect(delivery).toMatchObject({ status: 'delivered', attempts: 1 });
      });
    },
  );
}
