import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { uuidv7 } from '@muster/event-store';
import { openSqliteEventStore, type SqliteEventStore } from '@muster/event-store-sqlite';
import { afterEach, describe, expect, it } from 'vitest';
import { IdempotencyStore } from './idempotency.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function open(instanceId: string, clock: () => Date, store?: SqliteEventStore) {
  let opened = store;
  if (!opened) {
    const dir = mkdtempSync(join(tmpdir(), 'muster-idem-'));
    opened = await openSqliteEventStore({ path: join(dir, 'muster.db') });
    const close = opened.close.bind(opened);
    cleanups.push(async () => {
      await close();
      rmSync(dir, { recursive: true, force: true });
    });
  }
  const idempotency = new IdempotencyStore(opened.sql, clock, 30_000, instanceId);
  await idempotency.migrate();
  return { store: opened, idempotency };
}

describe('IdempotencyStore', () => {
  it('stores the command id of a new claim and gives it back to the attempt that takes it over', async () => {
    let now = Date.UTC(2024, 2, 1);
    const clock = () => new Date(now);
    const { store, idempotency: first } = await open('first', clock);
    const original = uuidv7();
    expect(await first.claim('kenya', 'k-1', 'hash', 'mss-haiti', 4, original)).toEqual({
      kind: 'claimed',
      commandId: original,
    });
    // The first holder dies with the claim in progress; another process comes after its lock.
    const second = (await open('second', clock, store)).idempotency;
    now += 60_000;
    const retry = await second.claim('kenya', 'k-1', 'hash', 'mss-haiti', 9, uuidv7());
    expect(retry).toEqual({
      kind: 'recovered',
      commandId: original,
      missionId: 'mss-haiti',
      baseRevision: 4,
    });
    // Another agency's key of the same name is its own claim, with its own id.
    const other = uuidv7();
    expect(await second.claim('canada', 'k-1', 'hash', 'mss-haiti', 9, other)).toEqual({
      kind: 'claimed',
      commandId: other,
    });
  });

  it('answers a completed key with its response, whatever id the retry proposes', async () => {
    const clock = () => new Date(Date.UTC(2024, 2, 1));
    const { idempotency } = await open('only', clock);
    await idempotency.claim('kenya', 'k-2', 'hash', null, null, uuidv7());
    const response = { status: 201, body: '{"ok":true}', headers: { etag: '"3"' } };
    await idempotency.complete('kenya', 'k-2', response);
    expect(await idempotency.claim('kenya', 'k-2', 'hash', null, null, uuidv7())).toEqual({
      kind: 'replay',
      response,
    });
    expect(await idempotency.claim('kenya', 'k-2', 'other', null, null, uuidv7())).toEqual({
      kind: 'mismatch',
    });
  });
});
