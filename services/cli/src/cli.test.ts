import { spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { RecordedEvent } from '@muster/event-store';
import { openSqliteEventStore, openSqliteSql } from '@muster/event-store-sqlite';
import {
  createReadinessProjection,
  exportHeader,
  exportMission,
  readProjectionStatus,
  startProjections,
} from '@muster/projections';
import { forgeExport, syntheticMissionEventData } from '@muster/projections/testing';
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
// Resolved here, not by node from the working directory: some runs start elsewhere on purpose.
const TSX = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
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

function muster(args: string[], env: Record<string, string> = {}, cwd = ROOT): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--conditions=@muster/source', '--import', TSX, MAIN, ...args], {
      cwd,
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

const missionId = mssHaitiScenario.missionId;
const exportText = () => readFileSync(exportPath, 'utf8');
/** The export's lines without their newlines, the header first. */
const exportedLines = () => exportText().split('\n').slice(0, -1);
const exportedEvents = () =>
  exportedLines()
    .slice(1)
    .map((l) => JSON.parse(l) as RecordedEvent);

function writeExport(name: string, content: string | Uint8Array): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

const forge = (edit: (events: RecordedEvent[]) => RecordedEvent[]): string =>
  forgeExport(missionId, exportedEvents(), edit);

/** Runs a few at a time: each run is a node process with tsx, and the machine is shared. */
async function inTurn<T>(tasks: (() => Promise<T>)[], width = 3): Promise<T[]> {
  const results: T[] = [];
  for (let i = 0; i < tasks.length; i += width) {
    results.push(...(await Promise.all(tasks.slice(i, i + width).map((task) => task()))));
  }
  return results;
}

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
    for (const entry of report.history) {
      for (const instant of [entry.occurredAt, entry.recordedAt, entry.evaluatedAt]) {
        expect(instant).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
      }
    }
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

  it('names an unknown projection as wrong usage, with the projections there are', async () => {
    const run = await muster(['projections', 'rebuild', 'nope'], { MUSTER_SQLITE_PATH: dbPath });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("unknown projection 'nope'; the projections are: readiness");
    expect(run.stderr).toContain('Usage: muster projections rebuild <name>');
  });
});

describe('muster audit verify checks every byte', () => {
  it('refuses what the service never writes, naming the kind and the line', async () => {
    const text = exportText();
    const lines = exportedLines();
    const withLine = (n: number, edit: (line: string) => string) =>
      lines.map((l, i) => `${i === n - 1 ? edit(l) : l}\n`).join('');
    const bytes = Buffer.from(text);
    // A note holding U+FFFD, then a damaged byte in its place: a lenient decoder reads U+FFFD
    // back, and the line re-serialises and hashes as it was.
    const noted = exportedEvents().findIndex((e) => e.type === 'UnitReadinessReported');
    const withReplacement = Buffer.from(
      forge((all) =>
        all.map((e, i) =>
          i === noted ? { ...e, data: { ...(e.data as object), note: 'ready \uFFFD' } } : e,
        ),
      ),
    );
    const at = withReplacement.indexOf(Buffer.from('\uFFFD'));
    const damaged = Buffer.concat([
      withReplacement.subarray(0, at),
      Buffer.from([0xff]),
      withReplacement.subarray(at + 3),
    ]);
    const cases: [string, string | Uint8Array, string][] = [
      ['invalid UTF-8', damaged, `encoding at line ${noted + 2}: the line is not valid UTF-8`],
      ['a byte order mark', Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), bytes]), 'encoding at line 1'],
      ['CRLF line endings', text.replaceAll('\n', '\r\n'), 'malformed-line at line 1'],
      ['a stray carriage return', withLine(5, (l) => `${l}\r`), 'malformed-line at line 5'],
      ['a blank line', withLine(4, (l) => `\n${l}`), 'malformed-line at line 4: the line is blank'],
      ['a whitespace-only last line', `${text} \n`, `malformed-line at line ${lines.length + 1}`],
      ['no final newline', text.slice(0, -1), `malformed-line at line ${lines.length}`],
      ['no header', withLine(1, () => '').slice(1), 'missing-header at line 1'],
      [
        'a header announcing no events',
        exportHeader({ missionId, events: 0, lastHash: null }),
        'malformed-header at line 1',
      ],
      [
        'a position that is none',
        withLine(3, (l) => l.replace(/"position":"\d+"/, '"position":"pos-a"')),
        'malformed-event at line 3, revision 1',
      ],
      [
        'a position with a trailing space',
        withLine(3, (l) => l.replace(/"position":"(\d+)"/, '"position":"$1 "')),
        'malformed-event at line 3, revision 1',
      ],
      [
        'another serialisation',
        withLine(3, (l) => l.replace('"revision":', '"revision": ')),
        'non-canonical-line at line 3',
      ],
    ];
    const files = cases.map(([, content], i) => writeExport(`bad-${i}.ndjson`, content));
    const runs = await inTurn(files.map((path) => () => muster(['audit', 'verify', path])));
    runs.forEach((run, i) => {
      const [what, , expected] = cases[i] as [string, unknown, string];
      expect.soft({ what, code: run.code, stdout: run.stdout }).toEqual({ what, code: 1, stdout: '' });
      expect.soft(run.stderr, what).toContain(`TAMPERED or damaged export ${files[i]}: ${expected}`);
    });
  }, 120_000);

  it('prints the last revision and its whole hash when intact: a receipt to anchor on later', async () => {
    const events = exportedEvents();
    const last = events[events.length - 1] as RecordedEvent;
    const run = await muster(['audit', 'verify', exportPath]);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(`hash chain holds up to revision ${last.revision} with hash ${last.hash}`);
  });
});

