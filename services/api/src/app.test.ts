import { Writable } from 'node:stream';
import { openSqliteEventStore, type SqliteEventStore } from '@muster/event-store-sqlite';
import type { FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildApp } from './app.js';
import { loadConfig } from './config.js';
import { createLogger } from './logger.js';

describe('service skeleton', () => {
  let store: SqliteEventStore;
  let app: FastifyInstance;
  const lines: string[] = [];

  beforeEach(async () => {
    lines.length = 0;
    store = await openSqliteEventStore({ path: ':memory:' });
    const sink = new Writable({
      write(chunk, _enc, done) {
        lines.push(String(chunk));
        done();
      },
    });
    const config = loadConfig({ LOG_LEVEL: 'info' });
    app = await buildApp({ config, store, sql: store.sql, logger: createLogger(config, sink) });
  });

  afterEach(async () => {
    await app.close();
    await store.close();
  });

  it('answers the liveness probe', async () => {
    const res = await app.inject({ method: 'GET', url: '/health/live' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ status: 'ok' });
  });

  it('reports the store in the readiness probe, and fails it when the store is gone', async () => {
    const up = await app.inject({ method: 'GET', url: '/health/ready' });
    expect(up.statusCode).toBe(200);
    expect(up.json()).toMatchObject({ status: 'ok', checks: { store: { status: 'up', kind: 'sqlite' } } });
    await store.close();
    const down = await app.inject({ method: 'GET', url: '/health/ready' });
    expect(down.statusCode).toBe(503);
    expect(down.headers['content-type']).toContain('application/problem+json');
    expect(down.json()).toMatchObject({ code: 'not-ready', status: 503 });
  });

  it('still answers /metrics with muster_store_up 0 when the store is gone', async () => {
    const up = await app.inject({ method: 'GET', url: '/metrics' });
    expect(up.statusCode).toBe(200);
    expect(up.body).toMatch(/^muster_store_up 1$/m);
    await store.close();
    // The alert on muster_store_up 0 needs a scrape that succeeds while the store is down.
    const down = await app.inject({ method: 'GET', url: '/metrics' });
    expect(down.statusCode).toBe(200);
    expect(down.body).toMatch(/^muster_store_up 0$/m);
    expect(down.body).toMatch(/^muster_projection_caught_up\{projection="readiness"\} 0$/m);
  });

  it('echoes a valid request id and makes one otherwise, and logs with it', async () => {
    // A route that logs at info (probes log only when they go wrong).
    const given = await app.inject({
      method: 'GET',
      url: '/openapi.json',
      headers: { 'x-request-id': 'abc-123' },
    });
    expect(given.headers['x-request-id']).toBe('abc-123');
    const made = await app.inject({
      method: 'GET',
      url: '/health/live',
      headers: { 'x-request-id': 'bad id\n' },
    });
    expect(made.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(lines.some((l) => l.includes('"reqId":"abc-123"'))).toBe(true);
  });

  it('answers unknown routes with a problem body', async () => {
    const res = await app.inject({ method: 'GET', url: '/nope?x=1' });
    expect(res.statusCode).toBe(404);
    expect(res.headers['content-type']).toBe('application/problem+json; charset=utf-8');
    expect(res.json()).toMatchObject({
      type: 'urn:muster:problem:not-found',
      code: 'not-found',
      status: 404,
    });
    expect(res.json().detail).toBe('No route for GET /nope');
  });

  it('answers a routed path under another method with 405 and the methods it allows', async () => {
    const put = await app.inject({ method: 'PUT', url: '/v1/missions/mss-haiti?x=1' });
    expect(put.statusCode).toBe(405);
    expect(put.headers['content-type']).toBe('application/problem+json; charset=utf-8');
    expect(put.headers.allow).toBe('GET, HEAD');
    expect(put.json()).toMatchObject({ code: 'method-not-allowed', allowed: ['GET', 'HEAD'] });
    const commands = await app.inject({ method: 'GET', url: '/v1/missions/m-1/commands/pledge-logistics' });
    expect(commands.statusCode).toBe(405);
    expect(commands.headers.allow).toBe('POST');
    const missions = await app.inject({ method: 'DELETE', url: '/v1/missions' });
    expect(missions.headers.allow).toBe('GET, HEAD, POST');
    // A path no route has, and one a parameter cannot span (two segments), stay 404.
    expect((await app.inject({ method: 'PUT', url: '/v1/nothing' })).statusCode).toBe(404);
    expect((await app.inject({ method: 'PUT', url: '/v1/missions/a/b' })).statusCode).toBe(404);
  });
});

describe('links without MUSTER_PUBLIC_URL', () => {
  it('starts on HOST=:: (every interface, IPv6 and IPv4), naming localhost in links', async () => {
    // Before: the fallback link base was `http://:::3000`, which the webhook service refused,
    // so the service did not start on HOST=:: unless MUSTER_PUBLIC_URL was set.
    const store = await openSqliteEventStore({ path: ':memory:' });
    const config = loadConfig({ LOG_LEVEL: 'silent', HOST: '::' });
    const app = await buildApp({ config, store, sql: store.sql, logger: createLogger(config) });
    try {
      expect((await app.inject({ method: 'GET', url: '/health/live' })).statusCode).toBe(200);
    } finally {
      await app.close();
      await store.close();
    }
  });
});
