import { DomainError, missionStreamName, mssHaitiScenario, type PhaseStatus } from '@muster/readiness';
import { afterEach, describe, expect, it } from 'vitest';
import { readChangeFeed } from '../change-feed.js';
import { type ProjectionsHandle, startProjections } from '../runner.js';
import { eventually, ManualClock, MissionDriver, openSqliteFixture } from '../test-support/harness.js';
import { createReadinessProjection } from './projection.js';
import { createReadinessQueries } from './queries.js';

const missionId = mssHaitiScenario.missionId;
const EXPIRY = '2024-10-02T20:00:00.000Z';

type Fixture = Awaited<ReturnType<typeof openSqliteFixture>>;
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function setup(): Promise<{
  fx: Fixture;
  clock: ManualClock;
  start: () => Promise<ProjectionsHandle>;
}> {
  const clock = new ManualClock(Date.parse('2024-02-01T00:00:00Z'));
  const fx = await openSqliteFixture('scenario', clock);
  cleanups.push(fx.close);
  const start = async () => {
    const runner = await startProjections({
      store: fx.store,
      sql: fx.sql,
      projections: [createReadinessProjection({ store: fx.store })],
      clock: clock.now,
      timeGraceMs: 0,
      tickMs: 20,
      leaseTtlMs: 2000,
    });
    cleanups.push(() => runner.close());
    return runner;
  };
  return { fx, clock, start };
}

/** The verdict the history says holds now: the last entry of each phase. */
function verdictFromHistory(entries: { phase: string; to: PhaseStatus | null; unmetAfter: string[] }[]) {
  const last = new Map<string, { status: PhaseStatus | null; unmet: string[] }>();
  for (const e of entries) last.set(e.phase, { status: e.to, unmet: e.unmetAfter });
  return ['reconnaissance', 'main-deployment'].map((phase) => ({
    phase,
    status: last.get(phase)?.status,
    unmet: last.get(phase)?.unmet,
  }));
}

async function playScenario(fx: Fixture, clock: ManualClock, runner: ProjectionsHandle) {
  const driver = new MissionDriver(fx.store);
  const queries = createReadinessQueries({ store: fx.store, sql: fx.sql });
  for (const [index, step] of mssHaitiScenario.steps.entries()) {
    clock.set(step.expected.at);
    let error: string | null = null;
    try {
      const result = await driver.run(step.command);
      if (result) expect(await runner.waitForPosition(result.position, 10_000)).toBe(true);
    } catch (caught) {
      if (!(caught instanceof DomainError)) throw caught;
      error = caught.code;
    }
    const page = await queries.history(missionId, { limit: 1000 });
    expect({ step: index + 1, error, phases: verdictFromHistory(page?.entries ?? []) }, step.title).toEqual({
      step: index + 1,
      error: step.expected.error,
      phases: step.expected.phases.map((p) => ({ phase: p.phase, status: p.status, unmet: [...p.unmet] })),
    });
    const current = await queries.currentVerdict(missionId);
    expect(current?.phases.map((p) => p.status)).toEqual(step.expected.phases.map((p) => p.status));
  }
  return { driver, queries };
}

