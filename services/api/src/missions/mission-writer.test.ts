import { randomUUID } from 'node:crypto';
import { type EventStore, type RecordedEvent, verifyStream } from '@muster/event-store';
import { collect } from '@muster/event-store/contract';
import { openPostgresEventStore, openPostgresSql } from '@muster/event-store-postgres';
import { openSqliteEventStore } from '@muster/event-store-sqlite';
import { type MissionCommand, missionStreamName, parseCommand } from '@muster/readiness';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CommandContext, type LockedOutcome, MissionWriter } from './mission-writer.js';

/**
 * Write starvation (docs/reliability.md, "Several replicas"): another writer appends to the mission
 * between this writer's decision and every one of its appends, as a replica writing the mission
 * without pause can. A store wrapper makes that happen every time, so the outcome is certain: the
 * optimistic loop alone loses all nine tries; with the store's lock the third try is decided under
 * it and lands.
 */

const context: CommandContext = { actor: { agency: 'un-dpo', keyId: 'key_test' }, correlationId: 'corr' };

const command = (missionId: string, type: string, payload: Record<string, unknown>): MissionCommand =>
  parseCommand({
    type,
    commandId: randomUUID(),
    missionId,
    occurredAt: '2024-03-01T12:00:00.000Z',
    ...payload,
  });
const pledge = (missionId: string, pledgeId: string) =>
  command(missionId, 'PledgeLogistics', {
    pledgeId,
    pledger: 'canada',
    capability: 'airlift',
    quantity: 1,
    unit: 'aircraft',
  });
const report = (missionId: string, n: number) =>
  command(missionId, 'ReportUnitReadiness', { unit: 'GSU', officersReady: n, status: 'standby' });

interface Hammered {
  store: EventStore;
  /** Appends of the writer under test to the mission, and its calls to decide under the lock. */
  optimistic: number;
  locked: number;
  /** The writer's look-ups of the mission's revision (the check of a refusal on a cached state). */
  revisionChecks: number;
}

/**
 * The writer's view of the store: before each of its appends to `stream`, plain or under the lock,
 * `rival` writes to the same stream first. `lock: false` hides the capability (as EventStoreDB).
 */
function hammered(
  inner: EventStore,
  stream: string,
  rival: () => Promise<unknown>,
  options: { lock: boolean },
): Hammered {
  const counts = { optimistic: 0, locked: 0, revisionChecks: 0 };
  const store: EventStore = {
    kind: inner.kind,
    appendToStream: async (s, events, appendOptions) => {
      if (s === stream) {
        counts.optimistic++;
        await rival();
      }
      return inner.appendToStream(s, events, appendOptions);
    },
    readStream: (s, readOptions) => inner.readStream(s, readOptions),
    readAll: (readOptions) => inner.readAll(readOptions),
    subscribeToAll: (subscribeOptions) => inner.subscribeToAll(subscribeOptions),
    streamRevision: (s) => {
      if (s === stream) counts.revisionChecks++;
      return inner.streamRevision(s);
    },
    headPosition: () => inner.headPosition(),
    canonicalPosition: (position) => inner.canonicalPosition(position),
    ping: () => inner.ping(),
    close: () => inner.close(),
  };
  const appendUnderLock = inner.appendUnderLock?.bind(inner);
  if (options.lock && appendUnderLock) {
    store.appendUnderLock = async (s, lockOptions, decide) => {
      if (s === stream) {
        counts.locked++;
        await rival();
      }
      return appendUnderLock(s, lockOptions, decide);
    };
  }
  return Object.assign(counts, { store });
}

interface Backend {
  name: string;
  skip?: string | undefined;
  /** The store of the writer under test and the rival's: one for SQLite, two replicas on PostgreSQL. */
  open(): Promise<{ mine: EventStore; theirs: EventStore; shared: boolean }>;
  dispose(): Promise<void>;
}

