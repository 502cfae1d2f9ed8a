import { randomUUID } from 'node:crypto';
import { type EventData, verifyStream, WrongExpectedRevisionError } from '@muster/event-store';
import { collect } from '@muster/event-store/contract';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openPostgresEventStore, type PostgresEventStore } from './index.js';
import { MIGRATIONS, SCHEMA_VERSION } from './schema.js';
import { createTestDatabase, type TestDatabase } from './test-support/database.js';

/** Two store instances with pools of their own behave as two service replicas on one database. */
const database = await createTestDatabase('replicas');

const ev = (type: string, data: Record<string, unknown> = {}): EventData => ({ type, data });

if (database.skip) {
  describe.skip(`postgres replicas (skipped: ${database.skip})`, () => {
    it('needs DATABASE_URL', () => {});
  });
  process.stderr.write(`[postgres] replica tests skipped: ${database.skip}\n`);
} else {
  const url = database.url as string;

  describe('two replicas on one database', () => {
    let a: PostgresEventStore;
    let b: PostgresEventStore;

    beforeAll(async () => {
      [a, b] = await Promise.all([
        openPostgresEventStore({ connectionString: url, poolSize: 6 }),
        openPostgresEventStore({ connectionString: url, poolSize: 6 }),
      ]);
    });
    afterAll(async () => {
      await a?.close();
      await b?.close();
      await database.drop?.();
    });

    it('exact expected revisions: exactly one replica wins each revision, and the chain verifies', async () => {
      const stream = `hammer-${randomUUID().slice(0, 8)}`;
      const target = 60;
      const wins: Array<{ store: string; revision: number }> = [];
      let conflicts = 0;
      const worker = async (store: PostgresEventStore, name: string, w: number) => {
        for (let attempt = 0; attempt < 10_000; attempt++) {
          const current = await store.streamRevision(stream);
          if (current !== null && current >= target - 1) return;
          try {
            const r = await store.appendToStream(stream, [ev('Hammered', { name, w, attempt })], {
              expectedRevision: current ?? 'no_stream',
            });
            wins.push({ store: name, revision: r.nextExpectedRevision });
          } catch (error) {
            if (!(error instanceof WrongExpectedRevisionError)) throw error;
            // The loser learns the revision that beat it.
            expect(error.actual).not.toBe(current ?? 'no_stream');
            conflicts++;
          }
        }
        throw new Error('worker gave up');
      };
      await Promise.all([
        ...Array.from({ length: 6 }, (_, w) => worker(a, 'a', w)),
        ...Array.from({ length: 6 }, (_, w) => worker(b, 'b', w)),
      ]);

      const revisions = wins.map((w) => w.revision).sort((x, y) => x - y);
      expect(revisions).toEqual(Array.from({ length: target }, (_, i) => i));
      expect(new Set(wins.map((w) => w.store))).toEqual(new Set(['a', 'b']));
      expect(conflicts).toBeGreaterThan(0);
      const events = await collect(b.readStream(stream));
      expect(events.map((e) => e.revision)).toEqual(revisions);
      expect(await verifyStream(events)).toMatchObject({ ok: true, count: target });
    });

    it('the same batch retried by both replicas at once is written once', async () => {
      for (let round = 0; round < 10; round++) {
        const stream = `retry-${randomUUID().slice(0, 8)}`;
        const batch = [
          { id: randomUUID(), ...ev('Retried', { i: 0 }) },
          { id: randomUUID(), ...ev('Retried', { i: 1 }) },
        ];
        const [ra, rb] = await Promise.all([
          a.appendToStream(stream, batch, { expectedRevision: 'no_stream' }),
          b.appendToStream(stream, batch, { expectedRevision: 'no_stream' }),
        ]);
        expect([ra.idempotent, rb.idempotent].sort()).toEqual([false, true]);
        expect(ra.events).toEqual(rb.events);
        expect(await collect(a.readStream(stream))).toEqual(ra.events);
      }
    });

    it('appends with any from both replicas keep one contiguous chain', async () => {
      const stream = `any-${randomUUID().slice(0, 8)}`;
      await Promise.all(
        Array.from({ length: 60 }, (_, i) =>
          (i % 2 === 0 ? a : b).appendToStream(stream, [ev('Any', { i })]),
        ),
      );
      const events = await collect(a.readStream(stream));
      expect(events.map((e) => e.revision)).toEqual(Array.from({ length: 60 }, (_, i) => i));
      expect((await verifyStream(events)).ok).toBe(true);
      // The global order agrees with each stream's order.
      const all = await collect(b.readAll({ filter: { streamPrefixes: [stream] } }));
      expect(all.map((e) => e.revision)).toEqual(events.map((e) => e.revision));
    });
  });

  describe('migrations', () => {
    const extra: TestDatabase[] = [];
    afterAll(async () => {
      for (const db of extra) await db.drop?.();
    });

    it('run concurrently from several instances on a fresh database without error, once', async () => {
      const fresh = await createTestDatabase('migrate');
      extra.push(fresh);
      const freshUrl = fresh.url as string;
      const stores = await Promise.all(
        Array.from({ length: 6 }, () => openPostgresEventStore({ connectionString: freshUrl, poolSize: 2 })),
      );
      try {
        const client = new pg.Client({ connectionString: freshUrl });
        await client.connect();
        try {
          const { rows } = await client.query(
            'SELECT version FROM muster_event_store_schema ORDER BY version',
          );
          // Every version applied exactly once, in order.
          expect(rows.map((r) => r.version)).toEqual(MIGRATIONS.map((m) => m.version));
          expect(MIGRATIONS.at(-1)?.version).toBe(SCHEMA_VERSION);
        } finally {
          await client.end();
        }
        // Every instance works on the schema the first one created.
        await Promise.all(stores.map((s, i) => s.appendToStream(`migrated-${i}`, [ev('Migrated')])));
        expect(await stores[0]?.headPosition()).not.toBeNull();
      } finally {
        await Promise.all(stores.map((s) => s.close()));
      }
      // Opening again is a no-op.
      const again = await openPostgresEventStore({ connectionString: freshUrl });
      expect(await again.streamRevision('migrated-3')).toBe(0);
      await again.close();
    });
  });
}
