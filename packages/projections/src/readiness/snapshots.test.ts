import { afterEach, describe, expect, it } from 'vitest';
import { startProjections } from '../runner.js';
import { fillSynthetic, ManualClock, openSqliteFixture } from '../test-support/harness.js';
import { expectSnapshotsMatchTheLog } from '../test-support/snapshot-checks.js';
import { createReadinessProjection } from './projection.js';
import { createReadinessQueries } from './queries.js';
import { SNAPSHOT_PARTS, SNAPSHOTS } from './tables.js';

const MISSIONS = ['alpha', 'bravo'];

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function setup(label: string) {
  const clock = new ManualClock(Date.parse('2024-01-01T00:00:00Z'));
  const fx = await openSqliteFixture(label, clock);
  cleanups.push(fx.close);
  const run = async () => {
    const runner = await startProjections({
      store: fx.store,
      sql: fx.sql,
      projections: [
        createReadinessProjection({ store: fx.store, snapshotEvery: 100, snapshotPartChars: 2000 }),
      ],
      clock: clock.now,
    });
    cleanups.push(() => runner.close());
    const head = await fx.store.headPosition();
    if (head) expect(await runner.waitForPosition(head, 30_000)).toBe(true);
    return runner;
  };
  return { fx, clock, run };
}

describe('snapshots in parts', () => {
  it('writes a large state in parts of about the size asked, and reads it back whole', async () => {
    const { fx, clock, run } = await setup('snapshot-parts');
    await fillSynthetic(fx.store, clock, { missions: MISSIONS, eventsPerMission: 400 });
    await run();
    const [parts] = await fx.sql.query(
      `SELECT COUNT(*) AS n, MAX(LENGTH(state)) AS longest FROM ${SNAPSHOT_PARTS}`,
    );
    expect(Number(parts?.n)).toBeGreaterThan(10);
    // A part ends at the first subtree that takes it past its size: here far below 2,048 values.
    expect(Number(parts?.longest)).toBeLessThan(2000 + 60_000);
    await expectSnapshotsMatchTheLog(fx.store, fx.sql);
    // Another process, with no projection, starts from them.
    const elsewhere = createReadinessQueries({ store: fx.store, sql: fx.sql });
    const basis = (await elsewhere.verdictAsOf('alpha', '2024-03-01T00:00:00Z'))?.basis;
    expect(basis?.snapshotRevision).not.toBeNull();
  });

  it('adds the table of parts to a database whose live tables were made before it existed', async () => {
    const { fx, clock, run } = await setup('snapshot-parts-upgrade');
    await fillSynthetic(fx.store, clock, { missions: MISSIONS, eventsPerMission: 150 });
    const first = await run();
    await first.close();
    await fx.sql.execute(`DROP TABLE ${SNAPSHOT_PARTS}`);
    await fx.sql.execute(`DELETE FROM ${SNAPSHOTS}`);
    await fillSynthetic(fx.store, clock, { missions: ['charlie', 'delta'], eventsPerMission: 400, seed: 7 });
    await run();
    const [parts] = await fx.sql.query(`SELECT COUNT(*) AS n FROM ${SNAPSHOT_PARTS}`);
    expect(Number(parts?.n)).toBeGreaterThan(0);
    await expectSnapshotsMatchTheLog(fx.store, fx.sql);
  });
});
