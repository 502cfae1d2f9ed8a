import type { EventStore, SqlClient } from '@muster/event-store';
import { openPostgresEventStore } from '@muster/event-store-postgres';
import { afterEach, describe, expect, it } from 'vitest';
import { readChangeFeed } from './change-feed.js';
import type { Projection } from './projection.js';
import { createReadinessProjection } from './readiness/projection.js';
import { HISTORY, MISSIONS, VERDICTS } from './readiness/tables.js';
import { type ProjectionsHandle, readProjectionStatus, startProjections } from './runner.js';
import { readCheckpoint } from './runner-schema.js';
import { type ChildRunner, spawnRebuilder } from './test-support/child.js';
import { countingProjection } from './test-support/counting-projection.js';
import {
  dumpTables,
  eventually,
  fillSynthetic,
  ManualClock,
  openSqliteFixture,
} from './test-support/harness.js';
import { createPostgresDatabase, postgresSkipReason } from './test-support/postgres.js';

/**
 * `muster projections rebuild` run as a process of its own beside a service that leads the live
 * projection, killed (or stalled) after its first rebuild batch: what the status says, and who
 * finishes the rebuild.
 */

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const READ_MODELS = [MISSIONS, VERDICTS, HISTORY];
const MISSION_IDS = ['resume-a', 'resume-b', 'resume-c'];
const TTL = 1500;
/** Longer than any test: the rebuilder is killed while it waits. */
const FOREVER = 600_000;

interface Database {
  store: EventStore;
  sql: SqlClient;
  /** What a child process opens: the SQLite file or the PostgreSQL URL. */
  target: string;
  /** Moves the record time of appends; on the real clock's heels, as a service's would be. */
  clock: ManualClock;
}

/**
 * Appends to every mission: the first time from six hours ago, later on the real clock's heels (the
 * runners' clock: an event recorded before an instant they have processed would break the rule
 * time-driven changes rest on, see docs/projections.md).
 */
async function fill(db: Database, eventsPerMission: number, seed: number, later = false): Promise<void> {
  if (later) db.clock.set(Math.max(db.clock.ms, Date.now()));
  await fillSynthetic(db.store, db.clock, {
    missions: MISSION_IDS,
    eventsPerMission,
    chunk: 40,
    seed,
    startMs: db.clock.ms,
  });
}

/** The service: leads the live projection on the real clock, as the children's leases are. */
async function startService(db: Database, instanceId: string): Promise<ProjectionsHandle> {
  const runner = await startProjections({
    store: db.store,
    sql: db.sql,
    projections: [createReadinessProjection({ store: db.store, snapshotEvery: 50, cacheSize: 3 })],
    instanceId,
    leaseTtlMs: TTL,
    tickMs: 20,
    timeGraceMs: 0,
    backoff: { initialMs: 20, maxMs: 200 },
  });
  cleanups.push(() => runner.close());
  return runner;
}

function rebuilder(db: Database, instanceId: string, ttl: number, stallMs: number): ChildRunner {
  const child = spawnRebuilder([db.target, instanceId, String(ttl), String(stallMs)]);
  cleanups.push(() => child.kill('SIGKILL'));
  return child;
}

async function caughtUp(runner: ProjectionsHandle, db: Database): Promise<void> {
  const head = (await db.store.headPosition()) as string;
  expect(await runner.waitForPosition(head, 60_000)).toBe(true);
}

async function rebuildLeaseOwner(sql: SqlClient): Promise<string | undefined> {
  const [row] = await sql.query("SELECT owner FROM projection_leases WHERE name = 'readiness#rebuild'");
  return row ? String(row.owner) : undefined;
}

/**
 * Stops `service` and rebuilds from zero with a runner whose clock stands at the live watermark (so
 * that time moves neither generation further): the tables must come out byte for byte the same.
 */
