import { join } from 'node:path';
import type { EventStore, SqlClient } from '@muster/event-store';
import { openPostgresEventStore } from '@muster/event-store-postgres';
import { openSqliteEventStore } from '@muster/event-store-sqlite';
import { missionStreamName } from '@muster/readiness';
import { describe, expect, it } from 'vitest';
import { type AuditReport, auditMission } from './audit.js';
import { createReadinessProjection } from './readiness/projection.js';
import { startProjections } from './runner.js';
import { ManualClock, tempDir } from './test-support/harness.js';
import { createPostgresDatabase, postgresSkipReason } from './test-support/postgres.js';
import { syntheticMissionEventData } from './testing/synthetic.js';

const missionId = 'busy';
const AUDITS = 60;
const TAMPERED_AUDITS = 10;
/** Events in the stream before the first audit: enough that a replay reads several pages. */
const START = 200;

/** Appends the next events of one synthetic mission, record time following world time. */
function missionWriter(store: EventStore, clock: ManualClock) {
  const events = syntheticMissionEventData({ missionId, events: 1_000_000, seed: 11 });
  const stream = missionStreamName(missionId);
  return async (count: number) => {
    const batch = [];
    for (let i = 0; i < count; i++) batch.push(events.next().value);
    const latest = Math.max(...batch.map((e) => Date.parse(String(e?.metadata?.occurredAt))));
    // Time moves with the mission, so time-caused changes come due as it goes on.
    clock.set(Math.max(clock.ms + 1000, latest + 60_000));
    return store.appendToStream(stream, batch as Parameters<EventStore['appendToStream']>[1]);
  };
}

function startLiveReadiness(store: EventStore, sql: SqlClient, clock: ManualClock) {
  return startProjections({
    store,
    sql,
    projections: [createReadinessProjection({ store, snapshotEvery: 20, snapshotPartChars: 2000 })],
    clock: clock.now,
    timeGraceMs: 0,
    tickMs: 10,
    batchSize: 5,
  });
}

const summary = (reports: readonly AuditReport[]) => {
  const dirty = reports.filter((r) => !r.ok);
  return {
    audits: reports.length,
    dirty: dirty.length,
    // The first few mismatches, for the failure message.
    found: dirty.flatMap((r) => r.mismatches.map((m) => `${m.kind}: ${m.detail}`)).slice(0, 10),
  };
};

/**
 * Audits a mission again and again while it is written to without a pause (one or two events per
 * append, as commands do) and the live projection keeps up in small batches, writing snapshots
 * often: every audit reads read models that the projection is committing to meanwhile. The
 * system is healthy throughout, so every report must be clean; then one history entry is edited,
 * writes going on, and every report must name exactly that entry.
 */
async function auditWhileWriting(store: EventStore, sql: SqlClient, clock: ManualClock) {
  const append = missionWriter(store, clock);
  await append(START);
  const runner = await startLiveReadiness(store, sql, clock);
  let writing = true;
  let appended = START;
  let writeError: unknown = null;
  const writer = (async () => {
    try {
      while (writing) {
        const n = 1 + (appended % 2);
        await append(n);
        appended += n;
        await new Promise((r) => setTimeout(r, 2));
      }
    } catch (error) {
      writeError = error;
    }
  })();
  const audit = async () => {
    const report = await auditMission({ store, sql, missionId });
    // A turn for the writer and the projection between audits, as other requests would take.
    await new Promise((r) => setTimeout(r, 5));
    return report as AuditReport;
  };
  const clean: AuditReport[] = [];
  const tampered: AuditReport[] = [];
  let before = 0;
  try {
    expect(await runner.waitForPosition((await store.headPosition()) as string, 30_000)).toBe(true);
    for (let i = 0; i < AUDITS; i++) clean.push(await audit());
    before = appended;
    const where = 'WHERE mission_id = $1 AND seq = 2';
    const [entry] = await sql.query(`SELECT title FROM readiness_history ${where}`, [missionId]);
    await sql.execute(`UPDATE readiness_history SET title = $2 ${where}`, [missionId, 'edited']);
    try {
      for (let i = 0; i < TAMPERED_AUDITS; i++) tampered.push(await audit());
    } finally {
      await sql.execute(`UPDATE readiness_history SET title = $2 ${where}`, [missionId, entry?.title]);
    }
    writing = false;
    await writer;
    expect(writeError).toBeNull();
    expect(await runner.waitForPosition((await store.headPosition()) as string, 60_000)).toBe(true);
  } finally {
    writing = false;
    await writer;
    await runner.close();
  }
  expect(summary(clean)).toEqual({ audits: AUDITS, dirty: 0, found: [] });
  // The audits ran while the mission moved: they saw it at many revisions, the projection often
  // short of the log's end, and compared snapshots on the way.
  expect(clean.filter((r) => r.projectionBehind).length).toBeGreaterThan(0);
  expect(new Set(clean.map((r) => r.comparedUpTo.revision)).size).toBeGreaterThan(AUDITS / 4);
  expect(clean.some((r) => r.snapshots.compared > 0)).toBe(true);
  expect(before - START).toBeGreaterThan(AUDITS);
  // An edit is reported by every audit, and nothing else is.
  expect(appended).toBeGreaterThan(before);
  for (const report of tampered) {
    expect(report.mismatches).toEqual([expect.objectContaining({ kind: 'history-differs', seq: 2 })]);
  }
  expect(tampered).toHaveLength(TAMPERED_AUDITS);
  // Once the writes stop and the projection catches up, the audit sees the whole log.
  expect(await auditMission({ store, sql, missionId })).toMatchObject({ ok: true, projectionBehind: false });
}