const sqlite: Backend = {
  name: 'SQLite',
  async open() {
    const store = await openSqliteEventStore({ path: ':memory:' });
    return { mine: store, theirs: store, shared: false };
  },
  async dispose() {},
};

/** PostgreSQL through DATABASE_URL, on a database of its own; CI requires it (MUSTER_REQUIRE_POSTGRES=1). */
const adminUrl = process.env.DATABASE_URL;
const postgresRequired = process.env.MUSTER_REQUIRE_POSTGRES === '1';
if (!adminUrl && postgresRequired) {
  throw new Error('MUSTER_REQUIRE_POSTGRES=1 but DATABASE_URL is not set: the PostgreSQL tests cannot run');
}
const databaseName = `muster_test_writer_${randomUUID().replaceAll('-', '').slice(0, 12)}`;
const postgres: Backend = {
  name: 'PostgreSQL (two replicas)',
  skip: adminUrl ? undefined : 'DATABASE_URL is not set',
  async open() {
    const admin = await openPostgresSql(adminUrl as string);
    try {
      await admin.execute(`CREATE DATABASE ${databaseName} ENCODING 'UTF8' TEMPLATE template0`);
    } finally {
      await admin.close();
    }
    const url = new URL(adminUrl as string);
    url.pathname = `/${databaseName}`;
    // As the service opens it (stores.ts).
    const open = () =>
      openPostgresEventStore({ connectionString: url.toString(), chainPipelinedAppends: true });
    const [mine, theirs] = await Promise.all([open(), open()]);
    return { mine, theirs, shared: true };
  },
  async dispose() {
    const admin = await openPostgresSql(adminUrl as string);
    try {
      await admin.execute(`DROP DATABASE IF EXISTS ${databaseName} WITH (FORCE)`);
    } finally {
      await admin.close();
    }
  },
};

