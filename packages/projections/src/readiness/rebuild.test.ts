import { missionStreamName } from '@muster/readiness';
import { afterEach, describe, expect, it } from 'vitest';
import { readChangeFeed } from '../change-feed.js';
import { type ProjectionsHandle, startProjections } from '../runner.js';
import {
  dumpTables,
  eventually,
  fillSynthetic,
  ManualClock,
  openSqliteFixture,
} from '../test-support/harness.js';
import { replayMission } from './processor.js';
import { createReadinessProjection } from './projection.js';
import { createReadinessQueries } from './queries.js';
import { HISTORY, MISSIONS, VERDICTS } from './tables.js';

const READ_MODELS = [MISSIONS, VERDICTS, HISTORY];
const MISSIONS_UNDER_TEST = ['alpha', 'bravo', 'charlie', 'delta'];

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function setup(label: string) {
  const clock = new ManualClock(Date.parse('2024-01-01T00:00:00Z'));
  const fx = await openSqliteFixture(label, clock);
  cleanups.push(fx.close);
  const start = async (options: { batchSize?: number } = {}) => {
    const runner = await startProjections({
      store: fx.store,
      sql: fx.sql,
      projections: [createReadinessProjection({ store: fx.store, snapshotEvery: 100, cacheSize: 2 })],
      clock: clock.now,
      timeGraceMs: 0,
      tickMs: 20,
      leaseTtlMs: 2000,
      batchSize: options.batchSize ?? 200,
    });
    cleanups.push(() => runner.close());
    return runner;
  };
  return { fx, clock, start };
}

async function caughtUp(
  runner: ProjectionsHandle,
  fx: { store: { headPosition(): Promise<string | null> } },
) {
  const head = await fx.store.headPosition();
  if (head) expect(await runner.waitForPosition(head, 30_000)).toBe(true);
}

/** A runner of `projection` alone, once it has caught up with the log. */
async function runCaughtUp(
  fx: Awaited<ReturnType<typeof openSqliteFixture>>,
  clock: ManualClock,
  projection: ReturnType<typeof createReadinessProjection>,
  batchSize?: number,
) {
  const runner = await startProjections({
    store: fx.store,
    sql: fx.sql,
    projections: [projection],
    clock: clock.now,
    ...(batchSize === undefined ? {} : { batchSize }),
  });
  cleanups.push(() => runner.close());
  await caughtUp(runner, fx);
  return runner;
}

async function timeSettled(runner: ProjectionsHandle, clock: ManualClock) {
  runner.poke();
  await eventually(async () => {
    const [s] = await runner.status();
    return s?.watermark !== null && Date.parse(s?.watermark ?? '') >= clock.ms;
  });
}

/** What the log alone says the history is, mission by mission. */
async function replayed(fx: Awaited<ReturnType<typeof openSqliteFixture>>, until: number) {
  const out = new Map<string, ReturnType<typeof replayMission>>();
  for (const id of MISSIONS_UNDER_TEST) {
    const events = [];
    for await (const e of fx.store.readStream(missionStreamName(id))) events.push(e);
    out.set(id, replayMission(id, events, { until }));
  }
  return out;
}