/**
 * The same SQL port, except that before the first page of the history is read (once per reading
 * of the read models, in or out of a read snapshot) it runs `race`, up to `times` times.
 */
function racingHistoryReads(sql: SqlClient, race: () => Promise<void>, times: number) {
  let raced = 0;
  const wrap = (client: SqlClient): SqlClient =>
    new Proxy(client, {
      get(target, key, receiver) {
        if (key === 'query') {
          return async (text: string, params?: readonly unknown[]) => {
            if (raced < times && text.includes('FROM readiness_history') && params?.[1] === 0) {
              raced++;
              await race();
            }
            return target.query(text, params);
          };
        }
        if (key === 'readSnapshot') {
          return <T>(fn: (tx: SqlClient) => Promise<T>) => target.readSnapshot((tx) => fn(wrap(tx)));
        }
        return Reflect.get(target, key, receiver);
      },
    });
  return {
    sql: wrap(sql),
    get raced() {
      return raced;
    },
  };
}

/**
 * A batch of the projection committed while the audit reads the read models, after the mission
 * row and before the history, every time it reads them: the writes go through `writer` (another
 * connection), the audit through `auditor`. The batch adds history entries, moves the mission
 * row, its verdicts and the checkpoint; the audit must compare the state it read, from before the
 * batch, and find it whole.
 */
async function auditRacedByABatch(
  writer: { store: EventStore; sql: SqlClient },
  auditor: { store: EventStore; sql: SqlClient },
  clock: ManualClock,
) {
  const append = missionWriter(writer.store, clock);
  await append(START);
  const runner = await startLiveReadiness(writer.store, writer.sql, clock);
  const historyRows = async () =>
    Number(
      (
        await writer.sql.query('SELECT COUNT(*) AS n FROM readiness_history WHERE mission_id = $1', [
          missionId,
        ])
      )[0]?.n,
    );
  try {
    expect(await runner.waitForPosition((await writer.store.headPosition()) as string, 30_000)).toBe(true);
    const before = { history: await historyRows(), revision: START - 1 };
    const race = async () => {
      const n = await historyRows();
      for (let i = 0; i < 100 && (await historyRows()) === n; i++) {
        const { position } = await append(2);
        expect(await runner.waitForPosition(position, 10_000)).toBe(true);
      }
      expect(await historyRows()).toBeGreaterThan(n);
    };
    const racing = racingHistoryReads(auditor.sql, race, 5);
    const report = await auditMission({ store: auditor.store, sql: racing.sql, missionId });
    expect(racing.raced).toBeGreaterThan(0);
    expect(await historyRows()).toBeGreaterThan(before.history);
    expect(report).toMatchObject({
      ok: true,
      mismatches: [],
      history: { stored: before.history, recomputed: before.history },
      comparedUpTo: { revision: before.revision },
    });
    // The audit after it sees the batches the race committed.
    const after = await auditMission({ store: auditor.store, sql: auditor.sql, missionId });
    expect(after).toMatchObject({ ok: true, mismatches: [], projectionBehind: false });
    expect(after?.comparedUpTo.revision).toBeGreaterThan(before.revision);
    expect(after?.history.stored).toBe(await historyRows());
  } finally {
    await runner.close();
  }
}

/**
 * A rebuild swapped in while the audit compares the snapshots' texts, which it reads after the
 * read snapshot: the live generation's snapshots are gone (the rebuild keeps others), so the
 * audit must notice the new generation and be done again on it rather than report them.
 */