async function expectSameAsRebuildFromZero(db: Database, service: ProjectionsHandle): Promise<void> {
  await caughtUp(service, db);
  await service.close();
  const watermark = (await readCheckpoint(db.sql, 'readiness'))?.watermark;
  const before = await dumpTables(db.sql, READ_MODELS);
  const feed = await readChangeFeed(db.sql, 0, 1_000_000);
  expect(new Set(feed.map((c) => c.changeId)).size).toBe(feed.length);
  const verifier = await startProjections({
    store: db.store,
    sql: db.sql,
    projections: [createReadinessProjection({ store: db.store })],
    clock: new ManualClock(watermark ?? Date.now()).now,
    timeGraceMs: 0,
    tickMs: 20,
  });
  cleanups.push(() => verifier.close());
  await caughtUp(verifier, db);
  const generation = (await verifier.status())[0]?.generation ?? 0;
  await expect(verifier.rebuild('readiness')).resolves.toMatchObject({ generation: generation + 1 });
  expect(await dumpTables(db.sql, READ_MODELS)).toBe(before);
  expect(await readChangeFeed(db.sql, 0, 1_000_000)).toEqual(feed);
}

function scenarios(open: () => Promise<Database>) {
  it('shows a rebuild whose builder was killed as interrupted once its lease has expired', async () => {
    const db = await open();
    await fill(db, 1000, 1);
    const service = await startService(db, 'service');
    await caughtUp(service, db);
    // A leader that never gets to look at rebuilds, so that nothing takes this one up while the
    // status is watched.
    await db.sql.execute(
      "UPDATE projection_leases SET owner = 'elsewhere', term = term + 1, expires_at = $1 WHERE name = 'readiness'",
      [Date.now() + 600_000],
    );
    await eventually(async () => (await service.status())[0]?.isLeader === false);
    const child = rebuilder(db, 'cli', 4000, FOREVER);
    const progress = await child.waitFor((l) => l.startsWith('rebuilding '), 60_000);
    await child.kill('SIGKILL');
    const killedAt = Date.now();
    const built = Number(progress.split(' ')[1]);
    expect(built).toBeGreaterThan(0);
    expect(built).toBeLessThan(MISSION_IDS.length * 1000);

    const projections = [createReadinessProjection({ store: db.store })];
    const read = async () => (await readProjectionStatus({ store: db.store, sql: db.sql, projections }))[0];
    // Its lease has not run out yet: for all anyone can tell, it is still building.
    const early = (await read())?.rebuild;
    expect(early?.status).toBe('building');
    const interrupted = await eventually(
      async () => {
        const status = await read();
        return status?.rebuild?.status === 'interrupted' ? status : null;
      },
      30_000,
      'the rebuild shown as interrupted',
    );
    const lastSeenAt = Date.parse(interrupted.rebuild?.builder?.lastSeenAt ?? '');
    expect(lastSeenAt).toBeLessThanOrEqual(killedAt);
    expect(lastSeenAt).toBeGreaterThan(killedAt - 60_000);
    expect(early?.builder?.owner).toBe('cli');
    expect(interrupted.rebuild).toMatchObject({
      generation: 1,
      status: 'interrupted',
      events: built,
      builder: { owner: 'cli' },
    });
    // So does the runner standing by (what GET /v1/admin/projections shows).
    expect((await service.status())[0]?.rebuild).toEqual(interrupted.rebuild);
  }, 180_000);

  it('is resumed by the leader that kept running, which swaps it in: the same tables as a rebuild from zero', async () => {
    const db = await open();
    await fill(db, 1000, 2);
    const service = await startService(db, 'service');
    await caughtUp(service, db);
    const child = rebuilder(db, 'cli', TTL, FOREVER);
    await child.waitFor((l) => l.startsWith('rebuilding '), 60_000);
    await child.kill('SIGKILL');
    // The log keeps growing and the live generation keeps up while the rebuild is orphaned.
    await fill(db, 30, 3, true);
    await caughtUp(service, db);
    // Taken up once the dead builder's lease has run out (a few lease periods at most).
    await eventually(async () => (await rebuildLeaseOwner(db.sql)) === 'service', 10 * TTL, 'adoption');
    await fill(db, 30, 4, true);
    await eventually(
      async () => {
        const [status] = await service.status();
        return status?.generation === 1 && status.rebuild === null;
      },
      60_000,
      'the swap',
    );
    await expectSameAsRebuildFromZero(db, service);
  }, 180_000);

  it('fences out a builder stalled past its lease: the leader finishes the rebuild, the builder stops', async () => {
    const db = await open();
    await fill(db, 1000, 5);
    const service = await startService(db, 'service');
    await caughtUp(service, db);
    const child = rebuilder(db, 'cli', TTL, 4 * TTL);
    await child.waitFor((l) => l.startsWith('rebuilding '), 60_000);
    await eventually(async () => (await rebuildLeaseOwner(db.sql)) === 'service', 10 * TTL, 'adoption');
    // Awake again, it finds its lease taken at its next batch and writes nothing more.
    expect(await child.waitFor((l) => l.startsWith('rebuilt ') || l.startsWith('failed '), 60_000)).toBe(
      'failed lease-lost',
    );
    await eventually(
      async () => {
        const [status] = await service.status();
        return status?.generation === 1 && status.rebuild === null;
      },
      60_000,
      'the swap',
    );
    await expectSameAsRebuildFromZero(db, service);
  }, 180_000);
}

