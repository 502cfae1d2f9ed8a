import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AppendResult, EventStore, SqlClient } from '@muster/event-store';
import { openSqliteEventStore, type SqliteEventStore } from '@muster/event-store-sqlite';
import {
  DomainError,
  decide,
  evolve,
  initialState,
  type MissionCommand,
  type MissionState,
  missionStreamName,
  mssHaitiScenario,
  toStoredEvent,
} from '@muster/readiness';
import { syntheticMissionEventData } from '../testing/synthetic.js';

/** A clock tests move by hand. */
export class ManualClock {
  constructor(public ms: number = Date.parse('2024-01-01T00:00:00Z')) {}

  readonly now = (): Date => new Date(this.ms);

  set(instant: string | number): void {
    this.ms = typeof instant === 'number' ? instant : Date.parse(instant);
  }

  advance(ms: number): void {
    this.ms += ms;
  }
}

export function tempDir(label: string): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `muster-${label}-`));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export async function openSqliteFixture(
  label: string,
  clock?: ManualClock,
): Promise<{
  store: SqliteEventStore;
  sql: SqlClient;
  path: string;
  dir: string;
  close: () => Promise<void>;
}> {
  const { dir, remove } = tempDir(label);
  const path = join(dir, 'muster.db');
  const store = await openSqliteEventStore({
    path,
    pollIntervalMs: 50,
    ...(clock ? { clock: clock.now } : {}),
  });
  return {
    store,
    sql: store.sql,
    path,
    dir,
    close: async () => {
      await store.close();
      remove();
    },
  };
}

/** Decides commands against the state built from what it appended, and appends their events. */
export class MissionDriver {
  private readonly states = new Map<string, { state: MissionState; revision: number | null }>();

  constructor(private readonly store: EventStore) {}

  async run(command: MissionCommand): Promise<AppendResult | null> {
    const known = this.states.get(command.missionId) ?? { state: initialState(), revision: null };
    const events = decide(command, known.state);
    if (events.length === 0) return null;
    const result = await this.store.appendToStream(
      missionStreamName(command.missionId),
      events.map((e) => toStoredEvent(e)),
      { expectedRevision: known.revision ?? 'no_stream' },
    );
    let state = known.state;
    for (const event of events) state = evolve(state, event);
    this.states.set(command.missionId, { state, revision: result.nextExpectedRevision });
    return result;
  }

  state(missionId: string): MissionState {
    return this.states.get(missionId)?.state ?? initialState();
  }
}

/** Every row of the given tables, ordered by every column, as JSON text: equal text, equal tables. */
export async function dumpTables(sql: SqlClient, tables: readonly string[]): Promise<string> {
  const out: Record<string, unknown[]> = {};
  for (const table of tables) {
    const rows = await sql.query(`SELECT * FROM ${table}`);
    const normalised = rows.map((row) =>
      Object.fromEntries(
        Object.keys(row)
          .sort()
          .map((k) => [k, row[k] === undefined ? null : row[k]]),
      ),
    );
    out[table] = normalised.map((r) => JSON.stringify(r)).sort();
  }
  return JSON.stringify(out, null, 1);
}

export async function eventually<T>(
  probe: () => Promise<T | undefined | null | false>,
  timeoutMs = 10_000,
  what = 'condition',
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== null && value !== false) return value as T;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export interface FillOptions {
  missions: readonly string[];
  eventsPerMission: number;
  /** Events per append, taken in turn from each mission (default 50). */
  chunk?: number;
  profile?: 'volatile' | 'steady';
  seed?: number;
  /** World time of each mission's first event (default 2024-01-01). */
  startMs?: number;
}

/**
 * Appends synthetic missions in interleaved chunks, with the store's clock moved to just after the
 * latest occurredAt of each chunk, so that record time follows world time as in real use.
 */
export async function fillSynthetic(
  store: EventStore,
  clock: ManualClock,
  options: FillOptions,
): Promise<void> {
  const chunk = options.chunk ?? 50;
  const iterators = options.missions.map((missionId, i) => ({
    missionId,
    events: syntheticMissionEventData({
      missionId,
      events: options.eventsPerMission,
      seed: (options.seed ?? 1) * 1000 + i,
      profile: options.profile ?? 'volatile',
      ...(options.startMs !== undefined ? { startMs: options.startMs } : {}),
    }),
    done: false,
  }));
  while (iterators.some((it) => !it.done)) {
    for (const it of iterators) {
      if (it.done) continue;
      const batch = [];
      for (let n = 0; n < chunk; n++) {
        const next = it.events.next();
        if (next.done) {
          it.done = true;
          break;
        }
        batch.push(next.value);
      }
      if (batch.length === 0) continue;
      const latest = Math.max(...batch.map((e) => Date.parse(String(e.metadata?.occurredAt))));
      clock.set(Math.max(clock.ms, Math.min(latest, clock.ms + 3_600_000) + 60_000));
      await store.appendToStream(missionStreamName(it.missionId), batch);
    }
  }
}

/** The MSS Haiti scenario played into a store, one step per instant of the fixture. */
export async function playMssHaiti(store: EventStore, clock: ManualClock): Promise<MissionDriver> {
  const driver = new MissionDriver(store);
  for (const step of mssHaitiScenario.steps) {
    clock.set(step.expected.at);
    try {
      await driver.run(step.command);
    } catch (error) {
      if (!(error instanceof DomainError) || step.expected.error === null) throw error;
    }
  }
  return driver;
}
