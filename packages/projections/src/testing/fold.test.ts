import { missionStreamName } from '@muster/readiness';
import { afterEach, describe, expect, it } from 'vitest';
import { createReadinessProjection } from '../readiness/projection.js';
import { createReadinessQueries } from '../readiness/queries.js';
import { startProjections } from '../runner.js';
import { eventually, ManualClock, openSqliteFixture } from '../test-support/harness.js';
import { foldMission } from './fold.js';
import { syntheticMissionEventData } from './synthetic.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe('foldMission', () => {
  it('records the history the projection stores for the same events', async () => {
    const missionId = 'fold-check';
    const events = 600;
    // Every event recorded after all of them happened, and a clock that stands still: the history
    // is the events' alone, with nothing time adds after the last one.
    const clock = new ManualClock(Date.UTC(2024, 0, 1) + (events + 1440) * 60_000);
    const fx = await openSqliteFixture('fold', clock);
    cleanups.push(fx.close);
    const data = [...syntheticMissionEventData({ missionId, events, profile: 'volatile', seed: 7 })];
    await fx.store.appendToStream(missionStreamName(missionId), data);
    const runner = await startProjections({
      store: fx.store,
      sql: fx.sql,
      projections: [createReadinessProjection({ store: fx.store })],
      clock: clock.now,
      timeGraceMs: 0,
      tickMs: 20,
    });
    cleanups.push(() => runner.close());
    const head = await fx.store.headPosition();
    await runner.waitForPosition(head as string, 10_000);
    const queries = createReadinessQueries({ store: fx.store, sql: fx.sql });
    const stored = await eventually(async () => (await queries.history(missionId, { limit: 1000 }))?.entries);

    const recorded = [];
    for await (const event of fx.store.readStream(missionStreamName(missionId))) recorded.push(event);
    const folded = foldMission(missionId, recorded);

    expect(folded.events).toBe(events);
    expect(folded.skipped).toBe(0);
    expect(stored.length).toBeGreaterThan(5);
    expect(folded.history).toEqual(stored);
  });
});
