import { openPostgresEventStore } from '@muster/event-store-postgres';
import { mssHaitiScenario } from '@muster/readiness';
import { afterEach, describe, expect, it } from 'vitest';
import { auditMission } from '../audit.js';
import { readChangeFeed } from '../change-feed.js';
import { exportMission, verifyExport } from '../export.js';
import { readProjectionStatus, startProjections } from '../runner.js';
import { dumpTables, eventually, fillSynthetic, ManualClock, playMssHaiti } from '../test-support/harness.js';
import { createPostgresDatabase, postgresSkipReason } from '../test-support/postgres.js';
import { expectSnapshotsMatchTheLog } from '../test-support/snapshot-checks.js';
import { createReadinessProjection } from './projection.js';
import { createReadinessQueries } from './queries.js';
import { HISTORY, MISSIONS, SNAPSHOT_PARTS, VERDICTS } from './tables.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function open(clock: ManualClock) {
  const { url, drop } = await createPostgresDatabase('readiness');
  const store = await openPostgresEventStore({
    connectionString: url,
    clock: clock.now,
    pollIntervalMs: 100,
  });
  cleanups.push(async () => {
    await store.close();
    await drop();
  });
  const runner = await startProjections({
    store,
    sql: store.sql,
    projections: [createReadinessProjection({ store, snapshotEvery: 100, snapshotPartChars: 2000 })],
    clock: clock.now,
    timeGraceMs: 0,
    tickMs: 20,
    batchSize: 100,
  });
  cleanups.push(() => runner.close());
  return { store, runner };
}

describe.skipIf(postgresSkipReason !== null)(
  `the readiness projection on PostgreSQL${postgresSkipReason ? ` (${postgresSkipReason})` : ''}`,
  () => {
    it('reads the status without a runner: nothing installed at first, then what the runner recorded', async () => {
      const { url, drop } = await createPostgresDatabase('status');
      const store = await openPostgresEventStore({ connectionString: url, pollIntervalMs: 100 });
      cleanups.push(async () => {
        await store.close();
        await drop();
      });
      const projections = [createReadinessProjection({ store })];
      await store.appendToStream('mission-x', [{ type: 'Something', data: {} }]);
      const before = await readProjectionStatus({ store, sql: store.sql, projections });
      expect(before).toEqual([
        expect.objectContaining({
          name: 'readiness',
          generation: 0,
          position: null,
          behind: true,
          leader: null,
        }),
      ]);
      const installed = await store.sql.query(
        "SELECT 1 FROM pg_tables WHERE tablename = 'projection_checkpoints'",
      );
      expect(installed).toEqual([]);
      const runner = await startProjections({ store, sql: store.sql, projections });
      cleanups.push(() => runner.close());
      const head = (await store.headPosition()) as string;
      expect(await runner.waitForPosition(head, 20_000)).toBe(true);
      await eventually(async () => {
        const [row] = await readProjectionStatus({ store, sql: store.sql, projections });
        return row?.position === head && row.leader !== null ? row : undefined;
      });
      const [read] = await readProjectionStatus({ store, sql: store.sql, projections });
      expect(read).toMatchObject({
        position: head,
        behind: false,
        isLeader: false,
        leader: { owner: expect.any(String) },
      });
    });

    it('plays the MSS Haiti scenario, records the expiry, audits clean and exports verifiably', async () => {
      const clock = new ManualClock();
      const { store, runner } = await open(clock);
      await playMssHaiti(store, clock);
      expect(await runner.waitForPosition((await store.headPosition()) as string, 20_000)).toBe(true);
      clock.set('2024-11-01T00:00:00Z');
      runner.poke();
      const queries = createReadinessQueries({ store, sql: store.sql });
      const id = mssHaitiScenario.missionId;
      const expiry = await eventually(async () =>
        (await queries.history(id, { limit: 1000 }))?.entries.find((e) => e.cause === 'time'),
      );
      expect(new Date(expiry.recordedAt).toISOString()).toBe('2024-10-02T20:00:00.000Z');
      const report = await auditMission({ store, sql: store.sql, missionId: id });
      expect(report?.mismatches).toEqual([]);
      const lines: string[] = [];
      for await (const line of (await exportMission(store, id)) ?? []) lines.push(line);
      const verified = await verifyExport(lines, { until: '2024-11-01T00:00:00Z' });
      expect(verified.ok).toBe(true);
      expect(verified.history).toEqual((await queries.history(id, { limit: 1000 }))?.entries);
      expect((await readChangeFeed(store.sql, 0, 10_000)).length).toBeGreaterThan(20);
    }, 120_000);

    it('snapshots in parts, and rebuilds from zero into byte-identical tables', async () => {
      const clock = new ManualClock();
      const { store, runner } = await open(clock);
      await fillSynthetic(store, clock, { missions: ['p1', 'p2', 'p3'], eventsPerMission: 300 });
      expect(await runner.waitForPosition((await store.headPosition()) as string, 60_000)).toBe(true);
      clock.advance(100 * 86_400_000);
      runner.poke();
      await eventually(async () => Date.parse((await runner.status())[0]?.watermark ?? '') >= clock.ms);
      // Snapshots in parts, joined by PostgreSQL's string_agg when read.
      const [parts] = await store.sql.query(`SELECT COUNT(*) AS n FROM ${SNAPSHOT_PARTS}`);
      expect(Number(parts?.n)).toBeGreaterThan(0);
      await expectSnapshotsMatchTheLog(store, store.sql);
      const before = await dumpTables(store.sql, [MISSIONS, VERDICTS, HISTORY]);
      const result = await runner.rebuild('readiness');
      expect(result.events).toBe(900);
      expect(await dumpTables(store.sql, [MISSIONS, VERDICTS, HISTORY])).toBe(before);
    }, 120_000);
  },
);
