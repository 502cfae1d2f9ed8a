import { Writable } from 'node:stream';
import type { EventStore } from '@muster/event-store';
import { openSqliteEventStore } from '@muster/event-store-sqlite';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { buildApp } from '../app.js';
import { loadConfig } from '../config.js';
import { createLogger } from '../logger.js';
import { bootstrapAdmin } from '../startup.js';

/** A real service on a real (SQLite) store, driven through fastify's inject(). Test-only. */
export interface TestService {
  app: FastifyInstance;
  store: EventStore;
  adminKey: string;
  logs: string[];
  clock: { now: Date };
  request(
    method: string,
    url: string,
    options?: { key?: string | null; body?: unknown; headers?: Record<string, string> },
  ): Promise<LightMyRequestResponse>;
  /** Registers an agency and returns a fresh key for it. */
  agency(id: string, roles: string[], missions?: string[]): Promise<string>;
  eventCount(): Promise<number>;
  close(): Promise<void>;
}

export const ADMIN_KEY = 'test-admin-key-0123456789abcdefghijklmnopqrstuvwxyz';

export async function startTestService(
  options: {
    path?: string;
    env?: Record<string, string>;
    /** The service's view of the store (a test that puts another writer between its calls). */
    wrapStore?: (store: EventStore) => EventStore;
  } = {},
): Promise<TestService> {
  const clock = { now: new Date('2024-03-01T12:00:00Z') };
  const store = await openSqliteEventStore({ path: options.path ?? ':memory:', clock: () => clock.now });
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      logs.push(String(chunk));
      done();
    },
  });
  const config = loadConfig({ LOG_LEVEL: 'info', MUSTER_BOOTSTRAP_ADMIN_KEY: ADMIN_KEY, ...options.env });
  const app = await buildApp({
    config,
    store: options.wrapStore ? options.wrapStore(store) : store,
    sql: store.sql,
    logger: createLogger(config, sink),
    clock: () => clock.now,
  });
  await bootstrapAdmin(app.services, config);
  const service: TestService = {
    app,
    store,
    adminKey: ADMIN_KEY,
    logs,
    clock,
    request: (method, url, opts = {}) => {
      const key = opts.key === undefined ? ADMIN_KEY : opts.key;
      return app.inject({
        method: method as 'GET',
        url,
        headers: {
          ...(key ? { authorization: `Bearer ${key}` } : {}),
          ...(opts.body !== undefined ? { 'content-type': 'application/json' } : {}),
          ...opts.headers,
        },
        ...(opts.body !== undefined
          ? { payload: typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body) }
          : {}),
      });
    },
    agency: async (id, roles, missions = ['*']) => {
      const created = await service.request('POST', '/v1/agencies', {
        body: { id, name: id, roles, missions },
      });
      if (created.statusCode !== 201)
        throw new Error(`register ${id}: ${created.statusCode} ${created.body}`);
      const key = await service.request('POST', `/v1/agencies/${id}/keys`, { body: { label: 'test' } });
      if (key.statusCode !== 201) throw new Error(`key ${id}: ${key.statusCode} ${key.body}`);
      return key.json().key as string;
    },
    eventCount: async () => {
      let n = 0;
      for await (const _ of store.readAll()) n++;
      return n;
    },
    close: async () => {
      await app.close();
      await store.close();
    },
  };
  return service;
}
