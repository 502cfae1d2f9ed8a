import { fork, spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { EventData, RecordedEvent } from '@muster/event-store';
import { openSqliteEventStore } from '@muster/event-store-sqlite';
import {
  createReadinessProjection,
  createReadinessQueries,
  DEFAULT_HEAP_GROWTH_PERCENT,
  exportMission,
  setHeapGrowthPercent,
  startProjections,
  verifyExport,
} from '@muster/projections';
import { foldMission, syntheticMissionEventData } from '@muster/projections/testing';
import { missionStreamName } from '@muster/readiness';
import { latencySummary, log, memorySampler, options, print, round } from './lib.js';

/**
 * `pnpm bench:replay`: the readiness projections over 1,000,000 events on the embedded SQLite
 * store. One mission of 100,000 events and missions of 10,000 events each, in the `steady`
 * synthetic mix (unit reports, pledges and their lifecycle, now and then a political or legal
 * fact), appended in interleaved chunks with record time following world time. Then, in a fresh
 * process, reading and JSON-parsing every event (the baseline); in another, the readiness domain's
 * fold alone on events already read (the ceiling of any runner, reported with the read added); in another, the projection
 * catching up from zero, a rebuild from zero into shadow tables with its swap beside the live
 * generation, as the admin endpoint runs it, and as-of / known-at / at-position questions on the
 * 100,000-event mission; last, the production CLI's rebuild of the same file in a process of its
 * own. Peak RSS is each process's own.
 */
const args = options({
  events: { type: 'string', default: '1000000' },
  big: { type: 'string', default: '100000' },
  'per-mission': { type: 'string', default: '10000' },
  dir: { type: 'string', default: '' },
  keep: { type: 'boolean', default: false },
  /**
   * A database filled by an earlier run with the same sizes (filled there first if missing): the
   * fill is skipped and the measuring process works on a fresh copy of it.
   */
  db: { type: 'string', default: '' },
  /** Runs the measuring process under `--cpu-prof`, writing its profile into this directory. */
  'cpu-prof': { type: 'string', default: '' },
  /** Caps V8's old space in the measuring process (--max-old-space-size), as a container would. */
  'heap-mb': { type: 'string', default: '' },
  /** V8's young generation in the measuring process (--max-semi-space-size); empty: V8's default. */
  'semi-space-mb': { type: 'string', default: '' },
  /** V8's heap growth in the measuring process, as MUSTER_HEAP_GROWTH_PERCENT (0: V8's own policy). */
  'heap-growth-percent': { type: 'string', default: String(DEFAULT_HEAP_GROWTH_PERCENT) },
  /**
   * What the measuring processes run: `dist`, this file compiled with the packages' builds, as the
   * service and the CLI run; or `source`, TypeScript through tsx (its loader thread and the
   * transpiled sources add about 38 MiB of RSS before anything is read).
   */
  'measure-from': { type: 'string', default: 'dist' },
  child: { type: 'string', default: '' },
  /** Internal: which measurement the child makes (`raw`: the baseline; `project`: the rest). */
  phase: { type: 'string', default: '' },
  'raw-rate': { type: 'string', default: '' },
  'raw-events': { type: 'string', default: '' },
  'last-recorded': { type: 'string', default: '' },
  /** Internal: the mission ids, comma-separated, for the `domain` phase. */
  missions: { type: 'string', default: '' },
});

const BIG = 'big-mission';
/** The memory target, 300 MB (decimal megabytes), in the MiB every figure here is printed in. */
const TARGET_PEAK_MIB = round(300e6 / 2 ** 20, 1);
/**
 * Missions live in waves, as deployments do: the largest throughout, the others eight at a time,
 * each taking turns of 100 events; a new one starts when one ends.
 */
const ACTIVE = 8;

const CLI = join(dirname(fileURLToPath(import.meta.url)), '../../../services/cli/dist/main.js');
/** This file as `pnpm bench:replay` compiles it (tsconfig.build.json), for the measuring processes. */
const COMPILED = join(dirname(fileURLToPath(import.meta.url)), '../dist/replay-bench.js');

if (args.child) {
  await child(args.child);
} else {
  await parent();
}

async function parent(): Promise<void> {
  const total = Number(args.events);
  const big = Math.min(Number(args.big), total);
  const perMission = Number(args['per-mission']);
  const dir = mkdtempSync(join(args.dir || tmpdir(), 'muster-bench-replay-'));
  const path = join(dir, 'replay.db');
  try {
    const missions: { id: string; events: number }[] = [{ id: BIG, events: big }];
    for (let left = total - big, i = 1; left > 0; i++) {
      missions.push({ id: `mission-${String(i).padStart(4, '0')}`, events: Math.min(perMission, left) });
      left -= perMission;
    }
    let fill: Awaited<ReturnType<typeof fillStore>> | 'reused' = 'reused';
    if (args.db && existsSync(args.db)) {
      log(`copying ${args.db} (${total} events expected: the sizes it was filled with)`);
      copyFileSync(args.db, path);
    } else {
      log(`filling ${total} events: ${missions.length} missions, the largest of ${big} events`);
      fill = await fillStore(path, missions);
      log(`filled in ${fill.seconds}s (${fill.eventsPerSecond} events/s); measuring in a fresh process`);
      if (args.db) copyFileSync(path, args.db);
    }
    // The baseline in a process of its own: its read-ahead thread leaves 60-130 MiB behind (thread
    // arenas, the heap it grew), which is not the projection's to carry.
    const raw = (await measure(path, ['--phase', 'raw'])) as {
      rawRead: { seconds: number; eventsPerSecond: number; peakRssMiB: number };
      events: number;
      lastRecorded: number;
    };
    const domain = (await measure(path, [
      '--phase',
      'domain',
      '--missions',
      missions.map((m) => m.id).join(','),
    ])) as {
      events: number;
      seconds: number;
    };
    const rawRate = raw.rawRead.eventsPerSecond;
    const foldRate = domain.events / domain.seconds;
    // Reading and parsing an event, then folding it, one after the other in one thread.
    const ceilingRate = 1 / (1 / rawRate + 1 / foldRate);
    const domainCeiling = {
      note: "the readiness domain's fold alone, mission by mission, on events already read and parsed, nothing written: with the raw read added, the most any one-thread rebuild could reach",
      foldSeconds: round(domain.seconds, 2),
      foldEventsPerSecond: round(foldRate, 0),
      withRawReadEventsPerSecond: round(ceilingRate, 0),
      ratioToRawRead: round(ceilingRate / rawRate, 3),
    };
    const measured = await measure(path, [
      '--phase',
      'project',
      '--raw-rate',
      String(raw.rawRead.eventsPerSecond),
      '--raw-events',
      String(raw.events),
      '--last-recorded',
      String(raw.lastRecorded),
    ]);
    // The same rebuild as an operator runs it: the production CLI, in a process of its own. Its
    // clock is the real one, years past the benchmark's log, so the first run also has the live
    // generation record what time alone changed since (every mission loaded and moved): the
    // second run is the rebuild alone.
    log(
      'the CLI rebuilding the same file in a process of its own, twice (muster projections rebuild readiness)',
    );
    const first = await cliRebuild(path, args['heap-growth-percent']);
    const cli = await cliRebuild(path, args['heap-growth-percent']);
    const rebuildCli = {
      ...cli,
      ratioToRawRead: round(cli.eventsPerSecond / rawRate, 3),
      firstRun: { ...first, note: 'with the live generation moving every mission to the present beside it' },
    };
    print({
      benchmark: 'replay',
      store: 'sqlite',
      maxOldSpaceMiB: args['heap-mb'] ? Number(args['heap-mb']) : 'V8 default',
      maxSemiSpaceMiB: args['semi-space-mb'] ? Number(args['semi-space-mb']) : 'V8 default',
      heapGrowthPercent: Number(args['heap-growth-percent']) || "V8's own policy",
      measuringProcesses:
        args['measure-from'] === 'source'
          ? 'TypeScript sources through tsx'
          : 'the compiled packages (dist), as the service and the CLI run',
      events: total,
      missions: missions.length,
      largestMission: { id: BIG, events: big },
      databaseMiB: round(statSync(path).size / 1024 / 1024, 1),
      fill,
      rawRead: raw.rawRead,
      domainCeiling,
      ...measured,
      rebuildCli,
      metByCliRebuild: {
        eventsPerSecond: cli.eventsPerSecond >= 100_000,
        ratioToRawRead: rebuildCli.ratioToRawRead >= 0.5,
        peakRssMiB: cli.peakRssMiB < TARGET_PEAK_MIB,
      },
    });
  } finally {
    if (!args.keep) rmSync(dir, { recursive: true, force: true });
    else log(`kept ${dir}`);
  }
}

/** One phase of the measurement in a fresh process (see `child`); resolves with what it reports. */
function measure(path: string, phaseArgs: string[]): Promise<Record<string, unknown>> {
  return new Promise<Record<string, unknown>>((resolve, reject) => {
    const childArgs = ['--child', path, '--heap-growth-percent', args['heap-growth-percent'], ...phaseArgs];
    const fromSource = args['measure-from'] === 'source';
    if (!fromSource && args['measure-from'] !== 'dist') throw new Error('--measure-from: dist or source');
    const script = fromSource ? fileURLToPath(import.meta.url) : COMPILED;
    const proc = fork(script, childArgs, {
      execArgv: [
        ...(fromSource ? ['--conditions=@muster/source', '--import', 'tsx'] : []),
        '--expose-gc',
        ...(args['cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${args['cpu-prof']}`] : []),
        ...(args['heap-mb'] ? [`--max-old-space-size=${args['heap-mb']}`] : []),
        ...(args['semi-space-mb'] ? [`--max-semi-space-size=${args['semi-space-mb']}`] : []),
      ],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    proc.once('message', (m) => resolve(m as Record<string, unknown>));
    proc.once('error', reject);
    proc.once('exit', (code) => {
      if (code !== 0) reject(new Error(`measuring process exited with ${code}`));
    });
  });
}

/**
 * `muster projections rebuild readiness` (the built CLI) on `path`: its own figure for the rebuild
 * (events over its duration, start-up left out) and the peak RSS of its process, which a preloaded
 * line reports as it exits.
 */
async function cliRebuild(
  path: string,
  heapGrowthPercent: string,
): Promise<{ events: number; seconds: number; eventsPerSecond: number; peakRssMiB: number }> {
  const reportPeak =
    'data:text/javascript,process.on("exit",()=>process.stderr.write("max-rss-kib "+process.resourceUsage().maxRSS+"\\n"))';
  const proc = spawn(process.execPath, ['--import', reportPeak, CLI, 'projections', 'rebuild', 'readiness'], {
    env: {
      PATH: process.env.PATH ?? '',
      MUSTER_SQLITE_PATH: path,
      MUSTER_HEAP_GROWTH_PERCENT: heapGrowthPercent,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  proc.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const code = await new Promise<number | null>((resolve) => proc.once('exit', resolve));
  const peak = /max-rss-kib (\d+)/.exec(stderr);
  if (code !== 0 || !peak) throw new Error(`the CLI rebuild failed (exit ${code}): ${stderr.slice(-2000)}`);
  const result = JSON.parse(stdout) as { events: number; durationMs: number };
  const seconds = result.durationMs / 1000;
  return {
    events: result.events,
    seconds: round(seconds, 2),
    eventsPerSecond: round(result.events / seconds, 0),
    peakRssMiB: round(Number(peak[1]) / 1024, 1),
  };
}

async function fillStore(
  path: string,
  missions: readonly { id: string; events: number }[],
): Promise<{ seconds: number; eventsPerSecond: number; layout: string }> {
  let now = Date.UTC(2024, 0, 1);
  const store = await openSqliteEventStore({ path, clock: () => new Date(now), synchronous: 'NORMAL' });
  // World time of a mission starts when it does; the largest one's events spread over all turns.
  const source = (m: { id: string; events: number }, i: number, stepMs = 60_000) => ({
    id: m.id,
    total: m.events,
    taken: 0,
    events: syntheticMissionEventData({
      missionId: m.id,
      events: m.events,
      seed: i + 1,
      profile: 'steady',
      startMs: now,
      stepMs,
    }),
  });
  const [first, ...rest] = missions;
  const smallTotal = rest.reduce((n, m) => n + m.events, 0);
  const turns = Math.max(1, Math.ceil(smallTotal / (ACTIVE * 100)));
  const bigSpec = first as { id: string; events: number };
  const big = source(bigSpec, 0, Math.max(1000, Math.floor((turns * 80 * 60_000) / bigSpec.events)));
  const waiting = rest.map((m, i) => ({ m, i: i + 1 }));
  let smallTaken = 0;
  const active = waiting.splice(0, ACTIVE).map(({ m, i }) => source(m, i));
  const chunk = 100;
  const take = (s: ReturnType<typeof source>): EventData[] => {
    const batch: EventData[] = [];
    for (let n = 0; n < chunk; n++) {
      const next = s.events.next();
      if (next.done) break;
      batch.push(next.value);
    }
    s.taken += batch.length;
    return batch;
  };
  const started = performance.now();
  let appended = 0;
  while (active.length > 0 || big.taken < big.total) {
    // Record time follows world time: a turn of 100 events spans 100 minutes of it, recorded at
    // its end (a log holds what happened, not what will).
    now += 100 * 60_000;
    const appends: Promise<unknown>[] = [];
    for (const s of [...active]) {
      const batch = take(s);
      smallTaken += batch.length;
      if (batch.length > 0) appends.push(store.appendToStream(missionStreamName(s.id), batch));
      appended += batch.length;
      if (s.taken >= s.total) {
        active.splice(active.indexOf(s), 1);
        const next = waiting.shift();
        if (next) active.push(source(next.m, next.i));
      }
    }
    while (big.taken < big.total && (smallTotal === 0 || big.taken / big.total <= smallTaken / smallTotal)) {
      const batch = take(big);
      appended += batch.length;
      appends.push(store.appendToStream(missionStreamName(big.id), batch));
    }
    await Promise.all(appends);
  }
  await store.close();
  const seconds = (performance.now() - started) / 1000;
  return {
    seconds: round(seconds, 1),
    eventsPerSecond: round(appended / seconds, 0),
    layout: `the largest mission throughout, the others ${ACTIVE} at a time, in turns of ${chunk} events`,
  };
}

async function child(path: string): Promise<void> {
  // As the service and the CLI do at start (MUSTER_HEAP_GROWTH_PERCENT).
  setHeapGrowthPercent(Number(args['heap-growth-percent']));
  const store = await openSqliteEventStore({ path });
  const rss = () => `${round(process.memoryUsage().rss / 1024 / 1024, 0)} MiB RSS`;
  if (args.phase === 'raw') {
    const peak = memorySampler();
    log('baseline: reading and JSON-parsing every event');
    const started = performance.now();
    let events = 0;
    let lastRecorded = 0;
    for await (const event of store.readAll()) {
      events++;
      lastRecorded = Math.max(lastRecorded, Date.parse(event.recordedAt));
    }
    const seconds = (performance.now() - started) / 1000;
    log(`read ${events} events in ${round(seconds, 1)}s (${rss()})`);
    await store.close();
    process.send?.({
      rawRead: {
        seconds: round(seconds, 2),
        eventsPerSecond: round(events / seconds, 0),
        peakRssMiB: peak.stop(),
      },
      events,
      lastRecorded,
    });
    return;
  }
  if (args.phase === 'domain') {
    log("the domain's fold alone, mission by mission (reading untimed)");
    let events = 0;
    let seconds = 0;
    for (const missionId of args.missions.split(',')) {
      const recorded: RecordedEvent[] = [];
      for await (const event of store.readStream(missionStreamName(missionId))) recorded.push(event);
      const started = performance.now();
      events += foldMission(missionId, recorded).events;
      seconds += (performance.now() - started) / 1000;
    }
    log(`folded ${events} events in ${round(seconds, 1)}s`);
    await store.close();
    process.send?.({ events, seconds });
    return;
  }
  const sampler = phasePeaks(memorySampler());
  const read = Number(args['raw-events']);
  const rawRate = Number(args['raw-rate']);
  const lastRecorded = Number(args['last-recorded']);
  let t0: number;

  // The runner's clock stands just after the last record time, as for a service that kept up.
  const clock = () => new Date(lastRecorded + 60_000);
  const projection = createReadinessProjection({ store });
  const runner = await startProjections({
    store,
    sql: store.sql,
    projections: [projection],
    clock,
  });
  const head = (await store.headPosition()) as string;
  log('the projection catching up from zero');
  t0 = performance.now();
  await runner.waitForPosition(head, 3_600_000);
  const catchUpEventsSeconds = (performance.now() - t0) / 1000;
  // A catch-up ends once time's changes are recorded too: the scheduler starts on them when the
  // events are done (every mission time has moved since its last event), and the rebuild timed
  // next would otherwise share the process with that work.
  // The scheduler writes a watermark only when a change is due: a small log may have none.
  const watermark = clock().getTime() - 1000;
  for (;;) {
    const [status] = await runner.status();
    if (status?.watermark && Date.parse(status.watermark) >= watermark) break;
    const [due] = await store.sql.query('SELECT MIN(next_change_at) AS at FROM readiness_missions');
    if (due?.at === null || Number(due?.at) > watermark) break;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const catchUpSeconds = (performance.now() - t0) / 1000;
  const catchUpPeakRssMiB = sampler.peak();
  log(
    `caught up in ${round(catchUpSeconds, 1)}s, events in ${round(catchUpEventsSeconds, 1)}s (${rss()}, peak ${JSON.stringify(catchUpPeakRssMiB)})`,
  );

  log('rebuild from zero into shadow tables, then swap');
  t0 = performance.now();
  const rebuilt = await runner.rebuild('readiness');
  const rebuildSeconds = (performance.now() - t0) / 1000;
  const rebuildPeakRssMiB = sampler.peak();
  log(`rebuilt in ${round(rebuildSeconds, 1)}s (${rss()}, peak ${JSON.stringify(rebuildPeakRssMiB)})`);
  // The kernel's high-water mark of the process (catch-up and rebuild; the baseline read ran in
  // another process): sampling every 20 ms misses short peaks by tens of MiB.
  const sampledPeakRssMiB = sampler.stop();
  const peakRssMiB = Math.max(sampledPeakRssMiB, round(process.resourceUsage().maxRSS / 1024, 1));
  // Live data, as opposed to garbage the collector had not reclaimed yet when RSS peaked.
  (globalThis as { gc?: () => void }).gc?.();
  const heapAfterGcMiB = round(process.memoryUsage().heapUsed / 1024 / 1024, 1);

  // In the runner's process, queries share the live projection's in-memory states.
  const queries = createReadinessQueries({ store, sql: store.sql, projection });
  const bigEvents: { position: string; recordedAt: number }[] = [];
  for await (const e of store.readStream(missionStreamName(BIG))) {
    bigEvents.push({ position: e.position, recordedAt: Date.parse(e.recordedAt) });
  }
  const first = bigEvents[0]?.recordedAt ?? 0;
  const last = bigEvents[bigEvents.length - 1]?.recordedAt ?? 0;
  const instant = (i: number) =>
    new Date(first + ((last - first) * ((i * 7919) % 1000)) / 1000).toISOString();
  const time = async (fn: () => Promise<unknown>) => {
    const s = performance.now();
    await fn();
    return performance.now() - s;
  };
  let coldBasis: unknown = null;
  const asOfCold = await time(async () => {
    coldBasis = (await queries.verdictAsOf(BIG, instant(1)))?.basis ?? null;
  });
  // A process with no projection running (another replica): the latest snapshot and the tail.
  const elsewhere = createReadinessQueries({ store, sql: store.sql });
  const asOfColdFromSnapshot = await time(() => elsewhere.verdictAsOf(BIG, instant(2)));
  const asOfWarm: number[] = [];
  for (let i = 0; i < 200; i++) asOfWarm.push(await time(() => queries.verdictAsOf(BIG, instant(i))));
  const knownAt: number[] = [];
  for (let i = 0; i < 20; i++) knownAt.push(await time(() => queries.verdictKnownAt(BIG, instant(i + 3))));
  const atPosition: number[] = [];
  for (let i = 0; i < 20; i++) {
    const e = bigEvents[Math.floor((bigEvents.length * ((i * 613) % 1000)) / 1000)];
    atPosition.push(await time(() => queries.verdictAtPosition(BIG, e?.position ?? head)));
  }
  log('verifying an export of the largest mission offline (the CLI path, no SQL)');
  const exported: string[] = [];
  for await (const line of (await exportMission(store, BIG)) ?? []) exported.push(line);
  t0 = performance.now();
  const verified = await verifyExport(exported);
  const verifySeconds = (performance.now() - t0) / 1000;
  const [status] = await runner.status();
  const [snapshots] = await store.sql.query(
    `SELECT COUNT(*) AS n,
       COALESCE(SUM(LENGTH(state)), 0)
         + (SELECT COALESCE(SUM(LENGTH(state)), 0) FROM readiness_snapshot_parts) AS bytes
     FROM readiness_snapshots`,
  );
  await runner.close();
  await store.close();

  const rebuildRate = read / rebuildSeconds;
  const catchUpRate = read / catchUpSeconds;
  const asOf = {
    coldMs: round(asOfCold),
    coldBasis,
    coldFromSnapshotMs: round(asOfColdFromSnapshot),
    warm: latencySummary(asOfWarm),
  };
  process.send?.({
    catchUp: {
      seconds: round(catchUpSeconds, 2),
      eventsSeconds: round(catchUpEventsSeconds, 2),
      eventsPerSecond: round(catchUpRate, 0),
      ratioToRawRead: round(catchUpRate / rawRate, 3),
      note: 'live mode: also writes the change feed; seconds include recording the changes time caused up to now (eventsSeconds: the events only)',
    },
    rebuild: {
      seconds: round(rebuildSeconds, 2),
      eventsPerSecond: round(rebuildRate, 0),
      ratioToRawRead: round(rebuildRate / rawRate, 3),
      generation: rebuilt.generation,
    },
    peakRssMiB,
    sampledPeakRssMiB,
    peakRssByPhaseMiB: { catchUp: catchUpPeakRssMiB, rebuild: rebuildPeakRssMiB },
    heapAfterGcMiB,
    asOf,
    knownAt: latencySummary(knownAt),
    atPosition: latencySummary(atPosition),
    verifyExport: {
      events: verified.events,
      ok: verified.ok,
      seconds: round(verifySeconds, 2),
      eventsPerSecond: round(verified.events / verifySeconds, 0),
    },
    projection: { position: status?.position, lagEvents: status?.lagEvents },
    snapshots: { rows: Number(snapshots?.n), MiB: round(Number(snapshots?.bytes) / 1024 / 1024, 1) },
    targets: {
      eventsPerSecond: 100_000,
      ratioToRawRead: 0.5,
      peakRssMiB: TARGET_PEAK_MIB,
      peakRssNote: '300 MB',
      asOfMs: 20,
    },
    met: {
      eventsPerSecond: rebuildRate >= 100_000,
      ratioToRawRead: rebuildRate / rawRate >= 0.5,
      peakRssMiB: peakRssMiB < TARGET_PEAK_MIB,
      asOfWarmP99: asOf.warm.p99Ms < 20,
      asOfCold: asOf.coldMs < 20,
    },
  });
}

/**
 * A sampler whose `peak()` is the peak RSS (MiB) since the previous call (or the start), with what
 * V8 reported at that moment: heap committed and used, and memory outside the heap.
 */
function phasePeaks(sampler: ReturnType<typeof memorySampler>) {
  let peak = { rss: 0, heapTotal: 0, heapUsed: 0, external: 0 };
  const sample = () => {
    const m = process.memoryUsage();
    if (m.rss > peak.rss) peak = m;
  };
  const timer = setInterval(sample, 20);
  const mib = (n: number) => round(n / 1024 / 1024, 1);
  return {
    peak() {
      sample();
      const out = {
        rss: mib(peak.rss),
        heapTotal: mib(peak.heapTotal),
        heapUsed: mib(peak.heapUsed),
        external: mib(peak.external),
      };
      peak = { rss: 0, heapTotal: 0, heapUsed: 0, external: 0 };
      return out;
    },
    stop(): number {
      clearInterval(timer);
      return sampler.stop();
    },
  };
}
