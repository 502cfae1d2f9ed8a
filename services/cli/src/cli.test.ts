import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openSqliteEventStore } from '@muster/event-store-sqlite';
import { createReadinessProjection, exportMission, startProjections } from '@muster/projections';
import {
  DomainError,
  decide,
  evolve,
  initialState,
  missionStreamName,
  mssHaitiScenario,
  toStoredEvent,
} from '@muster/readiness';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createProgress } from './progress.js';

const MAIN = fileURLToPath(new URL('./main.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'muster-cli-'));
const dbPath = join(dir, 'muster.db');
const exportPath = join(dir, 'mss-haiti.ndjson');
const tamperedPath = join(dir, 'mss-haiti-tampered.ndjson');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function muster(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--conditions=@muster/source', '--import', 'tsx', MAIN, ...args], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => {
      stdout += c.toString();
    });
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString();
    });
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

beforeAll(async () => {
  // A real store: the MSS Haiti scenario decided and appended, one step per instant of the fixture.
  let now = Date.parse('2024-02-01T00:00:00Z');
  const store = await openSqliteEventStore({ path: dbPath, clock: () => new Date(now) });
  let state = initialState();
  let revision: number | null = null;
  for (const step of mssHaitiScenario.steps) {
    now = Date.parse(step.expected.at);
    let events: ReturnType<typeof decide>;
    try {
      events = decide(step.command, state);
    } catch (error) {
      if (error instanceof DomainError) continue;
      throw error;
    }
    const result = await store.appendToStream(
      missionStreamName(mssHaitiScenario.missionId),
      events.map((e) => toStoredEvent(e)),
      { expectedRevision: revision ?? 'no_stream' },
    );
    revision = result.nextExpectedRevision;
    for (const e of events) state = evolve(state, e);
  }
  // The read models the service would have built, for the rebuild command to replace.
  const runner = await startProjections({
    store,
    sql: store.sql,
    projections: [createReadinessProjection({ store })],
  });
  await runner.waitForPosition((await store.headPosition()) as string, 10_000);
  await runner.close();
  let text = '';
  for await (const line of (await exportMission(store, mssHaitiScenario.missionId)) ?? []) text += line;
  await store.close();
  writeFileSync(exportPath, text);
  // One byte changed in one event's data: a confirmed pledge's id in the middle of the file.
  const lines = text.split('\n');
  const index = lines.findIndex((l) => l.includes('"type":"PledgeConfirmed"'));
  lines[index] = (lines[index] as string).replace('"pledgeId":"us-funding"', '"pledgeId":"us-fundinh"');
  writeFileSync(tamperedPath, lines.join('\n'));
}, 120_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('muster audit verify', () => {
  it('exits 0 on an intact export and says what it checked', async () => {
    const run = await muster(['audit', 'verify', exportPath]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(
      /^intact: mission mss-haiti, \d+ events \(as the header announces\), hash chain holds/,
    );
  });

  it('exits 1 on a tampered copy, naming the first problem', async () => {
    const run = await muster(['audit', 'verify', tamperedPath]);
    expect(run.code).toBe(1);
    const line =
      readFileSync(tamperedPath, 'utf8')
        .split('\n')
        .findIndex((l) => l.includes('us-fundinh')) + 1;
    expect(run.stderr).toContain(`hash-chain at line ${line}`);
    expect(run.stdout).toBe('');
  });

  it('prints the whole verification as JSON on request, recomputed history included', async () => {
    const run = await muster(['audit', 'verify', exportPath, '--json']);
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout);
    expect(report).toMatchObject({ ok: true, missionId: 'mss-haiti', problem: null });
    expect(report.history.length).toBeGreaterThan(10);
  });
});

describe('muster replay', () => {
  it('prints the verdicts at an instant of world time', async () => {
    const ready = await muster(['replay', exportPath, '--as-of', '2024-05-01T00:00:00Z']);
    expect(ready.code).toBe(0);
    const verdict = JSON.parse(ready.stdout);
    expect(verdict.phases.map((p: { status: string }) => p.status)).toEqual(['ready', 'ready']);
    const expired = JSON.parse(
      (await muster(['replay', exportPath, '--as-of', '2024-10-03T00:00:00Z'])).stdout,
    );
    expect(expired.phases[1].status).toBe('not-ready');
    expect(expired.phases[1].preconditions.find((p: { id: string }) => p.id === 'un-backing').missing).toBe(
      'mandate S/RES/2699 (2023) expired at 2024-10-02T20:00:00.000Z',
    );
  });

  it('prints the verdicts from only what was recorded by an instant', async () => {
    // On 20 March the council was not yet approved: the main deployment is blocked (suspended).
    const run = await muster(['replay', exportPath, '--known-at', '2024-03-20T00:00:00Z']);
    expect(run.code).toBe(0);
    const verdict = JSON.parse(run.stdout);
    expect(verdict.at).toBe('2024-03-20T00:00:00.000Z');
    expect(verdict.phases.map((p: { status: string }) => p.status)).toEqual(['blocked', 'blocked']);
  });

  it('refuses a tampered export and wrong usage', async () => {
    expect((await muster(['replay', tamperedPath, '--as-of', '2024-05-01T00:00:00Z'])).code).toBe(1);
    const both = await muster([
      'replay',
      exportPath,
      '--as-of',
      '2024-05-01T00:00:00Z',
      '--known-at',
      '2024-05-01T00:00:00Z',
    ]);
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('exactly one of --as-of and --known-at');
    expect(both.stderr).toContain('Usage:');
    // A problem with the environment, not the command line, is not followed by the usage text.
    const missing = await muster(['audit', 'verify', join(dir, 'no-such-export.ndjson')]);
    expect({ code: missing.code, usage: missing.stderr.includes('Usage:') }).toEqual({
      code: 2,
      usage: false,
    });
    expect(missing.stderr).toContain('cannot read');
    expect((await muster(['replay', exportPath, '--as-of', 'yesterday'])).code).toBe(2);
  });
});

describe('muster projections rebuild', () => {
  it('rebuilds against the store the environment names, with plain progress lines off a terminal', async () => {
    const run = await muster(['projections', 'rebuild', 'readiness'], {
      MUSTER_STORE: 'sqlite',
      MUSTER_SQLITE_PATH: dbPath,
    });
    expect(run.stderr).toMatch(/rebuild readiness: \d+\/\d+ events \(100%\), [\d,]+ events\/s, done in/);
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ name: 'readiness', generation: 1 });
    const status = await muster(['projections', 'status'], { MUSTER_SQLITE_PATH: dbPath });
    expect(JSON.parse(status.stdout)[0]).toMatchObject({ name: 'readiness', generation: 1, behind: false });
  });

  it('reports status by reading only: nothing created, projected or taken on a database it finds behind', async () => {
    // Events but no read models yet: what a service that never started would leave.
    const fresh = join(dir, 'fresh.db');
    const store = await openSqliteEventStore({ path: fresh });
    await store.appendToStream('mission-x', [{ type: 'Something', data: {} }]);
    const tables = async () =>
      (await store.sql.query<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table'"))
        .map((r) => r.name)
        .sort();
    const before = await tables();
    try {
      const status = await muster(['projections', 'status'], { MUSTER_SQLITE_PATH: fresh });
      expect(status.code).toBe(0);
      expect(JSON.parse(status.stdout)).toEqual([
        expect.objectContaining({
          name: 'readiness',
          generation: 0,
          position: null,
          behind: true,
          isLeader: false,
        }),
      ]);
      expect(await tables()).toEqual(before);
    } finally {
      await store.close();
    }
  });

  it('reports the whole configuration problem and exits 2', async () => {
    const run = await muster(['projections', 'rebuild', 'readiness'], {
      MUSTER_STORE: 'postgres',
      MUSTER_HEAP_GROWTH_PERCENT: 'lots',
    });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('DATABASE_URL: required when MUSTER_STORE=postgres');
    expect(run.stderr).toContain('MUSTER_HEAP_GROWTH_PERCENT');
    expect(run.stderr).not.toContain('Usage:');
  });

  it('names an unknown projection', async () => {
    const run = await muster(['projections', 'rebuild', 'nope'], { MUSTER_SQLITE_PATH: dbPath });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('projection-not-found');
  });
});

