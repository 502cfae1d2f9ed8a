import type { AddressInfo } from 'node:net';
import { connect } from 'node:net';
import Fastify from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { MAX_LIVE_KEYS_PER_AGENCY } from './auth/agencies.js';
import { registerErrorHandling } from './errors.js';
import { RouteRegistry } from './routing.js';
import { ADMIN_KEY, startTestService, type TestService } from './testing/harness.js';

describe('abuse and secrets', () => {
  let svc: TestService | undefined;
  afterEach(async () => {
    await svc?.close();
    svc = undefined;
  });

  it('limits each key: 429 with Retry-After past the budget, other keys unaffected', async () => {
    svc = await startTestService({ env: { MUSTER_RATE_LIMIT_PER_MINUTE: '12' } });
    const other = await svc.agency('other', ['auditor']);
    const statuses: number[] = [];
    let limited: Awaited<ReturnType<TestService['request']>> | undefined;
    for (let i = 0; i < 5; i++) {
      const res = await svc.request('GET', '/v1/me');
      statuses.push(res.statusCode);
      if (res.statusCode === 429) limited = res;
    }
    expect(statuses).toContain(429);
    expect(limited?.headers['retry-after']).toMatch(/^\d+$/);
    expect(limited?.json()).toMatchObject({ code: 'rate-limited', status: 429 });
    expect((await svc.request('GET', '/v1/me', { key: other })).statusCode).toBe(200);
  });

  it('answers requests the HTTP parser refuses as problems too: a URL past the header limit, garbage', async () => {
    svc = await startTestService();
    await svc.app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = svc.app.server.address() as AddressInfo;
    const raw = (request: string) =>
      new Promise<string>((resolve, reject) => {
        const socket = connect(port, '127.0.0.1', () => socket.end(request));
        let answer = '';
        socket.on('data', (chunk) => {
          answer += chunk;
        });
        socket.on('close', () => resolve(answer));
        socket.on('error', reject);
      });
    const long = await raw(`GET /v1/missions?x=${'a'.repeat(20_000)} HTTP/1.1\r\nHost: x\r\n\r\n`);
    expect(long).toMatch(/^HTTP\/1\.1 431 /);
    expect(long).toContain('Content-Type: application/problem+json');
    expect(JSON.parse(long.slice(long.indexOf('\r\n\r\n') + 4))).toMatchObject({
      status: 431,
      code: 'headers-too-large',
    });
    const garbage = await raw('THIS IS NOT HTTP\r\n\r\n');
    expect(garbage).toMatch(/^HTTP\/1\.1 400 /);
    expect(JSON.parse(garbage.slice(garbage.indexOf('\r\n\r\n') + 4))).toMatchObject({ code: 'bad-request' });
  });

  it('logs probes and scrapes only when they go wrong, and every API request', async () => {
    svc = await startTestService();
    const before = svc.logs.length;
    for (const url of ['/health/live', '/health/ready', '/metrics']) {
      expect((await svc.request('GET', url, { key: null })).statusCode).toBe(200);
    }
    expect((await svc.request('GET', '/v1/me')).statusCode).toBe(200);
    const lines = svc.logs.slice(before).join('');
    expect(lines).toContain('/v1/me');
    expect(lines).not.toMatch(/\/health\/|\/metrics/);
  });

  it('says in muster_store_writable when appends fail for lack of space, and when they work again', async () => {
    svc = await startTestService();
    const kenya = await svc.agency('kenya', ['coordinator']);
    const define = (id: string) =>
      svc?.request('POST', '/v1/missions', { key: kenya, body: { id, template: 'mss-haiti' } });
    const writable = async () =>
      /^muster_store_writable (\d)$/m.exec(
        (await svc?.request('GET', '/metrics', { key: null }))?.body ?? '',
      )?.[1];
    expect(await writable()).toBe('1');
    const sql = (
      svc.store as unknown as { sql: { query(text: string): Promise<Array<Record<string, number>>> } }
    ).sql;
    const [{ page_count: pages = 0 } = {}] = await sql.query('PRAGMA page_count');
    await sql.query(`PRAGMA max_page_count = ${pages}`);
    // The free pages left in the file go first: define missions until the file cannot grow.
    let status = 201;
    for (let i = 0; i < 200 && status === 201; i++) status = (await define(`no-room-${i}`))?.statusCode ?? 0;
    expect(status).toBe(507);
    expect(await writable()).toBe('0');
    await sql.query('PRAGMA max_page_count = 1073741823');
    expect((await define('room-again'))?.statusCode).toBe(201);
    expect(await writable()).toBe('1');
  });

  it('caps the live keys of an agency, since each key has a rate budget of its own', async () => {
    svc = await startTestService();
    const key = await svc.agency('many-keys', ['donor']);
    const issue = () => svc?.request('POST', '/v1/agencies/many-keys/keys', { key, body: { label: 'more' } });
    const made: string[] = [];
    for (let i = 1; i < MAX_LIVE_KEYS_PER_AGENCY; i++) {
      const res = await issue();
      expect(res?.statusCode).toBe(201);
      made.push(res?.json().keyId);
    }
    const refused = await issue();
    expect(refused?.statusCode).toBe(409);
    expect(refused?.headers['content-type']).toContain('application/problem+json');
    expect(refused?.json()).toMatchObject({ code: 'conflict', limit: MAX_LIVE_KEYS_PER_AGENCY });
    // A revoked key no longer counts.
    expect((await svc.request('DELETE', `/v1/agencies/many-keys/keys/${made[0]}`, { key })).statusCode).toBe(
      204,
    );
    expect((await issue())?.statusCode).toBe(201);
  });

  it('limits failed authentication per client address', async () => {
    svc = await startTestService({ env: { MUSTER_RATE_LIMIT_PER_MINUTE: '12' } });
    const statuses = new Set<number>();
    for (let i = 0; i < 30; i++)
      statuses.add((await svc.request('GET', '/v1/me', { key: `wrong-${i}` })).statusCode);
    expect([...statuses].sort()).toEqual([401, 429]);
  });

  it('refuses a request whose key was revoked, or expired, while its body was still arriving', async () => {
    svc = await startTestService();
    await svc.app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = svc.app.server.address() as AddressInfo;
    const service = svc;
    await service.request('POST', '/v1/missions', { body: { id: 'in-flight', template: 'mss-haiti' } });
    await service.agency('slow-donor', ['donor'], ['in-flight']);
    const issue = async (body: Record<string, unknown>) =>
      (await service.request('POST', '/v1/agencies/slow-donor/keys', { body })).json() as {
        key: string;
        keyId: string;
      };
    // Headers and half the body now; the rest once `meanwhile` has run.
    const slowPledge = async (key: string, pledgeId: string, meanwhile: () => Promise<void>) => {
      const body = JSON.stringify({
        pledgeId,
        pledger: 'slow-donor',
        capability: 'airlift',
        quantity: 1,
        unit: 'aircraft',
      });
      const socket = connect(port, '127.0.0.1');
      await new Promise((resolve) => socket.once('connect', resolve));
      let answer = '';
      socket.on('data', (chunk) => {
        answer += chunk;
      });
      const closed = new Promise((resolve) => socket.on('close', resolve));
      socket.write(
        `POST /v1/missions/in-flight/commands/pledge-logistics HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer ${key}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body.slice(0, 10)}`,
      );
      await new Promise((resolve) => setTimeout(resolve, 100));
      await meanwhile();
      socket.write(body.slice(10));
      await closed;
      return answer;
    };
    const events = await svc.eventCount();
    const revoked = await issue({ label: 'stolen' });
    const afterRevoke = await slowPledge(revoked.key, 'late-1', async () => {
      const res = await service.request('DELETE', `/v1/agencies/slow-donor/keys/${revoked.keyId}`);
      expect(res.statusCode).toBe(204);
    });
    expect(afterRevoke).toMatch(/^HTTP\/1\.1 401 /);
    expect(afterRevoke).toContain('"code":"unauthorized"');
    const expiring = await issue({
      label: 'short',
      expiresAt: new Date(svc.clock.now.getTime() + 60_000).toISOString(),
    });
    const afterExpiry = await slowPledge(expiring.key, 'late-2', async () => {
      service.clock.now = new Date(service.clock.now.getTime() + 120_000);
    });
    expect(afterExpiry).toMatch(/^HTTP\/1\.1 401 /);
    // Nothing but the two key issues and the revocation was appended.
    expect(await svc.eventCount()).toBe(events + 3);
  });

  it('keeps keys, secrets and Authorization headers out of every log line, even at trace level', async () => {
    svc = await startTestService({ env: { LOG_LEVEL: 'trace' } });
    const key = await svc.agency('leaky', ['coordinator']);
    await svc.request('GET', '/v1/me', { key });
    await svc.request('GET', '/v1/me', { key: `${key}x` });
    await svc.request('POST', '/v1/missions', { key, body: { id: 'log-test', template: 'mss-haiti' } });
    const logs = svc.logs.join('');
    expect(logs.length).toBeGreaterThan(1000);
    for (const secret of [ADMIN_KEY, key, key.slice(20)]) expect(logs).not.toContain(secret);
    expect(logs.toLowerCase()).not.toContain('bearer ');
  });
});

describe('request timeouts', () => {
  it('answers 503 with Retry-After when a handler takes too long', async () => {
    const app = Fastify({ logger: false });
    registerErrorHandling(app);
    const routes = new RouteRegistry(app, () => ({ agencyId: 'a', keyId: 'k', roles: [], missions: [] }), 50);
    routes.add({
      method: 'GET',
      url: '/slow',
      operationId: 'slow',
      summary: 'slow',
      tags: [],
      public: true,
      responses: { 200: { description: 'late' } },
      handler: () => new Promise((resolve) => setTimeout(() => resolve({ late: true }), 400)),
    });
    const res = await app.inject({ method: 'GET', url: '/slow' });
    expect(res.statusCode).toBe(503);
    expect(res.headers['retry-after']).toBe('1');
    expect(res.json()).toMatchObject({ code: 'timeout' });
    await new Promise((resolve) => setTimeout(resolve, 450));
    await app.close();
  });
});
