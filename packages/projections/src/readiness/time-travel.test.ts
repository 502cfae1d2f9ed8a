import type { RecordedEvent } from '@muster/event-store';
import {
  evaluate,
  evolve,
  fromStoredEvent,
  initialState,
  type MissionState,
  missionStreamName,
} from '@muster/readiness';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { startProjections } from '../runner.js';
import { ManualClock, openSqliteFixture } from '../test-support/harness.js';
import { syntheticMissionEventData } from '../testing/synthetic.js';
import { createReadinessProjection } from './projection.js';
import { createReadinessQueries } from './queries.js';

/** The reference: fold from zero every event that passes, no snapshots, no caches. */
function naive(events: readonly RecordedEvent[], keep: (e: RecordedEvent) => boolean): MissionState {
  let state = initialState();
  for (const e of events) if (keep(e)) state = evolve(state, fromStoredEvent(e));
  return state;
}

const strip = (v: { basis?: unknown } | null) => {
  if (v === null) return null;
  const { basis: _, ...rest } = v;
  return rest;
};

describe('time travel from snapshots', () => {
  it('answers as-of, known-at and at-position exactly as a full fold from zero does', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.nat(1_000_000),
        fc.integer({ min: 5, max: 180 }),
        fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 20 }),
        fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 8, maxLength: 8 }),
        fc.boolean(),
        async (seed, count, chunks, picks, clockGoesBack) => {
          const clock = new ManualClock(Date.UTC(2024, 0, 1));
          const fx = await openSqliteFixture('time-travel', clock);
          const missionId = 'tt';
          try {
            const data = [...syntheticMissionEventData({ missionId, events: count, seed })];
            let i = 0;
            let c = 0;
            while (i < data.length) {
              const size = chunks[c++ % chunks.length] as number;
              const batch = data.slice(i, i + size);
              i += size;
              const latest = Math.max(...batch.map((e) => Date.parse(String(e.metadata?.occurredAt))));
              // Record time mostly follows world time; with clockGoesBack it sometimes steps back.
              clock.set(
                clockGoesBack && c % 3 === 0 ? clock.ms - 7_200_000 : Math.max(clock.ms + 60_000, latest),
              );
              await fx.store.appendToStream(missionStreamName(missionId), batch);
              // Another stream's event, recorded later: at its position the log is past the
              // mission's last event, and time may have changed the verdict in between.
              if (c % 2 === 0) {
                clock.set(clock.ms + 3 * 86_400_000);
                await fx.store.appendToStream('noise-1', [{ type: 'Noise', data: { c } }]);
              }
            }
            const projection = createReadinessProjection({
              store: fx.store,
              snapshotEvery: 7,
              snapshotRatio: 0,
              checkpointEvery: 1 + (seed % 9),
              maxCheckpoints: 2 + (seed % 5),
            });
            const runner = await startProjections({
              store: fx.store,
              sql: fx.sql,
              projections: [projection],
              clock: clock.now,
              batchSize: 13,
            });
            await runner.waitForPosition((await fx.store.headPosition()) as string, 20_000);
            const events: RecordedEvent[] = [];
            for await (const e of fx.store.readStream(missionStreamName(missionId))) events.push(e);
            const first = Date.parse(events[0]!.recordedAt) - 86_400_000;
            const last = Math.max(...events.map((e) => Date.parse(e.recordedAt))) + 30 * 86_400_000;
            // Half anywhere in the range, half right at an event's record time (where off-by-one lives).
            const instants = [
              ...picks.slice(0, 2).map((p) => new Date(first + Math.floor(p * (last - first))).toISOString()),
              ...picks.slice(2, 4).map((p, k) => {
                const e = events[Math.floor(p * events.length) % events.length]!;
                return new Date(Date.parse(e.recordedAt) + k - 1).toISOString();
              }),
            ];
            const log: RecordedEvent[] = [];
            for await (const e of fx.store.readAll()) log.push(e);
            const positions = [
              ...picks
                .slice(4, 6)
                .map((p) => events[Math.floor(p * events.length) % events.length]!.position),
              ...picks.slice(6).map((p) => log[Math.floor(p * log.length) % log.length]!.position),
            ];
            const check = async (queries: ReturnType<typeof createReadinessQueries>) => {
              for (const instant of instants) {
                const all = naive(events, () => true);
                expect(strip(await queries.verdictAsOf(missionId, instant))).toEqual(evaluate(all, instant));
                const known = naive(events, (e) => Date.parse(e.recordedAt) <= Date.parse(instant));
                expect(strip(await queries.verdictKnownAt(missionId, instant))).toEqual(
                  known.mission ? evaluate(known, instant) : null,
                );
              }
              for (const position of positions) {
                const upTo = events.filter((e) => e.position <= position);
                const answer = await queries.verdictAtPosition(missionId, position);
                if (upTo.length === 0) {
                  expect(answer).toBeNull();
                  continue;
                }
                const reached = log.filter((e) => e.position <= position);
                const at = new Date(
                  Math.max(
                    Date.parse(upTo[upTo.length - 1]!.recordedAt),
                    Date.parse(reached[reached.length - 1]!.recordedAt),
                  ),
                ).toISOString();
                const state = naive(upTo, () => true);
                expect(strip(answer)).toEqual(evaluate(state, at));
                expect(answer?.basis.position).toBe(upTo[upTo.length - 1]!.position);
              }
            };
            // In the runner's process: from the live projection's in-memory states (checkpoints).
            await check(createReadinessQueries({ store: fx.store, sql: fx.sql, projection }));
            await runner.close();
            // Fresh queries (snapshots and folds) and one reused (its in-memory cache) must agree.
            const shared = createReadinessQueries({ store: fx.store, sql: fx.sql });
            for (const queries of [
              createReadinessQueries({ store: fx.store, sql: fx.sql }),
              shared,
              shared,
            ]) {
              await check(queries);
            }
            const snapshots = await fx.sql.query('SELECT COUNT(*) AS n FROM readiness_snapshots');
            if (count >= 14) expect(Number(snapshots[0]?.n)).toBeGreaterThan(0);
          } finally {
            await fx.close();
          }
        },
      ),
      { numRuns: 25 },
    );
  }, 300_000);

  it('answers from the latest snapshot and a short fold, not from zero', async () => {
    const clock = new ManualClock(Date.UTC(2024, 0, 1));
    const fx = await openSqliteFixture('time-travel-basis', clock);
    try {
      const data = [
        ...syntheticMissionEventData({ missionId: 'big', events: 3000, seed: 5, profile: 'steady' }),
      ];
      for (let i = 0; i < data.length; i += 100) {
        clock.advance(100 * 60_000);
        await fx.store.appendToStream(missionStreamName('big'), data.slice(i, i + 100));
      }
      const projection = createReadinessProjection({ store: fx.store, snapshotEvery: 500, snapshotRatio: 0 });
      // Snapshots are taken at the end of a batch: batches smaller than their spacing.
      const runner = await startProjections({
        store: fx.store,
        sql: fx.sql,
        projections: [projection],
        clock: clock.now,
        batchSize: 100,
      });
      await runner.waitForPosition((await fx.store.headPosition()) as string, 30_000);
      // In the runner's process, the live projection's memory answers without any snapshot.
      const sharing = createReadinessQueries({ store: fx.store, sql: fx.sql, projection });
      const shared = await sharing.verdictAsOf('big', '2024-01-02T00:00:00Z');
      expect(shared?.basis).toMatchObject({ folded: 0, snapshotRevision: null, revision: 2999 });
      const known = await sharing.verdictKnownAt('big', '2025-01-01T00:00:00Z');
      expect(known?.basis).toMatchObject({ folded: 0, revision: 2999 });
      await runner.close();
      const queries = createReadinessQueries({ store: fx.store, sql: fx.sql });
      const asOf = await queries.verdictAsOf('big', '2024-01-02T00:00:00Z');
      expect(asOf?.basis.snapshotRevision).toBeGreaterThanOrEqual(2500);
      expect(asOf?.basis.folded).toBeLessThan(500);
      const again = await queries.verdictAsOf('big', '2024-01-03T00:00:00Z');
      expect(again?.basis).toMatchObject({ folded: 0, snapshotRevision: null, revision: 2999 });
      const then = await queries.verdictKnownAt(
        'big',
        new Date(Date.UTC(2024, 0, 1) + 1600 * 60_000).toISOString(),
      );
      // Events up to revision 1599 were recorded by then; the fold starts at the snapshot below it.
      expect(then?.basis.revision).toBe(1599);
      expect(then?.basis.snapshotRevision).toBeGreaterThanOrEqual(1000);
      expect(then?.basis.folded).toBe(1599 - (then?.basis.snapshotRevision ?? 0));
    } finally {
      await fx.close();
    }
  }, 120_000);
});
