import { type ChildProcess, fork, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fdatasync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { uuidv7 } from '@muster/event-store';
import { openSqliteEventStore } from '@muster/event-store-sqlite';
import { decide, fold, missionStreamName, parseCommand, toStoredEvent } from '@muster/readiness';
import autocannon from 'autocannon';
import { latencySummary, log, options, print, round } from './lib.js';

/**
 * `pnpm bench:http`: durable `pledge-logistics` commands (distinct pledge ids, one mission, the
 * embedded store with fsync on every commit) through the real service process, against a fastify
 * route that does nothing, in the same run, both driven by autocannon with 50 connections. Then a
 * mission of 100,000 events: readiness `asOf` latency and the latency of a command on it.
 *
 * Two more routes, each in a process of its own, show where a command's time goes: one that only
 * inserts the body into SQLite, committed in groups with the same background fsync (the floor of
 * any durable write here), and one that only appends it as an event to Muster's embedded store
 * (validation, canonical JSON, the hash chain). A command adds to that the API (authentication,
 * its schema), the decision and the projections.
 */
const args = options({
  seconds: { type: 'string', default: '10' },
  connections: { type: 'string', default: '50' },
  'big-events': { type: 'string', default: '100000' },
  /** Internal: serve one of the baseline routes (noop, sqlite-insert, store-append) in this process. */
  child: { type: 'string', default: '' },
});

const here = dirname(fileURLToPath(import.meta.url));
const SERVER = join(here, '../../../services/api/dist/server.js');
const ADMIN_KEY = `bench-${randomBytes(24).toString('hex')}`;
const PLEDGE = {
  pledgeId: 'x',
  pledger: 'united-states',
  capability: 'airlift',
  quantity: 1,
  unit: 'aircraft',
};

if (args.child) await serveBaseline(args.child);
else await main();

/** A baseline route at POST /run: nothing, a grouped durable SQLite insert, or a store append. */
async function serveBaseline(kind: string): Promise<void> {
  const { default: Fastify } = await import('fastify');
  const app = Fastify({ logger: false });
  const path = process.env.BENCH_DB as string;
  if (kind === 'noop') {
    app.post('/run', async () => ({ ok: true }));
  } else if (kind === 'sqlite-insert') {
    const insert = await groupedSqliteInsert(path);
    app.post('/run', async (request, reply) => {
      const position = await insert(JSON.stringify(request.body));
      return reply.code(201).send({ position: String(position) });
    });
  } else if (kind === 'store-append') {
    const store = await openSqliteEventStore({ path });
    app.post('/run', async (request, reply) => {
      const result = await store.appendToStream('mission-bench', [
        {
          type: 'LogisticsPledged',
          data: request.body as Record<string, unknown>,
          metadata: {
            occurredAt: new Date().toISOString(),
            actor: { agency: 'admin', keyId: 'bench' },
            commandId: uuidv7(),
            correlationId: request.id,
          },
        },
      ]);
      return reply.code(201).send({ position: result.position, revision: result.nextExpectedRevision });
    });
  } else {
    throw new Error(`unknown baseline ${kind}`);
  }
  await app.listen({ port: Number(process.env.PORT), host: '127.0.0.1' });
  process.send?.('ready');
}

/**
 * Inserts rows into a WAL-mode SQLite table the way the embedded store commits: the inserts that
 * arrive in one turn of the event loop share a transaction at synchronous = NORMAL, and each
 * resolves once an fdatasync of the log on the thread pool has ended.
 */
async function groupedSqliteInsert(path: string): Promise<(body: string) => Promise<number>> {
  const { default: Database } = await import('better-sqlite3');
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.exec('CREATE TABLE rows (position INTEGER PRIMARY KEY, body TEXT NOT NULL)');
  const insert = db.prepare('INSERT INTO rows (body) VALUES (?)');
  const log = openSync(`${path}-wal`, 'r+');
  let pending: Array<{ body: string; resolve: (position: number) => void; reject: (e: unknown) => void }> =
    [];
  const flush = () => {
    const batch = pending;
    pending = [];
    const positions = db.transaction(() =>
      batch.map((row) => Number(insert.run(row.body).lastInsertRowid)),
    )();
    fdatasync(log, (error) => {
      for (const [i, row] of batch.entries()) {
        if (error) row.reject(error);
        else row.resolve(positions[i] as number);
      }
    });
  };
  return (body) =>
    new Promise((resolve, reject) => {
      pending.push({ body, resolve, reject });
      if (pending.length === 1) setImmediate(flush);
    });
}

async function main(): Promise<void> {
  const seconds = Number(args.seconds);
  const connections = Number(args.connections);
  const dir = mkdtempSync(join(tmpdir(), 'muster-bench-http-'));
  const children: ChildProcess[] = [];
  try {
    const baselines: Record<string, Awaited<ReturnType<typeof cannon>>> = {};
    for (const kind of ['noop', 'sqlite-insert', 'store-append']) {
      const port = await freePort();
      const child = fork(fileURLToPath(import.meta.url), ['--child', kind], {
        env: { ...process.env, PORT: String(port), BENCH_DB: join(dir, `${kind}.db`) },
        execArgv: ['--conditions=@muster/source', '--import', 'tsx'],
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      });
      children.push(child);
      await new Promise((resolve) => child.once('message', resolve));
      log(`${kind} route: ${connections} connections for ${seconds}s`);
      baselines[kind] = await cannon({
        url: `http://127.0.0.1:${port}/run`,
        connections,
        duration: seconds,
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(PLEDGE),
      });
      child.kill('SIGKILL');
    }
    const baseline = baselines.noop as Awaited<ReturnType<typeof cannon>>;
    const sqliteInsert = baselines['sqlite-insert'] as Awaited<ReturnType<typeof cannon>>;
    const storeAppend = baselines['store-append'] as Awaited<ReturnType<typeof cannon>>;

    const service = await startService(join(dir, 'service.db'));
    children.push(service.child);
    const defined = await post(service.url, '/v1/missions', { id: 'bench-mission', template: 'mss-haiti' });
    if (defined.status !== 201) throw new Error(`define: ${defined.status} ${await defined.text()}`);
    let n = 0;
    /** Distinct pledges on one mission; with `keyed`, each with its own Idempotency-Key. */
    const pledges = (keyed: boolean) =>
      cannon({
        url: `${service.url}/v1/missions/bench-mission/commands/pledge-logistics`,
        connections,
        duration: seconds,
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN_KEY}` },
        requests: [
          {
            setupRequest: (request) => {
              const id = `p-${process.pid}-${n++}`;
              return {
                ...request,
                ...(keyed ? { headers: { ...request.headers, 'idempotency-key': id } } : {}),
                body: JSON.stringify({ ...PLEDGE, pledgeId: id }),
              };
            },
          },
        ],
      });
    log(`pledge-logistics commands: ${connections} connections for ${seconds}s`);
    const commands = await pledges(false);
    // The same commands as a careful client sends them.
    log(`the same with an Idempotency-Key each: ${connections} connections for ${seconds}s`);
    const keyedCommands = await pledges(true);
    service.child.kill('SIGTERM');

    log(`building a mission of ${args['big-events']} events`);
    const bigPath = join(dir, 'big.db');
    await buildBigMission(bigPath, Number(args['big-events']));
    const big = await startService(bigPath);
    children.push(big.child);
    // The projections fold the mission they find at start; queries are measured on a service that
    // has caught up, as it runs in steady state. The catch-up time is reported beside them.
    const catchUpStart = performance.now();
    await projectionsCaughtUp(big.url);
    const catchUpMs = performance.now() - catchUpStart;
    const asOfLatencies: number[] = [];
    const firstStart = performance.now();
    const first = await get(big.url, '/v1/missions/big-mission/readiness?asOf=2024-06-01T00:00:00Z');
    const coldMs = performance.now() - firstStart;
    if (first.status !== 200) throw new Error(`asOf: ${first.status} ${await first.text()}`);
    for (let i = 0; i < 200; i++) {
      const day = String(1 + (i % 28)).padStart(2, '0');
      const t0 = performance.now();
      const res = await get(big.url, `/v1/missions/big-mission/readiness?asOf=2024-05-${day}T12:00:00Z`);
      await res.arrayBuffer();
      asOfLatencies.push(performance.now() - t0);
    }
    const commandLatencies: number[] = [];
    for (let i = 0; i < 200; i++) {
      const t0 = performance.now();
      const res = await post(big.url, '/v1/missions/big-mission/commands/report-unit-readiness', {
        unit: 'GSU',
        officersReady: 300 + i,
        status: 'standby',
      });
      if (res.status !== 201)
        throw new Error(`command on the big mission: ${res.status} ${await res.text()}`);
      await res.arrayBuffer();
      commandLatencies.push(performance.now() - t0);
    }
    big.child.kill('SIGTERM');

    print({
      benchmark: 'http',
      store: 'sqlite (WAL, synchronous=FULL)',
      connections,
      seconds,
      baselineNoopRoute: baseline,
      pledgeLogisticsCommands: commands,
      ratio: {
        commandsToNoop: round(commands.requestsPerSecond / baseline.requestsPerSecond, 3),
        target: 0.5,
      },
      keyedCommands: {
        ...keyedCommands,
        toNoop: round(keyedCommands.requestsPerSecond / baseline.requestsPerSecond, 3),
        toUnkeyed: round(keyedCommands.requestsPerSecond / commands.requestsPerSecond, 3),
      },
      durableWriteRoutes: {
        note: 'where the time goes: the same body, no API, no domain, no projections',
        sqliteInsert,
        storeAppend,
        sqliteInsertToNoop: round(sqliteInsert.requestsPerSecond / baseline.requestsPerSecond, 3),
        storeAppendToNoop: round(storeAppend.requestsPerSecond / baseline.requestsPerSecond, 3),
        commandsToStoreAppend: round(commands.requestsPerSecond / storeAppend.requestsPerSecond, 3),
      },
      targets: { commandP99Ms: 25, asOfMs: 20 },
      bigMission: {
        events: Number(args['big-events']),
        projectionCatchUpAfterStartMs: round(catchUpMs, 0),
        firstAsOfMs: round(coldMs, 1),
        asOf: latencySummary(asOfLatencies),
        commandOnBigMission: latencySummary(commandLatencies),
      },
    });
  } finally {
    for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

async function cannon(opts: autocannon.Options) {
  const result = await autocannon(opts);
  const errors = result.errors + result.timeouts + (result.non2xx ?? 0);
  return {
    requestsPerSecond: round(result.requests.average, 0),
    requests: result.requests.total,
    errors,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    maxMs: result.latency.max,
  };
}

async function buildBigMission(path: string, events: number): Promise<void> {
  const store = await openSqliteEventStore({ path });
  const missionId = 'big-mission';
  let state = fold([]);
  let n = 0;
  const command = (payload: Record<string, unknown>) =>
    parseCommand({
      missionId,
      commandId: `big-${n++}`,
      occurredAt: new Date(Date.UTC(2024, 2, 1) + n * 60_000).toISOString(),
      ...payload,
    });
  const apply = async (batch: ReturnType<typeof command>[]) => {
    const stored = [];
    for (const c of batch) {
      const decided = decide(c, state);
      state = fold(decided, state);
      stored.push(...decided.map(toStoredEvent));
    }
    await store.appendToStream(missionStreamName(missionId), stored);
  };
  await apply([command({ type: 'DefineMission', template: 'mss-haiti' })]);
  const units = ['RDU', 'ASTU', 'GSU', 'BPU'];
  for (let written = 1; written < events; ) {
    const size = Math.min(1000, events - written);
    await apply(
      Array.from({ length: size }, (_, i) =>
        (written + i) % 10 === 0
          ? command({
              type: 'PledgeLogistics',
              pledgeId: `pledge-${written + i}`,
              pledger: 'united-states',
              capability: 'transport',
              quantity: 1,
              unit: 'vehicles',
            })
          : command({
              type: 'ReportUnitReadiness',
              unit: units[(written + i) % 4],
              officersReady: 100 + ((written + i) % 200),
              status: 'standby',
            }),
      ),
    );
    written += size;
  }
  await store.close();
}

async function startService(path: string): Promise<{ url: string; child: ChildProcess }> {
  const port = await freePort();
  const child = spawn(process.execPath, [SERVER], {
    env: {
      PATH: process.env.PATH ?? '',
      PORT: String(port),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
      MUSTER_SQLITE_PATH: path,
      MUSTER_BOOTSTRAP_ADMIN_KEY: ADMIN_KEY,
      MUSTER_RATE_LIMIT_PER_MINUTE: '0',
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 600; i++) {
    try {
      if ((await fetch(`${url}/health/ready`)).status === 200) return { url, child };
    } catch {
      // not yet listening
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error('the service did not start');
}

async function projectionsCaughtUp(url: string): Promise<void> {
  for (let i = 0; i < 1200; i++) {
    const res = await fetch(`${url}/health/ready`);
    const body = (await res.json()) as { checks?: { projections?: Array<{ status: string }> } };
    const projections = body.checks?.projections ?? [];
    if (res.status === 200 && projections.length > 0 && projections.every((p) => p.status === 'up')) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error('the projections did not catch up within two minutes');
}

function post(url: string, path: string, body: unknown) {
  return fetch(`${url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN_KEY}` },
    body: JSON.stringify(body),
  });
}

function get(url: string, path: string) {
  return fetch(`${url}${path}`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}