describe('progress', () => {
  it('redraws one line with a bar, a rate and an ETA on a terminal', () => {
    const writes: string[] = [];
    let t = 0;
    const progress = createProgress(
      { isTTY: true, columns: 120, write: (s: string) => writes.push(s) },
      { label: 'rebuild', unit: 'events', now: () => t },
    );
    t = 1000;
    progress.update(250, 1000);
    t = 2000;
    progress.update(500, 1000);
    progress.finish(1000, 1000);
    const ERASE = '\u001b[K';
    expect(writes[0]?.startsWith('\rrebuild [#')).toBe(true);
    expect(writes[0]?.endsWith(`]  25% 250/1,000 events 250 events/s ETA 3s${ERASE}`)).toBe(true);
    expect(writes[1]).toContain(' 50% 500/1,000 events 250 events/s ETA 2s');
    expect(writes[2]?.endsWith(`100% 1,000/1,000 events 500 events/s in 2s${ERASE}\n`)).toBe(true);
  });

  it('writes plain lines, at most one per interval, elsewhere', () => {
    const writes: string[] = [];
    let t = 0;
    const progress = createProgress(
      { write: (s: string) => writes.push(s) },
      { label: 'verify', unit: 'bytes', now: () => t },
    );
    t = 1000;
    progress.update(10, 100);
    t = 1500;
    progress.update(20, 100);
    t = 3500;
    progress.update(70, 100);
    expect(writes).toEqual([
      'verify: 10/100 bytes (10%), 10 bytes/s, ETA 9s\n',
      'verify: 70/100 bytes (70%), 20 bytes/s, ETA 2s\n',
    ]);
  });
});