describe('the readiness projection on the MSS Haiti scenario', () => {
  it('records a history whose verdict after every step is the one the fixture expects', async () => {
    const { fx, clock, start } = await setup();
    const runner = await start();
    const { queries } = await playScenario(fx, clock, runner);
    const page = await queries.history(missionId, { limit: 1000 });
    const entries = page?.entries ?? [];
    expect(entries.every((e) => e.cause === 'event')).toBe(true);
    // The first entries are the mission's first verdict, caused by its definition.
    expect(entries.slice(0, 2).map((e) => [e.phase, e.from, e.to])).toEqual([
      ['reconnaissance', null, 'not-ready'],
      ['main-deployment', null, 'not-ready'],
    ]);
    const feed = await readChangeFeed(fx.sql, 0, 10_000);
    const readiness = feed.filter((c) => c.kind === 'readiness.changed');
    expect(readiness.map((c) => [c.subject, c.payload.from, c.payload.to])).toEqual(
      entries.filter((e) => e.from !== e.to).map((e) => [e.phase, e.from, e.to]),
    );
    expect(
      feed.filter((c) => c.kind === 'pledge.changed').map((c) => `${c.subject}:${c.payload.status}`),
    ).toEqual([
      'us-funding:pledged',
      'canada-funding:pledged',
      'us-airlift:pledged',
      'chile-medical:pledged',
      'benin-officers:pledged',
      'us-funding:confirmed',
      'jamaica-officers:pledged',
      'nigeria-equipment:pledged',
      'burundi-officers:pledged',
      'canada-funding:confirmed',
      'us-airlift:confirmed',
    ]);
    expect(new Set(feed.map((c) => c.changeId)).size).toBe(feed.length);
    // Each change names its cause's revision and hash as the log holds them: a receipt.
    const logged = new Map<string, { revision: number; hash: string }>();
    for await (const e of fx.store.readStream(missionStreamName(missionId)))
      logged.set(e.id, { revision: e.revision, hash: e.hash });
    expect(feed.map((c) => ({ revision: c.causeRevision, hash: c.causeHash }))).toEqual(
      feed.map((c) => logged.get(c.causeEventId as string)),
    );
  });

  it('records the mandate expiry at the instant it takes effect, with no event as its cause', async () => {
    const { fx, clock, start } = await setup();
    const runner = await start();
    const { queries } = await playScenario(fx, clock, runner);
    const changes: string[] = [];
    runner.onChanges((batch) => changes.push(...batch.map((c) => c.kind)));
    clock.set('2024-10-02T19:59:59.999Z');
    runner.poke();
    await new Promise((r) => setTimeout(r, 100));
    const before = (await queries.history(missionId, { limit: 1000 }))?.entries.length ?? 0;
    clock.set('2024-10-05T00:00:00Z');
    runner.poke();
    const expiry = await eventually(async () => {
      const page = await queries.history(missionId, { limit: 1000 });
      return page?.entries.find((e) => e.cause === 'time');
    });
    expect(before).toBe((await queries.history(missionId, { limit: 1000 }))!.entries.length - 1);
    expect(expiry).toMatchObject({
      phase: 'main-deployment',
      from: 'ready',
      to: 'not-ready',
      occurredAt: Date.parse(EXPIRY),
      recordedAt: Date.parse(EXPIRY),
      causeEventId: null,
      unmetBefore: [],
      unmetAfter: ['un-backing'],
    });
    const current = await queries.currentVerdict(missionId);
    expect(current?.at).toBe(EXPIRY);
    expect(current?.phases.find((p) => p.phase === 'main-deployment')?.status).toBe('not-ready');
    await eventually(async () => changes.includes('readiness.changed'));
    const feed = await readChangeFeed(fx.sql, 0, 10_000);
    const timeChanges = feed.filter((c) => c.causeEventId === null);
    expect(timeChanges.map((c) => [c.kind, c.occurredAt, c.recordedAt])).toEqual([
      ['readiness.changed', Date.parse(EXPIRY), Date.parse(EXPIRY)],
      ['precondition.changed', Date.parse(EXPIRY), Date.parse(EXPIRY)],
    ]);
    // No event caused them: no hash; the revision is the last one folded.
    const last = await fx.store.streamRevision(missionStreamName(missionId));
    expect(timeChanges.map((c) => [c.causeRevision, c.causeHash])).toEqual([
      [last, null],
      [last, null],
    ]);
  });

  it('records the expiry at its instant when the runner was stopped across it, before later events', async () => {
    const { fx, clock, start } = await setup();
    const first = await start();
    const { driver, queries } = await playScenario(fx, clock, first);
    await first.close();
    clock.set('2024-12-01T09:00:00Z');
    // A report recorded after the expiry, while nothing was running.
    const result = await driver.run({
      type: 'ReportUnitReadiness',
      commandId: 'late-report',
      missionId,
      occurredAt: '2024-12-01T09:00:00Z',
      unit: 'RDU',
      officersReady: 100,
      status: 'standby',
    });
    const second = await start();
    expect(await second.waitForPosition(result!.position, 10_000)).toBe(true);
    const entries = (await queries.history(missionId, { limit: 1000 }))!.entries;
    const tail = entries.slice(-2);
    expect(tail.map((e) => [e.cause, e.phase, e.from, e.to, new Date(e.recordedAt).toISOString()])).toEqual([
      ['time', 'main-deployment', 'ready', 'not-ready', EXPIRY],
      ['event', 'main-deployment', 'not-ready', 'not-ready', '2024-12-01T09:00:00.000Z'],
    ]);
    expect(tail[1]?.unmetAfter).toEqual(['un-backing', 'officers-ready']);
  });

  it('moves many missions past the expiry in chunks, in the order one pass would', async () => {
    const { fx, clock } = await setup();
    const driver = new MissionDriver(fx.store);
    // More missions than time moves in one statement, none of them in a small memory.
    const ids = Array.from({ length: 37 }, (_, i) => `fleet-${String((i * 17) % 37).padStart(2, '0')}`);
    for (const step of mssHaitiScenario.steps) {
      clock.set(step.expected.at);
      for (const id of ids) {
        await driver
          .run({ ...step.command, missionId: id, commandId: `${id}-${step.command.commandId}` })
          .catch((error: unknown) => {
            if (!(error instanceof DomainError)) throw error;
          });
      }
    }
    clock.set('2024-10-05T00:00:00Z');
    const runner = await startProjections({
      store: fx.store,
      sql: fx.sql,
      projections: [createReadinessProjection({ store: fx.store, cacheSize: 3 })],
      clock: clock.now,
      timeGraceMs: 0,
      tickMs: 20,
      leaseTtlMs: 2000,
    });
    cleanups.push(() => runner.close());
    const queries = createReadinessQueries({ store: fx.store, sql: fx.sql });
    for (const id of ids) {
      const expiry = await eventually(async () => {
        const timed = (await queries.history(id, { limit: 1000 }))?.entries.filter((e) => e.cause === 'time');
        return timed?.length ? timed : undefined;
      });
      expect(expiry?.map((e) => [e.phase, e.from, e.to, e.recordedAt])).toEqual([
        ['main-deployment', 'ready', 'not-ready', Date.parse(EXPIRY)],
      ]);
    }
    const feed = await readChangeFeed(fx.sql, 0, 100_000);
    const moved = feed.filter((c) => c.causeEventId === null && c.kind === 'readiness.changed');
    expect(moved.map((c) => c.missionId)).toEqual([...ids].sort());
  });

  it('keeps no time-caused change when the clock has not reached it', async () => {
    const { fx, clock, start } = await setup();
    const runner = await start();
    await playScenario(fx, clock, runner);
    clock.set('2024-10-02T19:59:59.999Z');
    runner.poke();
    await new Promise((r) => setTimeout(r, 200));
    const feed = await readChangeFeed(fx.sql, 0, 10_000);
    expect(feed.filter((c) => c.causeEventId === null)).toEqual([]);
    const mission = await createReadinessQueries({ store: fx.store, sql: fx.sql }).getMission(missionId);
    expect(mission?.nextChangeAt).toBe(EXPIRY);
  });
});
