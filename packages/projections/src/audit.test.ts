import { openPostgresEventStore } from '@muster/event-store-postgres';
import { openSqliteEventStore } from '@muster/event-store-sqlite';
import { DomainError, mssHaitiScenario } from '@muster/readiness';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditMission } from './audit.js';
import { createReadinessProjection } from './readiness/projection.js';
import { createReadinessQueries } from './readiness/queries.js';
import { startProjections } from './runner.js';
import {
  fillSynthetic,
  ManualClock,
  MissionDriver,
  openSqliteFixture,
  playMssHaiti,
} from './test-support/harness.js';
import { createPostgresDatabase, postgresSkipReason } from './test-support/postgres.js';

const missionId = mssHaitiScenario.missionId;
let fx: Awaited<ReturnType<typeof openSqliteFixture>>;
let stop: () => Promise<void> = async () => {};

beforeAll(async () => {
  const clock = new ManualClock();
  fx = await openSqliteFixture('audit', clock);
  await playMssHaiti(fx.store, clock);
  const runner = await startProjections({
    store: fx.store,
    sql: fx.sql,
    projections: [createReadinessProjection({ store: fx.store })],
    clock: clock.now,
    timeGraceMs: 0,
    tickMs: 20,
  });
  await runner.waitForPosition((await fx.store.headPosition()) as string, 10_000);
  // Past the mandate's expiry, so the history holds a change no event caused.
  clock.set('2024-11-01T00:00:00Z');
  runner.poke();
  for (let i = 0; i < 200; i++) {
    const [s] = await runner.status();
    if (s?.watermark === '2024-11-01T00:00:00.000Z') break;
    await new Promise((r) => setTimeout(r, 20));
  }
  await runner.close();
  stop = fx.close;
});
afterAll(() => stop());

const audit = () => auditMission({ store: fx.store, sql: fx.sql, missionId });

/** Applies a change to the database, runs `check`, and puts everything back. */
async function tampered<T>(
  change: string,
  params: unknown[],
  undo: string,
  undoParams: unknown[],
  check: () => Promise<T>,
  on: { sql: typeof fx.sql } = fx,
) {
  await on.sql.execute(change, params);
  try {
    return await check();
  } finally {
    await on.sql.execute(undo, undoParams);
  }
}

