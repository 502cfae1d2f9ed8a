import { execFile, fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openPostgresEventStore, openPostgresSql } from '@muster/event-store-postgres';
import { closedLoop, log, memorySampler, print, round } from './lib.js';

/**
 * `pnpm bench:store --store postgres`: durable single-event appends from 16 concurrent producers
 * through the PostgreSQL store (group commit on, and off as a second baseline), against `pgbench`
 * inserting one row per transaction with 16 clients into a table of the same shape, on the same
 * cluster, in the same run, alternating round by round so that both see the same machine; then
 * the catch-up of a subscription over 1,000,000 events in a fresh process.
 *
 * Needs DATABASE_URL (a server where the user may CREATE DATABASE) and pgbench on the PATH or in
 * /usr/lib/postgresql/<version>/bin. Every database it creates is dropped at the end.
 */
export interface PostgresStoreBenchOptions {
  seconds: number;
  /** Rounds of (pgbench, store scenarios); the summary is the median of the rounds. */
  rounds?: number;
  producers?: number;
  readEvents?: number;
}

const PAYLOAD_NOTE = 'x'.repeat(64);
const thisFile = fileURLToPath(import.meta.url);

if (process.argv[1] === thisFile && process.argv[2] === '--read-child') {
  await readChild(process.argv[3] as string);
}

