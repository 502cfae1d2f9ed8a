import type { LookupAddress } from 'node:dns';
import type { SqlClient } from '@muster/event-store';
import { afterEach } from 'vitest';
import { createWebhookService, type WebhookService, type WebhookServiceOptions } from '../service.js';
import type { Backend, OpenedSql } from './databases.js';
import { ManualClock, Receiver } from './receiver.js';

/**
 * Name resolution for tests (the sandbox has no DNS): names under example.org resolve to a
 * public documentation-free address, the rest of the table as given, anything else is unknown.
 */
export function tableResolver(table: Record<string, string[]> = {}) {
  return async (hostname: string): Promise<LookupAddress[]> => {
    const addresses = table[hostname] ?? (hostname.endsWith('example.org') ? ['93.184.216.34'] : undefined);
    if (!addresses)
      throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' });
    return addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  };
}

/** Per-test resources, closed after each test in reverse order. */
export function harness(backend: Backend) {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });
  return {
    async db(): Promise<OpenedSql> {
      const db = await backend.open();
      cleanups.push(() => db.close());
      return db;
    },
    async receiver(clock?: { now(): number }): Promise<Receiver> {
      const receiver = await new Receiver(clock).start();
      cleanups.push(() => receiver.stop());
      return receiver;
    },
    async service(sql: SqlClient, options: Partial<WebhookServiceOptions> = {}): Promise<WebhookService> {
      const service = createWebhookService({
        sql,
        publicUrl: 'https://muster.example.org/',
        allowHttp: true,
        allowCidrs: ['127.0.0.0/8'],
        random: () => 0.5,
        requestTimeoutMs: 5_000,
        leaseMs: 10_000,
        resolve: tableResolver(),
        ...options,
      });
      await service.migrate();
      cleanups.push(() => service.stop({ timeoutMs: 1_000 }));
      return service;
    },
    clock: () => new ManualClock(),
  };
}

/** Plans and sends until nothing is due on the (manual) clock. */
export async function drain(service: WebhookService): Promise<number> {
  await service.planner.catchUp();
  return service.dispatcher.runOnce();
}

/**
 * Drives a manual clock through the retry schedule: sends what is due, then jumps to the next
 * retry, until nothing waits (or `until` says stop). Returns the number of attempts made.
 */
export async function settle(
  service: WebhookService,
  sql: SqlClient,
  clock: ManualClock,
  options: { maxSteps?: number; until?: () => boolean | Promise<boolean> } = {},
): Promise<number> {
  let attempts = 0;
  for (let step = 0; step < (options.maxSteps ?? 500); step++) {
    attempts += await drain(service);
    if (options.until && (await options.until())) return attempts;
    const [row] = await sql.query<{ next: number | string | null }>(
      `SELECT MIN(d.next_attempt_at) AS next FROM webhook_deliveries d JOIN webhook_subscriptions s ON s.id = d.subscription_id
       WHERE d.status = 'pending' AND s.status = 'enabled' AND d.next_attempt_at > $1`,
      [clock.now()],
    );
    if (row?.next === null || row?.next === undefined) return attempts;
    clock.t = Number(row.next);
  }
  throw new Error('the outbox did not settle');
}