describe('events the CLI cannot read', () => {
  it('fail audit verify, show in its JSON, and fail replay', async () => {
    const renamed = writeExport(
      'renamed.ndjson',
      forge((all) => all.map((e) => (e.type === 'MandateRecorded' ? { ...e, type: 'MandateRevoked' } : e))),
    );
    const revision = exportedEvents().findIndex((e) => e.type === 'MandateRecorded');
    const id = exportedEvents()[revision]?.id;
    expect(revision).toBeGreaterThan(0);
    const [verify, json, replayed] = await inTurn([
      () => muster(['audit', 'verify', renamed]),
      () => muster(['audit', 'verify', renamed, '--json']),
      () => muster(['replay', renamed, '--as-of', '2024-05-01T00:00:00Z']),
    ]);
    expect({ code: verify?.code, stdout: verify?.stdout }).toEqual({ code: 1, stdout: '' });
    expect(verify?.stderr).toContain(
      `unreadable-event at line ${revision + 2}, revision ${revision}, event ${id} (type MandateRevoked): ` +
        `event at revision ${revision} cannot be read by the domain (unknown-event-type)`,
    );
    expect(json?.code).toBe(1);
    expect(JSON.parse(json?.stdout ?? '')).toMatchObject({
      ok: false,
      problem: null,
      unreadableCount: 1,
      unreadable: [{ line: revision + 2, revision, eventId: id, type: 'MandateRevoked' }],
    });
    expect({ code: replayed?.code, stdout: replayed?.stdout }).toEqual({ code: 1, stdout: '' });
    expect(replayed?.stderr).toContain(`unreadable-event at line ${revision + 2}`);
  }, 60_000);
});