interface AppendFigures {
  eventsPerSecond: number;
  events: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

interface Round {
  pgbench: { transactionsPerSecond: number; transactions: number; latencyAverageMs: number };
  groupCommit: { distinctStreams: AppendFigures; hotStream: AppendFigures };
  oneTransactionPerAppend: { distinctStreams: AppendFigures };
  ratios: {
    groupCommitVsPgbench: number;
    hotStreamVsPgbench: number;
    oneTransactionPerAppendVsPgbench: number;
  };
}

export async function runPostgresStoreBench(options: PostgresStoreBenchOptions): Promise<void> {
  const url = process.env.DATABASE_URL;
  if (!url) {
    throw new Error(
      'DATABASE_URL is not set: start a throwaway server with eval "$(bash .ci/pg-cluster.sh start)"',
    );
  }
  const seconds = options.seconds;
  const rounds = options.rounds ?? 3;
  const producers = options.producers ?? 16;
  const readEvents = options.readEvents ?? 1_000_000;
  const pgbench = findPgbench();
  const admin = await openPostgresSql(url, { poolSize: 1 });
  const tag = randomBytes(4).toString('hex');
  const names = {
    appends: `muster_bench_appends_${tag}`,
    pgbench: `muster_bench_pgbench_${tag}`,
    read: `muster_bench_read_${tag}`,
  };
  const scratch = mkdtempSync(join(tmpdir(), 'muster-bench-pg-'));
  try {
    const [settings] = await admin.query<{ version: string; fsync: string; sync: string }>(
      "SELECT current_setting('server_version') AS version, current_setting('fsync') AS fsync, current_setting('synchronous_commit') AS sync",
    );
    for (const name of Object.values(names)) {
      await admin.script(`CREATE DATABASE ${name} ENCODING 'UTF8' TEMPLATE template0`);
    }
    const appendsUrl = withDatabase(url, names.appends);
    const pgbenchUrl = withDatabase(url, names.pgbench);

    // The baseline's row has the event's shape: a uuid key, a sequence, a stream and JSON data.
    const baselineSql = await openPostgresSql(pgbenchUrl, { poolSize: 1 });
    await baselineSql.script(`CREATE TABLE bench_rows (
      id       uuid   PRIMARY KEY DEFAULT gen_random_uuid(),
      position bigint NOT NULL GENERATED ALWAYS AS IDENTITY,
      stream   text   NOT NULL,
      data     json   NOT NULL)`);
    await baselineSql.close();
    const script = join(scratch, 'insert-one-row.sql');
    writeFileSync(
      script,
      "\\set n random(1, 1000000000)\nINSERT INTO bench_rows (stream, data) VALUES ('stream-' || :client_id, " +
        `('{"i":' || :n || ',"note":"${PAYLOAD_NOTE}","p":' || :client_id || '}')::json);\n`,
    );

    const scenario = async (name: string, groupCommit: boolean, hot: boolean): Promise<AppendFigures> => {
      const store = await openPostgresEventStore({ connectionString: appendsUrl, groupCommit });
      try {
        log(`${name}: ${producers} producers for ${seconds}s (group commit ${groupCommit ? 'on' : 'off'})`);
        const result = await closedLoop(producers, seconds, (p, i) =>
          store.appendToStream(hot ? `hot-stream-${tag}` : `stream-${p}`, [
            { type: 'Benchmarked', data: { p, i, note: PAYLOAD_NOTE } },
          ]),
        );
        return { eventsPerSecond: result.perSecond, events: result.ops, ...result.latency };
      } finally {
        await store.close();
      }
    };

    const results: Round[] = [];
    for (let r = 0; r < rounds; r++) {
      log(`round ${r + 1} of ${rounds}: pgbench, ${producers} clients for ${seconds}s`);
      const baseline = await runPgbench(pgbench, pgbenchUrl, script, producers, seconds);
      const distinct = await scenario('group-commit-distinct-streams', true, false);
      const hot = await scenario('group-commit-hot-stream', true, true);
      const single = await scenario('one-transaction-per-append-distinct-streams', false, false);
      const tps = baseline.transactionsPerSecond;
      results.push({
        pgbench: baseline,
        groupCommit: { distinctStreams: distinct, hotStream: hot },
        oneTransactionPerAppend: { distinctStreams: single },
        ratios: {
          groupCommitVsPgbench: round(distinct.eventsPerSecond / tps, 2),
          hotStreamVsPgbench: round(hot.eventsPerSecond / tps, 2),
          oneTransactionPerAppendVsPgbench: round(single.eventsPerSecond / tps, 2),
        },
      });
    }

    const readUrl = withDatabase(url, names.read);
    log(`filling ${readEvents} events for the catch-up measurement`);
    const filled = await fill(readUrl, readEvents);
    log(`filled in ${filled.seconds}s; catching up in a fresh process`);
    const catchUp = await new Promise<{ events: number; seconds: number; peakRssMiB: number }>(
      (resolve, reject) => {
        const child = fork(thisFile, ['--read-child', readUrl], {
          execArgv: ['--conditions=@muster/source', '--import', 'tsx'],
          stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
        });
        child.once('message', (m) => resolve(m as { events: number; seconds: number; peakRssMiB: number }));
        child.once('error', reject);
        child.once('exit', (code) => {
          if (code !== 0) reject(new Error(`the catch-up process exited with ${code}`));
        });
      },
    );

    const median = (pick: (r: Round) => number) => medianOf(results.map(pick));
    print({
      benchmark: 'store',
      store: 'postgres',
      server: `PostgreSQL ${settings?.version}`,
      durability: `fsync=${settings?.fsync}, synchronous_commit=${settings?.sync} (every commit flushed)`,
      producers,
      secondsPerScenario: seconds,
      rounds: results,
      median: {
        pgbenchTransactionsPerSecond: median((r) => r.pgbench.transactionsPerSecond),
        groupCommitDistinctStreamsEventsPerSecond: median(
          (r) => r.groupCommit.distinctStreams.eventsPerSecond,
        ),
        groupCommitHotStreamEventsPerSecond: median((r) => r.groupCommit.hotStream.eventsPerSecond),
        oneTransactionPerAppendEventsPerSecond: median(
          (r) => r.oneTransactionPerAppend.distinctStreams.eventsPerSecond,
        ),
      },
      ratios: {
        groupCommitVsPgbench: median((r) => r.ratios.groupCommitVsPgbench),
        hotStreamVsPgbench: median((r) => r.ratios.hotStreamVsPgbench),
        oneTransactionPerAppendVsPgbench: median((r) => r.ratios.oneTransactionPerAppendVsPgbench),
        target: 0.7,
      },
      catchUp: {
        events: catchUp.events,
        eventsPerSecond: round(catchUp.events / catchUp.seconds, 0),
        seconds: round(catchUp.seconds, 2),
        peakRssMiB: catchUp.peakRssMiB,
        fillEventsPerSecond: round(readEvents / filled.seconds, 0),
        target: { eventsPerSecond: 100_000 },
      },
    });
  } finally {
    for (const name of Object.values(names)) {
      await admin.script(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => {});
    }
    await admin.close();
    rmSync(scratch, { recursive: true, force: true });
  }
}

/** Events like the service's: a few fields of data, an actor and a command id in the metadata. */
async function fill(url: string, events: number): Promise<{ seconds: number }> {
  const store = await openPostgresEventStore({ connectionString: url });
  const start = performance.now();
  const perAppend = 1000;
  const writers = 4;
  try {
    let next = 0;
    await Promise.all(
      Array.from({ length: writers }, async () => {
        for (;;) {
          const from = next;
          if (from >= events) return;
          next += perAppend;
          const count = Math.min(perAppend, events - from);
          await store.appendToStream(
            `fill-${(from / perAppend) % 500}`,
            Array.from({ length: count }, (_, j) => ({
              type: 'Filled',
              data: { n: from + j, unit: 'RDU', officersReady: 250 },
              metadata: { actor: { agency: 'bench', keyId: 'k' }, commandId: `c-${from + j}` },
            })),
          );
        }
      }),
    );
  } finally {
    await store.close();
  }
  return { seconds: round((performance.now() - start) / 1000, 1) };
}

/** Runs in a fresh process: a subscription from the start until it reports caught-up. */
async function readChild(url: string): Promise<void> {
  const store = await openPostgresEventStore({ connectionString: url });
  const memory = memorySampler();
  const start = performance.now();
  let events = 0;
  const subscription = store.subscribeToAll({ fromPosition: 'start' });
  for await (const message of subscription) {
    if (message.kind === 'event') events++;
    else if (message.kind === 'caught-up') break;
  }
  const seconds = (performance.now() - start) / 1000;
  const peakRssMiB = memory.stop();
  await subscription.close();
  await store.close();
  process.send?.({ events, seconds, peakRssMiB });
  process.disconnect?.();
}

function runPgbench(
  bin: string,
  url: string,
  script: string,
  clients: number,
  seconds: number,
): Promise<Round['pgbench']> {
  return new Promise((resolve, reject) => {
    execFile(
      bin,
      ['-n', '-c', String(clients), '-j', '2', '-T', String(seconds), '-f', script, url],
      { maxBuffer: 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error) return reject(new Error(`pgbench failed: ${error.message}\n${stderr}`));
        const tps = /tps = ([\d.]+) \(without initial connection time\)/.exec(stdout);
        const count = /number of transactions actually processed: (\d+)/.exec(stdout);
        const latency = /latency average = ([\d.]+) ms/.exec(stdout);
        if (!tps || !count) return reject(new Error(`unexpected pgbench output:\n${stdout}\n${stderr}`));
        resolve({
          transactionsPerSecond: round(Number(tps[1]), 0),
          transactions: Number(count[1]),
          latencyAverageMs: round(Number(latency?.[1] ?? Number.NaN), 2),
        });
      },
    );
  });
}

function findPgbench(): string {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir && existsSync(join(dir, 'pgbench'))) return join(dir, 'pgbench');
  }
  const root = '/usr/lib/postgresql';
  if (existsSync(root)) {
    for (const version of readdirSync(root).sort((a, b) => Number(b) - Number(a))) {
      const candidate = join(root, version, 'bin', 'pgbench');
      if (existsSync(candidate)) return candidate;
    }
  }
  throw new Error(
    'pgbench not found on the PATH or in /usr/lib/postgresql/*/bin (install postgresql-client)',
  );
}

function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

function medianOf(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : round(((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2, 2);
}