async function auditAcrossASwap(store: EventStore, sql: SqlClient, clock: ManualClock) {
  await missionWriter(store, clock)(START);
  const runner = await startLiveReadiness(store, sql, clock);
  try {
    expect(await runner.waitForPosition((await store.headPosition()) as string, 30_000)).toBe(true);
    const generation = async () =>
      Number(
        (await sql.query("SELECT generation FROM projection_checkpoints WHERE name = 'readiness'"))[0]
          ?.generation,
      );
    const live = await generation();
    const listed = (await sql.query('SELECT revision FROM readiness_snapshots ORDER BY revision')).map((r) =>
      Number(r.revision),
    );
    expect(listed.length).toBeGreaterThan(1);
    let swapped = false;
    const racing = new Proxy(sql, {
      get(target, key, receiver) {
        if (key !== 'query') return Reflect.get(target, key, receiver);
        return async (text: string, params?: readonly unknown[]) => {
          if (!swapped && text.includes(`SELECT state FROM readiness_snapshots`)) {
            swapped = true;
            await runner.rebuild('readiness');
          }
          return target.query(text, params);
        };
      },
    });
    const report = await auditMission({ store, sql: racing, missionId });
    expect(swapped).toBe(true);
    expect(await generation()).toBe(live + 1);
    const kept = (await sql.query('SELECT revision FROM readiness_snapshots ORDER BY revision')).map((r) =>
      Number(r.revision),
    );
    expect(kept).not.toEqual(listed);
    expect(report).toMatchObject({ ok: true, mismatches: [], snapshots: { stored: kept.length } });
  } finally {
    await runner.close();
  }
}

/** A SQLite file and a store on it whose replays hand the event loop a turn often. */
async function openSqlite(label: string, clock: ManualClock) {
  const { dir, remove } = tempDir(label);
  const path = join(dir, 'muster.db');
  // Small pages: a replay hands the event loop a turn between pages once it has run 10 ms, as a
  // long mission's replay does with the default pages, and the projection commits meanwhile.
  const store = await openSqliteEventStore({ path, clock: clock.now, pollIntervalMs: 20, pageSize: 10 });
  return { store, path, remove };
}

describe('auditing a mission that is being written to', () => {
  it('reports nothing on SQLite while the live projection commits around every audit', async () => {
    const clock = new ManualClock();
    const { store, remove } = await openSqlite('audit-busy', clock);
    try {
      await auditWhileWriting(store, store.sql, clock);
    } finally {
      await store.close();
      remove();
    }
  }, 180_000);

  it('reads the read models as of one commit on SQLite: a batch another connection commits meanwhile is left for the next audit', async () => {
    const clock = new ManualClock();
    const { store, path, remove } = await openSqlite('audit-raced', clock);
    // The projection and the writes on a connection of their own, as in another process: this
    // process's own writers wait for the audit's read snapshot, which holds its connection.
    const other = await openSqliteEventStore({ path, clock: clock.now, pollIntervalMs: 20 });
    try {
      await auditRacedByABatch({ store: other, sql: other.sql }, { store, sql: store.sql }, clock);
    } finally {
      await other.close();
      await store.close();
      remove();
    }
  }, 120_000);

  it('is done again on SQLite when a rebuild is swapped in while it compares the snapshots', async () => {
    const clock = new ManualClock();
    const { store, remove } = await openSqlite('audit-swap', clock);
    try {
      await auditAcrossASwap(store, store.sql, clock);
    } finally {
      await store.close();
      remove();
    }
  }, 120_000);

  describe.skipIf(postgresSkipReason !== null)(
    `on PostgreSQL${postgresSkipReason ? ` (${postgresSkipReason})` : ''}`,
    () => {
      it('reports nothing while the live projection commits around every audit', async () => {
        const clock = new ManualClock();
        const { url, drop } = await createPostgresDatabase('audit_busy');
        const store = await openPostgresEventStore({
          connectionString: url,
          clock: clock.now,
          pollIntervalMs: 20,
        });
        try {
          await auditWhileWriting(store, store.sql, clock);
        } finally {
          await store.close();
          await drop();
        }
      }, 180_000);

      it('reads the read models as of one commit: a batch committed meanwhile is left for the next audit', async () => {
        const clock = new ManualClock();
        const { url, drop } = await createPostgresDatabase('audit_raced');
        const store = await openPostgresEventStore({
          connectionString: url,
          clock: clock.now,
          pollIntervalMs: 20,
        });
        try {
          const both = { store, sql: store.sql };
          await auditRacedByABatch(both, both, clock);
        } finally {
          await store.close();
          await drop();
        }
      }, 120_000);

      it('is done again when a rebuild is swapped in while it compares the snapshots', async () => {
        const clock = new ManualClock();
        const { url, drop } = await createPostgresDatabase('audit_swap');
        const store = await openPostgresEventStore({
          connectionString: url,
          clock: clock.now,
          pollIntervalMs: 20,
        });
        try {
          await auditAcrossASwap(store, store.sql, clock);
        } finally {
          await store.close();
          await drop();
        }
      }, 120_000);
    },
  );
});