for (const backend of [sqlite, postgres]) {
  if (backend.skip) {
    describe.skip(`a mission another writer appends to without pause: ${backend.name} (skipped: ${backend.skip})`, () => {
      it('needs the store', () => {});
    });
    process.stderr.write(`[api] mission writer on ${backend.name} skipped: ${backend.skip}\n`);
    continue;
  }

  describe(`a mission another writer appends to without pause: ${backend.name}`, () => {
    let mine: EventStore;
    let theirs: EventStore;
    let shared: boolean;

    beforeAll(async () => {
      ({ mine, theirs, shared } = await backend.open());
    });
    afterAll(async () => {
      await mine?.close();
      if (theirs !== mine) await theirs?.close();
      await backend.dispose();
    });

    /** A mission defined by the rival, whose every further write is a command of `next`. */
    const contested = async (lock: boolean, next: (missionId: string, n: number) => MissionCommand) => {
      const missionId = `starved-${randomUUID().slice(0, 8)}`;
      const rival = new MissionWriter({ store: theirs, sharedStore: shared });
      await rival.execute(command(missionId, 'DefineMission', { template: 'mss-haiti' }), context);
      let n = 0;
      const rivalWrites: RecordedEvent[] = [];
      const view = hammered(
        mine,
        missionStreamName(missionId),
        async () => rivalWrites.push(...(await rival.execute(next(missionId, n++), context)).events),
        { lock },
      );
      const lockedOutcomes: LockedOutcome[] = [];
      const writer = new MissionWriter({
        store: view.store,
        sharedStore: shared,
        onLocked: (outcome) => lockedOutcomes.push(outcome),
      });
      const log = () => collect(mine.readStream(missionStreamName(missionId)));
      return { missionId, view, writer, rivalWrites, log, lockedOutcomes };
    };

    it('a command is decided under the stream lock after two conflicts, on what the other writer wrote, and lands', async () => {
      const { missionId, view, writer, rivalWrites, log, lockedOutcomes } = await contested(true, report);
      const outcome = await writer.execute(pledge(missionId, 'p1'), context);
      expect(outcome.events.map((e) => e.type)).toEqual(['LogisticsPledged']);
      expect({ optimistic: view.optimistic, locked: view.locked }).toEqual({ optimistic: 2, locked: 1 });
      expect(lockedOutcomes).toEqual(['appended']);
      const events = await log();
      // The rival wrote before each of the three tries; the pledge landed on its last write.
      expect(rivalWrites).toHaveLength(3);
      expect(events.slice(-4).map((e) => e.id)).toEqual([...rivalWrites, ...outcome.events].map((e) => e.id));
      expect(outcome.revision).toBe(events.length - 1);
      expect(outcome.events[0]).toEqual(events[events.length - 1]);
      expect(await verifyStream(events)).toMatchObject({ ok: true, count: events.length });
      // The writer's cache holds the state decided under the lock: the next command starts from it.
      const after = await writer.current(missionId);
      expect(after.revision).toBe(outcome.revision);
      expect(after.state.eventCount).toBe(events.length);
    });

    it('a refusal decided under the lock is true of the log and answered as it is, without a check of the revision', async () => {
      // The rival confirms p1 just before the try under the lock; the two before it, unit reports.
      const { missionId, view, writer, log, lockedOutcomes } = await contested(true, (id, n) =>
        n < 2 ? report(id, n) : command(id, 'ConfirmPledge', { pledgeId: 'p1' }),
      );
      const pledged = await new MissionWriter({ store: theirs, sharedStore: shared }).execute(
        pledge(missionId, 'p1'),
        context,
      );
      expect(pledged.events).toHaveLength(1);
      const refused = await writer
        .execute(command(missionId, 'ConfirmPledge', { pledgeId: 'p1' }), context)
        .catch((error) => error);
      expect(refused).toMatchObject({ code: 'pledge-already-confirmed' });
      expect({
        optimistic: view.optimistic,
        locked: view.locked,
        revisionChecks: view.revisionChecks,
      }).toEqual({
        optimistic: 2,
        locked: 1,
        revisionChecks: 0,
      });
      const confirmations = (await log()).filter((e) => e.type === 'PledgeConfirmed');
      expect(confirmations).toHaveLength(1);
      expect(lockedOutcomes).toEqual(['refused']);
    });

    it('commands sent together on the contested mission all land, each once', async () => {
      const { missionId, view, writer, log, lockedOutcomes } = await contested(true, report);
      const outcomes = await Promise.allSettled(
        Array.from({ length: 5 }, (_, i) => writer.execute(pledge(missionId, `together-${i}`), context)),
      );
      expect(outcomes.filter((o) => o.status === 'rejected')).toEqual([]);
      const events = await log();
      const pledged = events
        .filter((e) => e.type === 'LogisticsPledged')
        .map((e) => (e.data as { pledgeId: string }).pledgeId);
      expect([...pledged].sort()).toEqual(Array.from({ length: 5 }, (_, i) => `together-${i}`));
      expect(await verifyStream(events)).toMatchObject({ ok: true, count: events.length });
      expect(view.locked).toBeGreaterThan(0);
      expect(lockedOutcomes).toEqual(Array.from({ length: view.locked }, () => 'appended'));
    });

    it('where the store cannot lock (EventStoreDB), the bounded optimistic loop stays: 409 conflict after nine tries, nothing appended', async () => {
      const { missionId, view, writer, log, lockedOutcomes } = await contested(false, report);
      const error = await writer.execute(pledge(missionId, 'p1'), context).catch((e) => e);
      expect(error).toMatchObject({ code: 'conflict', status: 409 });
      expect({ optimistic: view.optimistic, locked: view.locked }).toEqual({ optimistic: 9, locked: 0 });
      expect(lockedOutcomes).toEqual([]);
      expect((await log()).filter((e) => e.type === 'LogisticsPledged')).toEqual([]);
    });
  });
}