describe('muster audit verify --against and --expect-head', () => {
  it('catches a rewritten history that the chain alone cannot', async () => {
    const events = exportedEvents();
    const last = events.length - 1;
    const hashOf = (revision: number) => (events[revision] as RecordedEvent).hash;
    // The forgery: a unit's first readiness report inflated, and every later hash recomputed.
    const forged = events.findIndex((e) => e.type === 'UnitReadinessReported');
    expect(forged).toBeGreaterThan(0);
    const rewritten = writeExport(
      'rewritten.ndjson',
      forge((all) =>
        all.map((e, i) => {
          if (i !== forged) return e;
          const data = e.data as { officersReady: number };
          return { ...e, data: { ...data, officersReady: data.officersReady + 100 } };
        }),
      ),
    );
    // An earlier export of the mission, as the service wrote it then.
    const kept = forged + 3;
    const earlier = writeExport(
      'earlier.ndjson',
      exportHeader({ missionId, events: kept, lastHash: hashOf(kept - 1) }) +
        exportedLines()
          .slice(1, kept + 1)
          .map((l) => `${l}\n`)
          .join(''),
    );
    const [alone, against, extended, heads, wrongHead, beyond, malformed] = await inTurn([
      () => muster(['audit', 'verify', rewritten]),
      () => muster(['audit', 'verify', rewritten, '--against', earlier]),
      () => muster(['audit', 'verify', exportPath, '--against', earlier]),
      () =>
        muster([
          'audit',
          'verify',
          exportPath,
          '--expect-head',
          `${last}:${hashOf(last)}`,
          '--expect-head',
          `3:${hashOf(3)}`,
        ]),
      () => muster(['audit', 'verify', rewritten, '--expect-head', `${last}:${hashOf(last)}`]),
      () => muster(['audit', 'verify', earlier, '--expect-head', `${last}:${hashOf(last)}`]),
      () => muster(['audit', 'verify', exportPath, '--expect-head', '5:abc']),
    ]);
    // Every hash after the edit was recomputed: the file alone looks intact.
    expect(alone?.code).toBe(0);
    expect(against?.code).toBe(1);
    expect(against?.stderr).toContain(
      `anchor-mismatch at line ${forged + 2}, revision ${forged}, event ${events[forged]?.id}: ` +
        `revision ${forged} differs from the earlier export ${earlier}`,
    );
    expect(extended?.code).toBe(0);
    expect(extended?.stdout).toContain(`extends ${earlier} (its ${kept} events unchanged)`);
    expect(heads?.code).toBe(0);
    expect(heads?.stdout).toContain(`revision ${last} has the expected hash`);
    expect(wrongHead?.code).toBe(1);
    expect(wrongHead?.stderr).toContain(`anchor-mismatch at line ${last + 2}, revision ${last}`);
    expect(wrongHead?.stderr).toContain(`revision ${last} differs from --expect-head ${last}:`);
    expect(beyond?.code).toBe(1);
    expect(beyond?.stderr).toContain(
      `anchor-mismatch at line ${kept + 1}, revision ${kept}: revision ${kept} is missing`,
    );
    expect(malformed?.code).toBe(2);
    expect(malformed?.stderr).toContain('--expect-head takes <revision>:<SHA-256 hash in hex>');
    expect(malformed?.stderr).toContain('Usage: muster audit verify');
  }, 120_000);
});

describe('usage, help and exit codes', () => {
  it("prints each command's usage on --help or -h, on stdout, and exits 0", async () => {
    const cases: [string[], string][] = [
      [['audit', 'verify', '--help'], 'Usage: muster audit verify <export.ndjson>'],
      [['replay', '--help'], 'Usage: muster replay <export.ndjson>'],
      [['projections', 'rebuild', '-h'], 'Usage: muster projections rebuild <name>'],
      [['projections', 'status', '--help'], 'Usage: muster projections status'],
      [['backup', '-h'], 'Usage: muster backup <destination.db>'],
      [['--help'], 'muster: audit and maintenance'],
    ];
    const runs = await inTurn(
      cases.map(
        ([args]) =>
          () =>
            muster(args),
      ),
    );
    runs.forEach((run, i) => {
      const [args, usage] = cases[i] as [string[], string];
      expect({ args, code: run.code, stderr: run.stderr }).toEqual({ args, code: 0, stderr: '' });
      expect(run.stdout, args.join(' ')).toContain(usage);
    });
  }, 60_000);

  it('exits 2 with the usage for a missing option value, and names a directory given as a file', async () => {
    const [noValue, directory] = await inTurn([
      () => muster(['audit', 'verify', exportPath, '--until']),
      () => muster(['audit', 'verify', dir]),
    ]);
    expect(noValue?.code).toBe(2);
    expect(noValue?.stderr).toContain("Option '--until <value>' argument missing");
    expect(noValue?.stderr).toContain('Usage: muster audit verify');
    expect(directory?.code).toBe(2);
    expect(directory?.stderr).toBe(`${dir} is a directory, not an export file\n`);
  }, 60_000);
});

describe('a SQLite path with no file', () => {
  it('is refused by status, rebuild and backup, which create nothing', async () => {
    const missing = join(dir, 'nowhere', 'muster.db');
    const runs = await inTurn(
      [
        ['projections', 'status'],
        ['projections', 'rebuild', 'readiness'],
        ['backup', join(dir, 'copy.db')],
      ].map((args) => () => muster(args, { MUSTER_SQLITE_PATH: missing })),
    );
    for (const run of runs) {
      expect(run.code).toBe(2);
      expect(run.stderr).toContain(`No SQLite file at ${missing} (MUSTER_SQLITE_PATH)`);
      expect(run.stderr).not.toContain('Usage:');
    }
    expect(existsSync(join(dir, 'nowhere'))).toBe(false);
    // With no environment at all, the default path is relative to where the CLI runs.
    const cwd = join(dir, 'elsewhere');
    mkdirSync(cwd);
    const bare = await muster(['projections', 'status'], {}, cwd);
    expect(bare.code).toBe(2);
    expect(bare.stderr).toContain('No SQLite file at ./data/muster.db');
    expect(readdirSync(cwd)).toEqual([]);
  }, 60_000);
});