describe('auditing a mission', () => {
  it('finds nothing to report when the log and the read models agree', async () => {
    const report = await audit();
    expect(report).toMatchObject({ ok: true, mismatches: [], projectionBehind: false, chain: { ok: true } });
    expect(report?.history.stored).toBe(report?.history.recomputed);
    expect(report?.history.stored).toBeGreaterThan(10);
    expect(report?.comparedUpTo.timeUntil).toBe('2024-11-01T00:00:00.000Z');
    expect(await auditMission({ store: fx.store, sql: fx.sql, missionId: 'no-such-mission' })).toBeNull();
  });

  it('reports each read-model row that says something the log does not', async () => {
    const [row] = await fx.sql.query(
      'SELECT to_status FROM readiness_history WHERE mission_id = $1 AND seq = 5',
      [missionId],
    );
    const report = await tampered(
      "UPDATE readiness_history SET to_status = 'ready' WHERE mission_id = $1 AND seq = 5",
      [missionId],
      'UPDATE readiness_history SET to_status = $2 WHERE mission_id = $1 AND seq = 5',
      [missionId, row?.to_status],
      audit,
    );
    expect(report?.mismatches).toEqual([
      expect.objectContaining({ kind: 'history-differs', seq: 5, fields: ['to'] }),
    ]);
    const [verdict] = await fx.sql.query(
      "SELECT * FROM readiness_verdicts WHERE mission_id = $1 AND phase = 'reconnaissance'",
      [missionId],
    );
    const missing = await tampered(
      "DELETE FROM readiness_verdicts WHERE mission_id = $1 AND phase = 'reconnaissance'",
      [missionId],
      'INSERT INTO readiness_verdicts (mission_id, phase, ord, title, status, policy_version, verdict) VALUES ($1, $2, $3, $4, $5, $6, $7)',
      [
        verdict?.mission_id,
        verdict?.phase,
        verdict?.ord,
        verdict?.title,
        verdict?.status,
        verdict?.policy_version,
        verdict?.verdict,
      ],
      audit,
    );
    expect(missing?.mismatches.map((m) => m.kind)).toEqual(['verdict-missing']);
    const [last] = await fx.sql.query(
      'SELECT * FROM readiness_history WHERE mission_id = $1 ORDER BY seq DESC LIMIT 1',
      [missionId],
    );
    const columns = Object.keys(last ?? {});
    const extra = await tampered(
      'DELETE FROM readiness_history WHERE mission_id = $1 AND seq = $2',
      [missionId, last?.seq],
      `INSERT INTO readiness_history (${columns.join(', ')}) VALUES (${columns.map((_, i) => `$${i + 1}`).join(', ')})`,
      columns.map((c) => last?.[c]),
      audit,
    );
    expect(extra?.mismatches.map((m) => m.kind)).toEqual(['history-missing']);
  });

  it('names the stored event that is no longer JSON, and compares only what comes before it', async () => {
    const stream = `mission-${missionId}`;
    const [row] = await fx.sql.query(
      'SELECT id, position, data FROM events WHERE stream = $1 AND revision = 10',
      [stream],
    );
    const data = String(row?.data);
    const [count] = await fx.sql.query('SELECT COUNT(*) AS n FROM events WHERE stream = $1', [stream]);
    const report = await tampered(
      'UPDATE events SET data = $1 WHERE position = $2',
      [data.slice(0, -1), row?.position],
      'UPDATE events SET data = $1 WHERE position = $2',
      [data, row?.position],
      audit,
    );
    expect(report).toMatchObject({
      ok: false,
      events: Number(count?.n),
      projectionBehind: false,
      chain: { ok: false, reason: 'malformed', brokenAt: { index: 10, revision: 10, eventId: row?.id } },
      comparedUpTo: { revision: 9 },
    });
    expect(report?.mismatches).toEqual([
      expect.objectContaining({ kind: 'chain', revision: 10, eventId: row?.id }),
    ]);
    expect(report?.history.recomputed).toBeGreaterThan(0);
    expect(report?.history.recomputed).toBeLessThan(report?.history.stored ?? 0);
  });

  it('compares every column of the mission row with what the log implies', async () => {
    const [row] = await fx.sql.query('SELECT * FROM readiness_missions WHERE mission_id = $1', [missionId]);
    expect(row).toBeDefined();
    const columns = Object.keys(row ?? {}).filter((c) => c !== 'mission_id');
    expect(columns).toHaveLength(18);
    const queries = createReadinessQueries({ store: fx.store, sql: fx.sql });
    for (const column of columns) {
      const original = row?.[column];
      const changed =
        column === 'base_currency'
          ? 'EUR'
          : column === 'recorded_monotonic'
            ? 1 - Number(original)
            : typeof original === 'number'
              ? original + 1
              : original === null
                ? 1
                : `${original}x`;
      const report = await tampered(
        `UPDATE readiness_missions SET ${column} = $1 WHERE mission_id = $2`,
        [changed, missionId],
        `UPDATE readiness_missions SET ${column} = $1 WHERE mission_id = $2`,
        [original, missionId],
        async () => {
          if (column === 'base_currency')
            expect((await queries.getMission(missionId))?.baseCurrency).toBe('EUR');
          return audit();
        },
      );
      expect(report?.mismatches, column).toEqual([
        expect.objectContaining({ kind: 'mission-differs', fields: [column] }),
      ]);
    }
  });

  it('reports positions that do not increase with revisions', async () => {
    const stream = `mission-${missionId}`;
    const rows = await fx.sql.query(
      'SELECT revision, position FROM events WHERE stream = $1 AND revision IN (5, 6) ORDER BY revision',
      [stream],
    );
    const [five, six] = rows.map((r) => Number(r.position));
    const swap = async () => {
      await fx.sql.execute('UPDATE events SET position = -1 WHERE position = $1', [five]);
      await fx.sql.execute('UPDATE events SET position = $1 WHERE position = $2', [five, six]);
      await fx.sql.execute('UPDATE events SET position = $1 WHERE position = -1', [six]);
    };
    await swap();
    let report: Awaited<ReturnType<typeof audit>>;
    try {
      report = await audit();
    } finally {
      await swap();
    }
    expect(report?.chain.ok).toBe(true);
    expect(report?.ok).toBe(false);
    expect(report?.mismatches.filter((m) => m.kind === 'position-order')).toEqual([
      expect.objectContaining({ kind: 'position-order', revision: 6 }),
    ]);
    expect((await audit())?.ok).toBe(true);
  });

  it('detects a change to any byte of any stored event, and a change of order', async () => {
    const rows = await fx.sql.query(
      'SELECT position, data, metadata, recorded_at, hash, previous_hash, type FROM events ORDER BY position',
    );
    const columns = ['data', 'metadata', 'recorded_at', 'hash', 'previous_hash', 'type'] as const;
    await fc.assert(
      fc.asyncProperty(
        fc.nat(rows.length - 1),
        fc.constantFrom(...columns),
        fc.nat(),
        fc.integer({ min: 1, max: 0xffff }),
        async (index, column, offsetSeed, delta) => {
          const row = rows[index] as Record<string, unknown>;
          const original = row[column];
          if (typeof original !== 'string') return;
          const offset = offsetSeed % original.length;
          const code = (original.charCodeAt(offset) + delta) % 0xffff || 1;
          const changed = original.slice(0, offset) + String.fromCharCode(code) + original.slice(offset + 1);
          if (changed === original) return;
          const report = await tampered(
            `UPDATE events SET ${column} = $1 WHERE position = $2`,
            [changed, row.position],
            `UPDATE events SET ${column} = $1 WHERE position = $2`,
            [original, row.position],
            audit,
          );
          expect(report?.ok, `${column} of event ${index}`).toBe(false);
          expect(report?.mismatches.some((m) => m.kind === 'chain')).toBe(true);
        },
      ),
      { numRuns: 150 },
    );
    const swap = async () => {
      const stream = `mission-${missionId}`;
      await fx.sql.execute('UPDATE events SET revision = -1 WHERE stream = $1 AND revision = 3', [stream]);
      await fx.sql.execute('UPDATE events SET revision = 3 WHERE stream = $1 AND revision = 4', [stream]);
      await fx.sql.execute('UPDATE events SET revision = 4 WHERE stream = $1 AND revision = -1', [stream]);
    };
    await swap();
    const swapped = await audit();
    await swap();
    expect(swapped?.mismatches[0]).toMatchObject({ kind: 'chain', revision: 3 });
    expect((await audit())?.ok).toBe(true);
  }, 180_000);
});

