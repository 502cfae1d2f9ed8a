import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { call, createStore, type ServiceProcess, type StoreHandle, startService } from './harness.js';

/**
 * Issue 5's crash safety, seen from the operator: the embedded store has one service process, so
 * after a SIGKILL the next one must not wait out the dead one's leases before projecting and
 * sending webhooks again (15 s and 60 s).
 */
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const cleanups: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function waitFor<T>(
  what: () => Promise<T | null>,
  ms: number,
): Promise<{ value: T | null; ms: number }> {
  const started = performance.now();
  while (performance.now() - started < ms) {
    const value = await what();
    if (value !== null) return { value, ms: performance.now() - started };
    await sleep(100);
  }
  return { value: null, ms: performance.now() - started };
}

describe('a service restarted after SIGKILL on the embedded store', () => {
  it('projects and sends webhooks again at once, not after the dead process leases run out', async () => {
    const received: string[] = [];
    const receiver: Server = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk) => {
        body += chunk;
      });
      req.on('end', () => {
        received.push(body);
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise((resolve) => receiver.close(resolve)));
    const store: StoreHandle = await createStore('sqlite');
    cleanups.push(() => store.dispose());
    const env = { MUSTER_WEBHOOK_ALLOW_HTTP: '1', MUSTER_WEBHOOK_ALLOW_CIDRS: '127.0.0.0/8' };
    const leading = async (service: ServiceProcess) => {
      const status = await call(service, 'GET', '/v1/admin/projections');
      return status.json().projections?.[0]?.isLeader === true ? true : null;
    };

    const first: ServiceProcess = await startService(store, env);
    expect((await waitFor(() => leading(first), 20_000)).value).toBe(true);
    const subscribed = await call(first, 'POST', '/v1/webhooks', {
      body: { url: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook` },
    });
    expect(subscribed.status).toBe(201);
    // A delivery proves this process holds the dispatcher role before it dies.
    expect(
      (await call(first, 'POST', '/v1/missions', { body: { id: 'before-kill', template: 'mss-haiti' } }))
        .status,
    ).toBe(201);
    expect((await waitFor(async () => (received.length > 0 ? true : null), 20_000)).value).toBe(true);
    await first.stop('SIGKILL');

    const second: ServiceProcess = await startService(store, env);
    cleanups.push(() => second.stop());
    const leader = await waitFor(() => leading(second), 20_000);
    expect(leader.value).toBe(true);
    const sentBefore = received.length;
    expect(
      (await call(second, 'POST', '/v1/missions', { body: { id: 'after-kill', template: 'mss-haiti' } }))
        .status,
    ).toBe(201);
    const delivered = await waitFor(
      async () => (received.slice(sentBefore).some((b) => b.includes('after-kill')) ? true : null),
      20_000,
    );
    expect(delivered.value).toBe(true);
    process.stderr.write(
      `[e2e] restart after SIGKILL: leader again ${Math.round(leader.ms)} ms after ready; first delivery ${Math.round(delivered.ms)} ms after the command\n`,
    );
    // The dead process held a 15 s projection lease and a 60 s dispatcher lease.
    expect(leader.ms).toBeLessThan(5_000);
    expect(delivered.ms).toBeLessThan(5_000);
  });
});
