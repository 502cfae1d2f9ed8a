import { createServer, type Server } from 'node:net';
import {
  EventTooLargeError,
  InvalidEventError,
  InvalidExpectedRevisionError,
  InvalidReadOptionsError,
  InvalidStreamNameError,
  StoreClosedError,
  StoreUnavailableError,
} from '@muster/event-store';
import { collect } from '@muster/event-store/contract';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidConnectionStringError, openEsdbEventStore } from './index.js';

/**
 * No EventStoreDB here: a TCP listener that counts connections and hangs up on each one. It
 * shows what the adapter does when the server is gone, and that bad input never reaches the wire.
 */
let server: Server;
let connections = 0;
let connectionString: string;

beforeAll(async () => {
  server = createServer((socket) => {
    connections++;
    socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (typeof address !== 'object' || address === null) throw new Error('no port');
  connectionString = `esdb://127.0.0.1:${address.port}?tls=false`;
});
afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
});

describe('EventStoreDB adapter without a server', () => {
  it('opens without connecting, and names a bad connection string', async () => {
    const before = connections;
    const store = await openEsdbEventStore({ connectionString });
    expect(store.kind).toBe('esdb');
    expect(connections).toBe(before);
    await store.close();
    await expect(openEsdbEventStore({ connectionString: 'postgres://x' })).rejects.toBeInstanceOf(
      InvalidConnectionStringError,
    );
    await expect(openEsdbEventStore({ connectionString: '' })).rejects.toBeInstanceOf(
      InvalidConnectionStringError,
    );
  });

  it('makes a given position canonical without a server: its own form back, anything else refused', async () => {
    const store = await openEsdbEventStore({ connectionString });
    const before = connections;
    try {
      const emitted = `${'0'.repeat(19)}7/${'0'.repeat(19)}7`;
      expect(store.canonicalPosition(emitted)).toBe(emitted);
      for (const bad of ['7/7', 'abc', `${emitted}x`, '00000000000000000007-00000000000000000007']) {
        expect(() => store.canonicalPosition(bad), bad).toThrow(InvalidReadOptionsError);
      }
      expect(connections).toBe(before);
    } finally {
      await store.close();
    }
  });

  it('rejects bad input before sending anything', async () => {
    const store = await openEsdbEventStore({ connectionString, maxAppendBytes: 10_000 });
    const before = connections;
    const failures = await Promise.all([
      store.appendToStream('', [{ type: 'T', data: {} }]).catch((e) => e),
      store.appendToStream('$system', [{ type: 'T', data: {} }]).catch((e) => e),
      store.appendToStream('s', [{ type: 'has space', data: {} }]).catch((e) => e),
      store.appendToStream('s', [{ type: 'T', data: {} }], { expectedRevision: -1 }).catch((e) => e),
      store
        .appendToStream('s', [
          { type: 'T', data: { blob: 'x'.repeat(6_000) } },
          { type: 'T', data: { blob: 'y'.repeat(6_000) } },
        ])
        .catch((e) => e),
      collect(store.readAll({ fromPosition: 'not-a-position' })).catch((e) => e),
      collect(store.readAll({ fromPosition: '00000000000000000042' })).catch((e) => e),
      collect(store.readStream('s', { maxCount: -1 })).catch((e) => e),
    ]);
    expect(failures.map((e) => e?.constructor)).toEqual([
      InvalidStreamNameError,
      InvalidStreamNameError,
      InvalidEventError,
      InvalidExpectedRevisionError,
      EventTooLargeError,
      InvalidReadOptionsError,
      InvalidReadOptionsError,
      InvalidReadOptionsError,
    ]);
    // The two events fit the per-event limit; together they pass the server's append size.
    expect(failures[4]).toMatchObject({ index: 1, limit: 10_000 });
    expect(() => store.subscribeToAll({ fromPosition: 'nope' })).toThrow(InvalidReadOptionsError);
    expect(connections).toBe(before);
    await store.close();
  });

  it('reports every call that needs the server as StoreUnavailableError (retryable)', async () => {
    const store = await openEsdbEventStore({ connectionString, pingTimeoutMs: 3000 });
    const failures = await Promise.all([
      store.ping().catch((e) => e),
      store.appendToStream('mission-1', [{ type: 'T', data: {} }]).catch((e) => e),
      store.streamRevision('mission-1').catch((e) => e),
      store.headPosition().catch((e) => e),
      collect(store.readStream('mission-1')).catch((e) => e),
      collect(store.readAll()).catch((e) => e),
    ]);
    for (const failure of failures) {
      expect(failure).toBeInstanceOf(StoreUnavailableError);
      expect(failure.retryable).toBe(true);
      expect(failure.status).toBe(503);
    }
    expect(connections).toBeGreaterThan(0);
    await store.close();
  });

  it('keeps a subscription retrying while the server is away, and close ends it', async () => {
    const store = await openEsdbEventStore({
      connectionString,
      resubscribe: { initialDelayMs: 10, maxDelayMs: 50 },
    });
    const subscription = store.subscribeToAll({ fromPosition: 'start' });
    const next = subscription[Symbol.asyncIterator]().next();
    const before = connections;
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(connections).toBeGreaterThan(before);
    await subscription.close();
    await expect(next).resolves.toEqual({ value: undefined, done: true });
    await store.close();
  });

  it('after close, every call says so', async () => {
    const store = await openEsdbEventStore({ connectionString });
    await store.close();
    await store.close();
    await expect(store.appendToStream('s', [{ type: 'T', data: {} }])).rejects.toBeInstanceOf(
      StoreClosedError,
    );
    await expect(store.ping()).rejects.toBeInstanceOf(StoreClosedError);
    await expect(store.streamRevision('s')).rejects.toBeInstanceOf(StoreClosedError);
    await expect(collect(store.readAll())).rejects.toBeInstanceOf(StoreClosedError);
    expect(() => store.subscribeToAll()).toThrow(StoreClosedError);
  });
});
