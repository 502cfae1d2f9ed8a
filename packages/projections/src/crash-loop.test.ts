import { missionStreamName } from '@muster/readiness';
import { afterEach, describe, expect, it } from 'vitest';
import { readChangeFeed } from './change-feed.js';
import { replayMission } from './readiness/processor.js';
import { createReadinessProjection } from './readiness/projection.js';
import { HISTORY, MISSIONS, VERDICTS } from './readiness/tables.js';
import { startProjections } from './runner.js';
import { readCheckpoint } from './runner-schema.js';
import { spawnRunner } from './test-support/child.js';
import { dumpTables, fillSynthetic, ManualClock, openSqliteFixture } from './test-support/harness.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const MISSION_IDS = ['crash-a', 'crash-b', 'crash-c'];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('a projection runner killed at random moments', () => {
  it('loses and repeats nothing: the read model equals a rebuild from zero, the feed has every change once', async () => {
    // The children run on the real clock: record time must never fall behind it, or an event would
    // arrive after the runner had already recorded a later instant (see docs/projections.md).
    const startMs = Date.now() - 6 * 3_600_000;
    const clock = new ManualClock(startMs);
    const fx = await openSqliteFixture('crash-loop', clock);
    cleanups.push(fx.close);
    await fillSynthetic(fx.store, clock, {
      missions: MISSION_IDS,
      eventsPerMission: 1200,
      chunk: 40,
      startMs,
    });
    const killedAt: string[] = [];
    for (let round = 0; round < 10; round++) {
      const child = spawnRunner([fx.path, 'readiness', `crash-${round}`, '400', '20']);
      cleanups.push(() => child.kill('SIGKILL'));
      await child.waitFor((line) => line === 'leader', 60_000);
      await sleep(30 + Math.floor(Math.random() * 400));
      await child.kill('SIGKILL');
      killedAt.push(child.lines.filter((l) => l.startsWith('at ')).at(-1) ?? 'none');
      if (round % 3 === 1) {
        // The log grows between crashes, as it would under a live service.
        clock.set(Math.max(clock.ms, Date.now()));
        await fillSynthetic(fx.store, clock, {
          missions: MISSION_IDS,
          eventsPerMission: 60,
          seed: round + 2,
          chunk: 7,
          startMs: clock.ms,
        });
      }
    }
    const head = (await fx.store.headPosition()) as string;
    const last = spawnRunner([fx.path, 'readiness', 'crash-final', '400', '50']);
    cleanups.push(() => last.kill('SIGKILL'));
    await last.waitFor((line) => line === `at ${head}`, 120_000);
    await last.kill('SIGTERM');
    // The kills landed at different points of the work, not all before or after it.
    expect(new Set(killedAt).size).toBeGreaterThan(3);

    const runner = await startProjections({
      store: fx.store,
      sql: fx.sql,
      projections: [createReadinessProjection({ store: fx.store })],
      timeGraceMs: 0,
      tickMs: 20,
    });
    cleanups.push(() => runner.close());
    expect(await runner.waitForPosition(head, 30_000)).toBe(true);
    const models = [MISSIONS, VERDICTS, HISTORY];
    const before = await dumpTables(fx.sql, models);
    const feed = await readChangeFeed(fx.sql, 0, 1_000_000);
    expect(new Set(feed.map((c) => c.changeId)).size).toBe(feed.length);
    expect(feed.map((c) => c.seq)).toEqual(feed.map((_, i) => i + 1));

    const watermark = (await readCheckpoint(fx.sql, 'readiness'))?.watermark ?? 0;
    const expected: string[] = [];
    for (const id of MISSION_IDS) {
      const events = [];
      for await (const e of fx.store.readStream(missionStreamName(id))) events.push(e);
      expected.push(...replayMission(id, events, { until: watermark }).sink.changes.map((c) => c.changeId));
    }
    expect(feed.map((c) => c.changeId).sort()).toEqual(expected.sort());

    await runner.rebuild('readiness');
    expect(await dumpTables(fx.sql, models)).toBe(before);
  }, 600_000);
});