describe('a rebuild resumed or interrupted', () => {
  const big = join(dir, 'big.db');
  const EVENTS = 7500;
  let unfinished: { generation: number; status: string; position: string | null; events: number };
  let head = 0;

  beforeAll(async () => {
    const store = await openSqliteEventStore({ path: big });
    for (const id of ['bulk-a', 'bulk-b', 'bulk-c']) {
      const data = [...syntheticMissionEventData({ missionId: id, events: EVENTS / 3, seed: id.length })];
      for (let i = 0; i < data.length; i += 500)
        await store.appendToStream(missionStreamName(id), data.slice(i, i + 500));
    }
    // Stopped after its first batch, as Ctrl-C leaves it.
    const runner = await startProjections({
      store,
      sql: store.sql,
      projections: [createReadinessProjection({ store })],
    });
    let closing: Promise<void> | null = null;
    await expect(
      runner.rebuild('readiness', {
        onProgress: (p) => {
          if (p.phase === 'building') closing ??= runner.close();
        },
      }),
    ).rejects.toMatchObject({ code: 'projections-closed' });
    await closing;
    const [status] = await readProjectionStatus({
      store,
      sql: store.sql,
      projections: [createReadinessProjection({ store })],
    });
    unfinished = status?.rebuild as typeof unfinished;
    head = Number(await store.headPosition());
    await store.close();
  }, 120_000);

  it('shows progress and rate of the events this run processes, and says how many came before', async () => {
    expect(unfinished).toMatchObject({ generation: 1 });
    expect(unfinished.status).not.toBe('ready');
    const at = Number(unfinished.position);
    expect(at).toBeGreaterThan(0);
    expect(at).toBeLessThan(head);
    const run = await muster(['projections', 'rebuild', 'readiness'], { MUSTER_SQLITE_PATH: big });
    expect(run.code).toBe(0);
    expect(run.stderr).toContain(
      `resuming the interrupted rebuild of readiness (generation 1) after ${unfinished.events.toLocaleString('en-US')} events`,
    );
    const remaining = (head - at).toLocaleString('en-US');
    const counts = [...run.stderr.matchAll(/rebuild readiness: ([\d,]+)\/([\d,]+) events/g)];
    expect(counts.length).toBeGreaterThan(0);
    for (const [, , total] of counts) expect(total).toBe(remaining);
    expect(run.stderr).toContain(`rebuild readiness: ${remaining}/${remaining} events (100%)`);
    expect(JSON.parse(run.stdout)).toEqual({
      name: 'readiness',
      generation: 1,
      events: EVENTS,
      eventsThisRun: EVENTS - unfinished.events,
      eventsBefore: unfinished.events,
      durationMs: expect.any(Number),
    });
  }, 120_000);

  it('reports completion, exit 0, when Ctrl-C comes after the swap has committed', async () => {
    const sql = openSqliteSql(big);
    const generation = async () =>
      Number(
        (
          await sql.query<{ generation: number }>(
            "SELECT generation FROM projection_checkpoints WHERE name = 'readiness'",
          )
        )[0]?.generation,
      );
    const before = await generation();
    const child = spawn(
      process.execPath,
      ['--conditions=@muster/source', '--import', TSX, MAIN, 'projections', 'rebuild', 'readiness'],
      {
        cwd: ROOT,
        env: { PATH: process.env.PATH ?? '', MUSTER_SQLITE_PATH: big },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => {
      stdout += c.toString();
    });
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString();
    });
    let exited = false;
    const exit = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
      child.on('exit', (code, signal) => {
        exited = true;
        resolve({ code, signal });
      }),
    );
    let signalled = false;
    try {
      while (!exited) {
        if ((await generation()) > before) {
          signalled = child.kill('SIGINT');
          break;
        }
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
    } finally {
      await sql.close();
    }
    const result = await exit;
    expect(signalled).toBe(true);
    expect({ ...result, stderr }).toMatchObject({ code: 0, signal: null });
    expect(JSON.parse(stdout)).toMatchObject({ name: 'readiness', generation: before + 1, events: EVENTS });
  }, 120_000);
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
