import { DomainError, mssHaitiScenario } from '@muster/readiness';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditMission } from './audit.js';
import { createReadinessProjection } from './readiness/projection.js';
import { createReadinessQueries } from './readiness/queries.js';
import { startProjections } from './runner.js';
import { ManualClock, MissionDriver, openSqliteFixture, playMssHaiti } from './test-support/harness.js';

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
) {
  await fx.sql.execute(change, params);
  try {
    return await check();
  } finally {
    await fx.sql.execute(undo, undoParams);
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

/** Runs the readiness projection until it has processed the whole log and time up to the clock. */
async function projectOnce(f: Fixture, clock: ManualClock): Promise<void> {
  const runner = await startProjections({
    store: f.store,
    sql: f.sql,
    projections: [createReadinessProjection({ store: f.store })],
    clock: clock.now,
    timeGraceMs: 0,
    tickMs: 20,
  });
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