type Fixture = Awaited<ReturnType<typeof openSqliteFixture>>;

/** The readiness projection on a fixture, its time the test's clock, with no grace. */
function startReadiness(f: Fixture, clock: ManualClock) {
  return startProjections({
    store: f.store,
    sql: f.sql,
    projections: [createReadinessProjection({ store: f.store })],
    clock: clock.now,
    timeGraceMs: 0,
    tickMs: 20,
  });
}

/** Runs the readiness projection until it has processed the whole log and time up to the clock. */
async function projectOnce(f: Fixture, clock: ManualClock): Promise<void> {
  const runner = await startReadiness(f, clock);
  try {
    expect(await runner.waitForPosition((await f.store.headPosition()) as string, 10_000)).toBe(true);
    // Time moves the watermark only when a change is due by then.
    for (let i = 0; i < 200; i++) {
      const [due] = await f.sql.query('SELECT MIN(next_change_at) AS at FROM readiness_missions');
      const [s] = await runner.status();
      if (due?.at === null || Number(due?.at) > clock.ms || s?.watermark === clock.now().toISOString())
        return;
      runner.poke();
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error('the projection did not catch up with time');
  } finally {
    await runner.close();
  }
}

async function playSteps(driver: MissionDriver, clock: ManualClock, from: number, to: number) {
  for (const step of mssHaitiScenario.steps.slice(from, to)) {
    clock.set(step.expected.at);
    try {
      await driver.run(step.command);
    } catch (error) {
      if (!(error instanceof DomainError) || step.expected.error === null) throw error;
    }
  }
}

const READ_MODELS = ['readiness_missions', 'readiness_history', 'readiness_verdicts'] as const;

describe('an audit racing the projection', () => {
  it('leaves a change time causes while it reads the read models to the next audit', async () => {
    const clock = new ManualClock();
    const f = await openSqliteFixture('audit-race', clock);
    // The projection on a connection of its own, as in another process: it can commit while the
    // audit's read snapshot holds the fixture's connection.
    const other = await openSqliteEventStore({ path: f.path, clock: clock.now, pollIntervalMs: 50 });
    const runner = await startReadiness({ ...f, store: other, sql: other.sql }, clock);
    try {
      await playMssHaiti(other, clock);
      await runner.waitForPosition((await other.headPosition()) as string, 10_000);
      const timeRows = async () =>
        (
          await other.sql.query(
            "SELECT seq FROM readiness_history WHERE mission_id = $1 AND cause = 'time'",
            [missionId],
          )
        ).length;
      expect(await timeRows()).toBe(0);
      // Time has moved nothing yet.
      const [before] = await other.sql.query(
        "SELECT watermark FROM projection_checkpoints WHERE name = 'readiness'",
      );
      expect(before?.watermark ?? null).toBeNull();
      // The first read of the history lets the mandate expire first, as a scheduler round would.
      let raced = false;
      const race = async () => {
        raced = true;
        clock.set('2024-11-01T00:00:00Z');
        runner.poke();
        for (let i = 0; i < 250 && (await timeRows()) === 0; i++) {
          await new Promise((r) => setTimeout(r, 20));
        }
      };
      const racing = (client: typeof f.sql): typeof f.sql =>
        new Proxy(client, {
          get(target, key, receiver) {
            if (key === 'readSnapshot') {
              return (fn: (tx: typeof f.sql) => Promise<unknown>) =>
                target.readSnapshot((tx) => fn(racing(tx)));
            }
            if (key !== 'query') return Reflect.get(target, key, receiver);
            return async (text: string, params?: readonly unknown[]) => {
              if (!raced && text.includes('readiness_history')) await race();
              return target.query(text, params);
            };
          },
        });
      const report = await auditMission({ store: f.store, sql: racing(f.sql), missionId });
      expect(raced).toBe(true);
      expect(await timeRows()).toBeGreaterThan(0);
      // Compared as the read snapshot had it: the watermark and the history from before the expiry.
      expect(report).toMatchObject({ ok: true, mismatches: [] });
      expect(report?.comparedUpTo.timeUntil).toBeNull();
      const next = await auditMission({ store: f.store, sql: f.sql, missionId });
      expect(next).toMatchObject({ ok: true, mismatches: [] });
      expect(next?.comparedUpTo.timeUntil).toBe('2024-11-01T00:00:00.000Z');
      expect(next?.history.stored).toBe((report?.history.stored ?? 0) + (await timeRows()));
    } finally {
      await runner.close();
      await other.close();
      await f.close();
    }
  });
});

describe('a read model behind the log', () => {
  it('is only "projection behind" when the checkpoint is: a read model behind its own checkpoint is a mismatch', async () => {
    const clock = new ManualClock();
    const f = await openSqliteFixture('audit-behind', clock);
    try {
      const driver = new MissionDriver(f.store);
      await playSteps(driver, clock, 0, 22);
      await projectOnce(f, clock);
      const [early] = await f.sql.query(
        "SELECT watermark FROM projection_checkpoints WHERE name = 'readiness'",
      );
      const saved = new Map<string, Record<string, unknown>[]>();
      for (const table of READ_MODELS) {
        saved.set(table, await f.sql.query(`SELECT * FROM ${table} WHERE mission_id = $1`, [missionId]));
      }
      await playSteps(driver, clock, 22, mssHaitiScenario.steps.length);
      const run = () => auditMission({ store: f.store, sql: f.sql, missionId });

      // The projection has not seen the last events: compared up to what it has, and fine.
      const behind = await run();
      expect(behind).toMatchObject({ ok: true, mismatches: [], projectionBehind: true });
      const folded = Number(saved.get('readiness_missions')?.[0]?.revision);
      expect(behind?.comparedUpTo.revision).toBe(folded);
      expect(behind?.events).toBeGreaterThan(folded + 1);

      // An unreadable event past what the read model folded leaves the comparison whole.
      const [past] = await f.sql.query(
        'SELECT position, data FROM events WHERE stream = $1 AND revision = $2',
        [`mission-${missionId}`, folded + 2],
      );
      const unreadable = await tampered(
        'UPDATE events SET data = $1 WHERE position = $2',
        ['{', past?.position],
        'UPDATE events SET data = $1 WHERE position = $2',
        [past?.data, past?.position],
        run,
        f,
      );
      expect(unreadable).toMatchObject({ projectionBehind: true, comparedUpTo: { revision: folded } });
      expect(unreadable?.mismatches).toEqual([
        expect.objectContaining({ kind: 'chain', revision: folded + 2 }),
      ]);

      await projectOnce(f, clock);
      expect(await run()).toMatchObject({ ok: true, mismatches: [], projectionBehind: false });

      // Someone puts the read model back to where it was, history and watermark included, but the
      // checkpoint still says every event was processed.
      for (const table of READ_MODELS) {
        await f.sql.execute(`DELETE FROM ${table} WHERE mission_id = $1`, [missionId]);
        for (const row of saved.get(table) ?? []) {
          const columns = Object.keys(row);
          await f.sql.execute(
            `INSERT INTO ${table} (${columns.join(', ')}) VALUES (${columns.map((_, i) => `$${i + 1}`).join(', ')})`,
            columns.map((c) => row[c]),
          );
        }
      }
      await f.sql.execute("UPDATE projection_checkpoints SET watermark = $1 WHERE name = 'readiness'", [
        early?.watermark,
      ]);
      const rolledBack = await run();
      expect(rolledBack?.ok).toBe(false);
      expect(rolledBack?.projectionBehind).toBe(false);
      expect(rolledBack?.mismatches[0]).toMatchObject({
        kind: 'mission-behind-checkpoint',
        revision: (behind?.events ?? 0) - 1,
        actual: { revision: folded },
      });
      expect(rolledBack?.mismatches.map((m) => m.kind)).toContain('history-missing');
      expect(rolledBack?.comparedUpTo.revision).toBe((behind?.events ?? 0) - 1);
    } finally {
      await f.close();
    }
  }, 60_000);
});

describe('auditing the snapshots time travel starts from', () => {
  const id = 'alpha';
  let sf: Fixture;
  beforeAll(async () => {
    const clock = new ManualClock();
    sf = await openSqliteFixture('audit-snapshots', clock);
    await fillSynthetic(sf.store, clock, { missions: [id], eventsPerMission: 400 });
    const runner = await startProjections({
      store: sf.store,
      sql: sf.sql,
      projections: [
        createReadinessProjection({ store: sf.store, snapshotEvery: 100, snapshotPartChars: 2000 }),
      ],
      clock: clock.now,
      batchSize: 50,
    });
    expect(await runner.waitForPosition((await sf.store.headPosition()) as string, 30_000)).toBe(true);
    await runner.close();
  });
  afterAll(() => sf.close());
  const auditAlpha = () => auditMission({ store: sf.store, sql: sf.sql, missionId: id });

  it('compares every stored snapshot, parts included, with the fold at its revision', async () => {
    const [counted] = await sf.sql.query(
      'SELECT COUNT(*) AS n, (SELECT COUNT(*) FROM readiness_snapshot_parts) AS parts FROM readiness_snapshots',
    );
    expect(Number(counted?.n)).toBeGreaterThanOrEqual(2);
    expect(Number(counted?.parts)).toBeGreaterThan(10);
    const report = await auditAlpha();
    expect(report).toMatchObject({ ok: true, mismatches: [] });
    expect(report?.snapshots).toEqual({ stored: Number(counted?.n), compared: Number(counted?.n) });
  });

  it('reports a snapshot whose state was edited, which changed what time travel answers', async () => {
    const [snapshot] = await sf.sql.query(
      `SELECT revision, position, state FROM readiness_snapshots WHERE mission_id = $1 AND state LIKE '%"baseCurrency":"USD"%'
       ORDER BY revision LIMIT 1`,
      [id],
    );
    expect(snapshot).toBeDefined();
    const state = String(snapshot?.state);
    const ask = () =>
      createReadinessQueries({ store: sf.store, sql: sf.sql }).verdictAtPosition(
        id,
        String(snapshot?.position),
      );
    const honest = await ask();
    expect(honest?.basis.snapshotRevision).toBe(Number(snapshot?.revision));
    const report = await tampered(
      'UPDATE readiness_snapshots SET state = $1 WHERE mission_id = $2 AND revision = $3',
      [state.replace('"baseCurrency":"USD"', '"baseCurrency":"EUR"'), id, snapshot?.revision],
      'UPDATE readiness_snapshots SET state = $1 WHERE mission_id = $2 AND revision = $3',
      [state, id, snapshot?.revision],
      async () => {
        expect(JSON.stringify(await ask())).not.toBe(JSON.stringify(honest));
        return auditAlpha();
      },
      sf,
    );
    expect(report?.ok).toBe(false);
    expect(report?.mismatches).toEqual([
      expect.objectContaining({
        kind: 'snapshot-differs',
        revision: Number(snapshot?.revision),
        fields: ['state'],
        expected: expect.objectContaining({ stateDiffersAt: state.indexOf('"baseCurrency":"USD"') + 16 }),
      }),
    ]);
  });

  it('reports a snapshot part changed, dropped or added, and a snapshot column changed', async () => {
    const [part] = await sf.sql.query(
      'SELECT revision, part, state FROM readiness_snapshot_parts WHERE mission_id = $1 ORDER BY revision DESC, part DESC LIMIT 1 OFFSET 3',
      [id],
    );
    const text = String(part?.state);
    const key = [id, part?.revision, part?.part];
    const expectOne = (report: Awaited<ReturnType<typeof auditAlpha>>, fields: string[]) =>
      expect(report?.mismatches).toEqual([
        expect.objectContaining({ kind: 'snapshot-differs', revision: Number(part?.revision), fields }),
      ]);
    const where = 'WHERE mission_id = $1 AND revision = $2 AND part = $3';
    const middle = Math.floor(text.length / 2);
    const edited = text.slice(0, middle) + (text[middle] === '1' ? '2' : '1') + text.slice(middle + 1);
    expectOne(
      await tampered(
        `UPDATE readiness_snapshot_parts SET state = $4 ${where}`,
        [...key, edited],
        `UPDATE readiness_snapshot_parts SET state = $4 ${where}`,
        [...key, text],
        auditAlpha,
        sf,
      ),
      ['state'],
    );
    expectOne(
      await tampered(
        `DELETE FROM readiness_snapshot_parts ${where}`,
        key,
        `INSERT INTO readiness_snapshot_parts (mission_id, revision, part, state) VALUES ($1, $2, $3, $4)`,
        [...key, text],
        auditAlpha,
        sf,
      ),
      ['state'],
    );
    expectOne(
      await tampered(
        `INSERT INTO readiness_snapshot_parts (mission_id, revision, part, state) VALUES ($1, $2, 1000, ' ')`,
        [id, part?.revision],
        'DELETE FROM readiness_snapshot_parts WHERE mission_id = $1 AND revision = $2 AND part = 1000',
        [id, part?.revision],
        auditAlpha,
        sf,
      ),
      ['state'],
    );
    for (const column of ['position', 'recorded_at', 'max_recorded_at']) {
      const [row] = await sf.sql.query(
        `SELECT ${column} AS value FROM readiness_snapshots WHERE mission_id = $1 AND revision = $2`,
        [id, part?.revision],
      );
      const value = row?.value;
      expectOne(
        await tampered(
          `UPDATE readiness_snapshots SET ${column} = $3 WHERE mission_id = $1 AND revision = $2`,
          [id, part?.revision, typeof value === 'number' ? value - 1 : `${value}9`],
          `UPDATE readiness_snapshots SET ${column} = $3 WHERE mission_id = $1 AND revision = $2`,
          [id, part?.revision, value],
          auditAlpha,
          sf,
        ),
        [column],
      );
    }
    expect((await auditAlpha())?.ok).toBe(true);
  });

  it('reports a snapshot at a revision the fold never reached', async () => {
    const [last] = await sf.sql.query(
      'SELECT * FROM readiness_snapshots WHERE mission_id = $1 ORDER BY revision DESC LIMIT 1',
      [id],
    );
    const report = await tampered(
      `INSERT INTO readiness_snapshots (mission_id, revision, position, recorded_at, max_recorded_at, state)
       VALUES ($1, 100000, $2, $3, $4, $5)`,
      [id, last?.position, last?.recorded_at, last?.max_recorded_at, last?.state],
      'DELETE FROM readiness_snapshots WHERE mission_id = $1 AND revision = 100000',
      [id],
      auditAlpha,
      sf,
    );
    expect(report?.mismatches).toEqual([
      expect.objectContaining({ kind: 'snapshot-differs', revision: 100000 }),
    ]);
  });
});

describe.skipIf(postgresSkipReason !== null)(
  `auditing on PostgreSQL${postgresSkipReason ? ` (${postgresSkipReason})` : ''}`,
  () => {
    it('compares the mission row and the snapshots in parts, and reports an edited part', async () => {
      const clock = new ManualClock();
      const { url, drop } = await createPostgresDatabase('audit');
      const store = await openPostgresEventStore({
        connectionString: url,
        clock: clock.now,
        pollIntervalMs: 100,
      });
      try {
        const missions = ['p1', 'p2'];
        await fillSynthetic(store, clock, { missions, eventsPerMission: 300 });
        const runner = await startProjections({
          store,
          sql: store.sql,
          projections: [createReadinessProjection({ store, snapshotEvery: 100, snapshotPartChars: 2000 })],
          clock: clock.now,
          batchSize: 50,
        });
        expect(await runner.waitForPosition((await store.headPosition()) as string, 60_000)).toBe(true);
        await runner.close();
        for (const id of missions) {
          const report = await auditMission({ store, sql: store.sql, missionId: id });
          expect(report).toMatchObject({ ok: true, mismatches: [], projectionBehind: false });
          expect(report?.snapshots.compared).toBeGreaterThanOrEqual(2);
          expect(report?.snapshots.compared).toBe(report?.snapshots.stored);
        }
        const [part] = await store.sql.query(
          "SELECT revision, part FROM readiness_snapshot_parts WHERE mission_id = 'p1' ORDER BY revision, part LIMIT 1 OFFSET 2",
        );
        await store.sql.execute(
          "UPDATE readiness_snapshot_parts SET state = state || ' ' WHERE mission_id = 'p1' AND revision = $1 AND part = $2",
          [part?.revision, part?.part],
        );
        const report = await auditMission({ store, sql: store.sql, missionId: 'p1' });
        expect(report?.mismatches).toEqual([
          expect.objectContaining({
            kind: 'snapshot-differs',
            revision: Number(part?.revision),
            fields: ['state'],
          }),
        ]);
      } finally {
        await store.close();
        await drop();
      }
    }, 120_000);
  },
);