describe('rebuilding the readiness projection', () => {
  it('yields byte-identical read models from position zero, and leaves the change feed alone', async () => {
    const { fx, clock, start } = await setup('rebuild-identical');
    await fillSynthetic(fx.store, clock, { missions: MISSIONS_UNDER_TEST, eventsPerMission: 500 });
    const runner = await start();
    await caughtUp(runner, fx);
    // Far enough for mandates to lapse and dated facts to take effect: time-caused history too.
    clock.advance(200 * 86_400_000);
    await timeSettled(runner, clock);
    const before = await dumpTables(fx.sql, READ_MODELS);
    const feed = await readChangeFeed(fx.sql, 0, 1_000_000);
    expect(before).toContain('\\"cause\\":\\"time\\"');

    const result = await runner.rebuild('readiness');
    expect(result.generation).toBe(1);
    expect(result.events).toBe(2000);
    const [status] = await runner.status();
    expect(status?.generation).toBe(1);
    expect(status?.rebuild).toBeNull();
    expect(await dumpTables(fx.sql, READ_MODELS)).toBe(before);
    expect(await readChangeFeed(fx.sql, 0, 1_000_000)).toEqual(feed);

    // And both equal what the log alone says.
    const queries = createReadinessQueries({ store: fx.store, sql: fx.sql });
    for (const [id, { sink }] of await replayed(fx, clock.ms)) {
      const stored = (await queries.history(id, { limit: 1000 }))!;
      const all = [...stored.entries];
      let after = stored.nextAfterSeq;
      while (after !== null) {
        const page = (await queries.history(id, { afterSeq: after, limit: 1000 }))!;
        all.push(...page.entries);
        after = page.nextAfterSeq;
      }
      expect(all).toEqual(sink.history);
    }
    // Every change the log implies is in the feed exactly once.
    const expected = [...(await replayed(fx, clock.ms)).values()].flatMap((r) =>
      r.sink.changes.map((c) => c.changeId),
    );
    expect(feed.map((c) => c.changeId).sort()).toEqual(expected.sort());
  });

  it('keeps serving and recording while it rebuilds, then swaps in without losing or repeating a change', async () => {
    const { fx, clock, start } = await setup('rebuild-online');
    await fillSynthetic(fx.store, clock, { missions: MISSIONS_UNDER_TEST, eventsPerMission: 400 });
    const runner = await start({ batchSize: 50 });
    await caughtUp(runner, fx);
    const queries = createReadinessQueries({ store: fx.store, sql: fx.sql });
    let reads = 0;
    const rebuilding = runner.rebuild('readiness', {
      onProgress: () => {
        reads++;
      },
    });
    // More events while the shadow generation fills.
    await fillSynthetic(fx.store, clock, {
      missions: MISSIONS_UNDER_TEST,
      eventsPerMission: 200,
      seed: 7,
      chunk: 10,
    }).catch(() => {});
    for (const id of MISSIONS_UNDER_TEST) expect(await queries.currentVerdict(id)).not.toBeNull();
    await rebuilding;
    expect(reads).toBeGreaterThan(0);
    await caughtUp(runner, fx);
    clock.advance(30 * 86_400_000);
    await timeSettled(runner, clock);
    const live = await dumpTables(fx.sql, READ_MODELS);
    await runner.rebuild('readiness');
    expect(await dumpTables(fx.sql, READ_MODELS)).toBe(live);
    const feed = await readChangeFeed(fx.sql, 0, 1_000_000);
    const expected = [...(await replayed(fx, clock.ms)).values()].flatMap((r) =>
      r.sink.changes.map((c) => c.changeId),
    );
    expect(feed.map((c) => c.changeId).sort()).toEqual(expected.sort());
  });

  it("hands the rebuild's in-memory states to the live generation it swaps in", async () => {
    const { fx, clock } = await setup('rebuild-memory');
    await fillSynthetic(fx.store, clock, { missions: MISSIONS_UNDER_TEST, eventsPerMission: 200 });
    const projection = createReadinessProjection({ store: fx.store });
    const runner = await runCaughtUp(fx, clock, projection);
    const queries = createReadinessQueries({ store: fx.store, sql: fx.sql, projection });
    await runner.rebuild('readiness');
    for (const id of MISSIONS_UNDER_TEST) {
      expect(projection.latestState(id)?.revision).toBe(199);
      expect((await queries.verdictAsOf(id, '2024-03-01T00:00:00Z'))?.basis).toMatchObject({
        folded: 0,
        snapshotRevision: null,
      });
    }
  });

  it('snapshots a mission that leaves memory, so that it comes back from near its end', async () => {
    const { fx, clock } = await setup('evicted-snapshots');
    await fillSynthetic(fx.store, clock, { missions: MISSIONS_UNDER_TEST, eventsPerMission: 200 });
    // Room for one mission: every other one leaves memory as the interleaved log moves on.
    const projection = createReadinessProjection({ store: fx.store, cacheSize: 1, snapshotEvery: 1_000_000 });
    await runCaughtUp(fx, clock, projection, 60);
    const rows = await fx.sql.query('SELECT DISTINCT mission_id FROM readiness_snapshots');
    expect(rows.length).toBeGreaterThanOrEqual(MISSIONS_UNDER_TEST.length - 1);
    // Another process, with no projection: the latest snapshot and a short fold.
    const elsewhere = createReadinessQueries({ store: fx.store, sql: fx.sql });
    for (const id of MISSIONS_UNDER_TEST.slice(0, 3)) {
      const basis = (await elsewhere.verdictAsOf(id, '2024-03-01T00:00:00Z'))?.basis;
      expect(basis?.snapshotRevision).not.toBeNull();
      expect(basis?.folded).toBeLessThan(100);
    }
  });

  it('keeps the events it holds in memory within its limit while the missions it holds grow', async () => {
    const { fx, clock } = await setup('cache-limit');
    await fillSynthetic(fx.store, clock, { missions: MISSIONS_UNDER_TEST, eventsPerMission: 200 });
    // Every mission enters memory early, with few events, and grows there afterwards.
    const projection = createReadinessProjection({ store: fx.store, cacheEvents: 300 });
    await runCaughtUp(fx, clock, projection, 20);
    const held = MISSIONS_UNDER_TEST.flatMap((id) => {
      const state = projection.latestState(id)?.state;
      return state ? [state.eventCount] : [];
    });
    expect(held.length).toBeGreaterThan(0);
    // The limit, give or take the missions of the batch being written, which stay until written.
    expect(held.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(300 + 20);
    expect(held.length).toBeLessThan(MISSIONS_UNDER_TEST.length);
  });

  it('moves a mission that left memory for good on to the live watermark, as the swap would have', async () => {
    const { fx, clock, start } = await setup('rebuild-early-advance');
    // One mission after the other: each has all its events in the log when it leaves memory.
    for (const [i, id] of MISSIONS_UNDER_TEST.entries()) {
      await fillSynthetic(fx.store, clock, { missions: [id], eventsPerMission: 150, seed: i + 1 });
    }
    const runner = await start();
    await caughtUp(runner, fx);
    clock.advance(200 * 86_400_000);
    await timeSettled(runner, clock);
    const before = await dumpTables(fx.sql, READ_MODELS);
    expect(before).toContain('\\"cause\\":\\"time\\"');

    await runner.rebuild('readiness');
    expect(await dumpTables(fx.sql, READ_MODELS)).toBe(before);
    // Moved on when they left memory, the missions needed no snapshot for the swap to load.
    expect(await fx.sql.query('SELECT DISTINCT mission_id FROM readiness_snapshots')).toEqual([]);
  });

  it('resumes a rebuild interrupted half-way when the next runner starts, adding tables newer code has', async () => {
    const { fx, clock, start } = await setup('rebuild-resume');
    await fillSynthetic(fx.store, clock, { missions: MISSIONS_UNDER_TEST, eventsPerMission: 1000 });
    const first = await start();
    await caughtUp(first, fx);
    const before = await dumpTables(fx.sql, READ_MODELS);
    let closing: Promise<void> | null = null;
    await expect(
      first.rebuild('readiness', {
        onProgress: () => {
          closing ??= first.close();
        },
      }),
    ).rejects.toMatchObject({ code: 'projections-closed' });
    await closing;
    const [row] = await fx.sql.query('SELECT status, events FROM projection_rebuilds');
    expect(row).toMatchObject({ status: 'building' });
    expect(Number(row?.events)).toBeGreaterThan(0);
    expect(Number(row?.events)).toBeLessThan(4000);
    // As if the build had been started by code without the table of snapshot parts: the resuming
    // runner creates it, or the swap, which renames every table, would fail.
    await fx.sql.execute('DROP TABLE readiness_snapshot_parts__g1');

    const second = await start();
    await eventually(async () => {
      const [s] = await second.status();
      return s?.generation === 1 && s.rebuild === null;
    }, 30_000);
    expect(await dumpTables(fx.sql, READ_MODELS)).toBe(before);
  });
});