describe('a rebuild that cannot be resumed', () => {
  it('is started again from zero by the leader, in a generation of its own, and swapped in', async () => {
    const fx = await openSqliteFixture('rebuild-restart');
    cleanups.push(fx.close);
    for (let i = 0; i < 30; i++) {
      await fx.store.appendToStream(
        `thing-${i % 3}`,
        Array.from({ length: 100 }, (_, n) => ({ type: 'Happened', data: { n } })),
      );
    }
    const counting = countingProjection();
    let shadowFailures = 0;
    // The leader's projection cannot go on with the shadow it finds, once: its first rebuild batch fails.
    const failingOnce: Projection = {
      ...counting,
      handle: async (events, tx, ctx) => {
        if (ctx.mode === 'rebuild' && shadowFailures === 0) {
          shadowFailures++;
          throw new Error('shadow unreadable');
        }
        await counting.handle(events, tx, ctx);
      },
    };
    const options = {
      store: fx.store,
      sql: fx.sql,
      tickMs: 20,
      leaseTtlMs: TTL,
      backoff: { initialMs: 20, maxMs: 200 },
    };
    const service = await startProjections({ ...options, projections: [failingOnce], instanceId: 'service' });
    cleanups.push(() => service.close());
    await eventually(async () => (await service.status())[0]?.caughtUp);
    const cli = await startProjections({
      ...options,
      projections: [countingProjection()],
      instanceId: 'cli',
    });
    cleanups.push(() => cli.close());
    let stopping: Promise<void> | null = null;
    await expect(
      cli.rebuild('counting', {
        onProgress: () => {
          stopping ??= cli.close();
        },
      }),
    ).rejects.toMatchObject({ code: 'projections-closed' });
    await stopping;
    await eventually(
      async () => {
        const [status] = await service.status();
        return status?.generation === 2 && status.rebuild === null;
      },
      60_000,
      'the swap of a second generation',
    );
    expect(shadowFailures).toBe(1);
    expect(Number((await fx.sql.query('SELECT COUNT(*) AS n FROM counting_rows'))[0]?.n)).toBe(3000);
    expect(await fx.sql.query("SELECT name FROM sqlite_master WHERE name LIKE 'counting_rows__g%'")).toEqual(
      [],
    );
  }, 120_000);
});

describe('a rebuild whose builder dies, on SQLite', () => {
  scenarios(async () => {
    // Record time starts in the past and follows the real clock, which the runners use.
    const clock = new ManualClock(Date.now() - 6 * 3_600_000);
    const fx = await openSqliteFixture('rebuild-resume', clock);
    cleanups.push(fx.close);
    return { store: fx.store, sql: fx.sql, target: fx.path, clock };
  });
});

describe.skipIf(postgresSkipReason !== null)(
  `a rebuild whose builder dies, on PostgreSQL${postgresSkipReason ? ` (${postgresSkipReason})` : ''}`,
  () => {
    scenarios(async () => {
      const clock = new ManualClock(Date.now() - 6 * 3_600_000);
      const { url, drop } = await createPostgresDatabase('resume');
      const store = await openPostgresEventStore({
        connectionString: url,
        clock: clock.now,
        pollIntervalMs: 50,
      });
      cleanups.push(async () => {
        await store.close();
        await drop();
      });
      return { store, sql: store.sql, target: url, clock };
    });
  },
);
