import { fork } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { type SqlClient, sequencePosition } from '@muster/event-store';
import { openSqliteSql } from '@muster/event-store-sqlite';
import { appendChanges, type ReadinessChange } from '@muster/projections';
import { createWebhookService, DEFAULT_MAX_IN_FLIGHT } from '@muster/webhooks';
import { Agent, request } from 'undici';
import { latencySummary, log, memorySampler, options, print, round } from './lib.js';

/**
 * `pnpm bench:webhooks`: the webhook outbox on a SQLite file (WAL, synchronous=FULL), with 10
 * loopback receivers in a child process (each subscribed to every mission, so one change is 10
 * deliveries).
 *
 * 1. latency: changes committed to the readiness change feed at 200 per second (then 100 and 50,
 *    to show where the knee is), one transaction each as the projection writes them, then an
 *    in-process wake-up of the planner; p50/p99 from the commit to the receiver reading the
 *    request (target p99 < 50 ms at 200/s). Each run starts with `--warmup` seconds at its rate
 *    that are not measured (JIT, prepared statements, connections to the receivers), as a
 *    service that has been up for a while would be; the JSON says how long.
 * 2. throughput: a backlog of `--backlog` changes planned, then one dispatcher sends it all;
 *    deliveries per second (target >= 2,000/s).
 * 3. baseline, same run, same receivers: plain undici POSTs of the same bodies at the same
 *    concurrency, without the outbox, signing or the database.
 */
const args = options({
  /** Change rates for the latency phase, one run each; the first is the headline (the target is at 200/s). */
  rates: { type: 'string', default: '200,100,50' },
  seconds: { type: 'string', default: '10' },
  /** Unmeasured seconds at the run's rate before each latency run (its deliveries are awaited). */
  warmup: { type: 'string', default: '2' },
  receivers: { type: 'string', default: '10' },
  missions: { type: 'string', default: '20' },
  backlog: { type: 'string', default: '3000' },
  /** Requests in flight per process; empty: the service's default. */
  'max-in-flight': { type: 'string', default: '' },
  /** `normal` measures the same with synchronous=NORMAL (durable across process crashes, not power loss). */
  synchronous: { type: 'string', default: 'full' },
  dir: { type: 'string', default: '' },
  /** Which parts to run (`latency,throughput,baseline`): e.g. only `throughput` for a profile. */
  phases: { type: 'string', default: 'latency,throughput,baseline' },
  'receiver-child': { type: 'string', default: '' },
});

type Receipt = [changeId: string, receiver: number, at: number];
const wallNow = () => performance.timeOrigin + performance.now();

if (args['receiver-child']) {
  await receiverChild(Number(args['receiver-child']));
} else {
  await main();
}

/** The receivers: answer 204 at once, report (change, receiver, time of receipt) to the parent. */
async function receiverChild(count: number): Promise<void> {
  let pending: Receipt[] = [];
  const flush = () => {
    if (pending.length === 0) return;
    process.send?.({ receipts: pending });
    pending = [];
  };
  const timer = setInterval(flush, 50);
  const ports: number[] = [];
  for (let i = 0; i < count; i++) {
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const at = wallNow();
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
          data: { change?: { id: string } };
        };
        pending.push([body.data.change?.id ?? 'baseline', i, at]);
        res.writeHead(204).end();
      });
    });
    server.keepAliveTimeout = 30_000;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    ports.push((server.address() as AddressInfo).port);
  }
  process.send?.({ ports });
  process.on('message', (m: { flush?: boolean; exit?: boolean }) => {
    if (m.flush) {
      flush();
      process.send?.({ flushed: true });
    }
    if (m.exit) {
      clearInterval(timer);
      process.exit(0);
    }
  });
}

/** The same SQL client, counting the transactions the webhook service commits. */
function countTransactions(sql: SqlClient): { sql: SqlClient; readonly count: number } {
  let count = 0;
  const wrapped: SqlClient = {
    dialect: sql.dialect,
    query: (text, params) => sql.query(text, params),
    execute: (text, params) => sql.execute(text, params),
    script: (text) => sql.script(text),
    transaction: (fn, options) => {
      count++;
      return sql.transaction(fn, options);
    },
    readSnapshot: (fn) => sql.readSnapshot(fn),
  };
  return {
    sql: wrapped,
    get count() {
      return count;
    },
  };
}

async function main(): Promise<void> {
  const seconds = Number(args.seconds);
  const receiverCount = Number(args.receivers);
  const missionCount = Number(args.missions);
  const backlog = Number(args.backlog);
  const maxInFlight = args['max-in-flight'] ? Number(args['max-in-flight']) : DEFAULT_MAX_IN_FLIGHT;
  const dir = mkdtempSync(join(args.dir || tmpdir(), 'muster-bench-webhooks-'));
  const memory = memorySampler(250);
  const loadAtStart = loadavg().map((n) => round(n, 2));

  const receipts: Receipt[] = [];
  let flushed: (() => void) | null = null;
  const child = fork(new URL(import.meta.url).pathname, ['--receiver-child', String(receiverCount)], {
    execArgv: ['--conditions=@muster/source', '--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const ports = await new Promise<number[]>((resolve) => {
    child.on('message', (m: { ports?: number[]; receipts?: Receipt[]; flushed?: boolean }) => {
      if (m.ports) resolve(m.ports);
      if (m.receipts) receipts.push(...m.receipts);
      if (m.flushed) flushed?.();
    });
  });
  const flushReceipts = () =>
    new Promise<void>((resolve) => {
      flushed = resolve;
      child.send({ flush: true });
    });
  const urls = ports.map((port) => `http://127.0.0.1:${port}/hooks`);

  let counter = 0;
  const makeChange = (occurredAt: number): Omit<ReadinessChange, 'seq'> => {
    counter++;
    return {
      changeId: `chg_${counter}_${Math.random().toString(36).slice(2, 10)}`,
      missionId: `mission-${counter % missionCount}`,
      kind: 'readiness.changed',
      subject: 'main-deployment',
      payload: {
        phase: 'main-deployment',
        title: 'Main deployment',
        before: 'not-ready',
        after: counter % 2 === 0 ? 'ready' : 'not-ready',
        unmet: [
          { id: 'officers-ready', kind: 'threshold', missing: `officers ready ${counter % 1000} of 1,000` },
        ],
        verdict: { status: counter % 2 === 0 ? 'ready' : 'not-ready' },
      },
      causeEventId: `evt_${counter}`,
      causeRevision: counter,
      causeHash: createHash('sha256').update(`evt_${counter}`).digest('hex'),
      causePosition: sequencePosition(counter),
      occurredAt,
      recordedAt: occurredAt,
    };
  };

  /** Waits until `count` receipts arrived (or two minutes passed). */
  const awaitReceipts = async (count: number) => {
    const deadline = performance.now() + 120_000;
    while (receipts.length < count && performance.now() < deadline) {
      await flushReceipts();
      if (receipts.length < count) await new Promise((r) => setTimeout(r, 100));
    }
  };

  /** Commits `rate` changes per second for `seconds`, each in its own transaction, then waits for every receipt. */
  const latencyRun = async (rate: number) => {
    const sql = openSqliteSql(join(dir, `latency-${rate}.db`));
    if (args.synchronous !== 'full')
      await sql.script(`PRAGMA synchronous = ${args.synchronous.toUpperCase()}`);
    const counted = countTransactions(sql);
    const service = createWebhookService({
      sql: counted.sql,
      publicUrl: 'https://muster.example.org',
      allowHttp: true,
      allowCidrs: ['127.0.0.0/8'],
      maxInFlight,
    });
    await service.migrate();
    for (const url of urls) await service.createSubscription('bench', { url });
    await service.start();
    const warmupSeconds = Number(args.warmup);
    if (warmupSeconds > 0) {
      log(`latency: warm-up, ${rate} changes/s for ${warmupSeconds}s (not measured)`);
      const warm = Math.round(rate * warmupSeconds);
      const w0 = performance.now();
      for (let i = 0; i < warm; i++) {
        const wait = w0 + (i * 1000) / rate - performance.now();
        if (wait > 1) await new Promise((r) => setTimeout(r, wait));
        await sql.transaction((tx) => appendChanges(tx, [makeChange(Date.now())]));
        service.notifyChanges();
      }
      await awaitReceipts(warm * receiverCount);
      receipts.length = 0;
    }
    const transactionsBefore = counted.count;
    const loadBefore = loadavg().map((n) => round(n, 2));
    log(`latency: ${rate} changes/s for ${seconds}s, ${receiverCount} receivers, ${missionCount} missions`);
    const loopDelay = monitorEventLoopDelay({ resolution: 5 });
    loopDelay.enable();
    const committedAt = new Map<string, number>();
    /** Time this process spent in the producer's commits (each an fsync that blocks the event loop). */
    let producerMs = 0;
    const total = Math.round(rate * seconds);
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const wall0 = wallNow();
    for (let i = 0; i < total; i++) {
      const due = t0 + (i * 1000) / rate;
      const wait = due - performance.now();
      if (wait > 1) await new Promise((r) => setTimeout(r, wait));
      const change = makeChange(Date.now());
      const c0 = performance.now();
      await sql.transaction((tx) => appendChanges(tx, [change]));
      const committed = wallNow();
      producerMs += performance.now() - c0;
      committedAt.set(change.changeId, committed);
      service.notifyChanges();
    }
    const produceSeconds = (performance.now() - t0) / 1000;
    const expected = total * receiverCount;
    await awaitReceipts(expected);
    loopDelay.disable();
    const cpu = process.cpuUsage(cpu0);
    const busySeconds = (performance.now() - t0) / 1000;
    const transactions = counted.count - transactionsBefore;
    await service.stop();
    await sql.close();
    const mine = receipts.filter(([id]) => committedAt.has(id));
    const lastReceipt = Math.max(...mine.map(([, , at]) => at));
    const result = {
      targetChangesPerSecond: rate,
      changesPerSecond: round(total / produceSeconds, 1),
      changes: total,
      deliveriesExpected: expected,
      deliveriesReceived: mine.length,
      deliveriesPerSecond: round(mine.length / ((lastReceipt - wall0) / 1000), 0),
      ...latencySummary(mine.map(([id, , at]) => at - (committedAt.get(id) as number))),
      targetP99Ms: 50,
      maxInFlight,
      /** CPU of this process (producer, planner, dispatcher) per delivery, and its share of one core. */
      cpuMicrosPerDelivery: round((cpu.user + cpu.system) / expected, 0),
      cpuShareOfOneCore: round((cpu.user + cpu.system) / 1e6 / busySeconds, 2),
      /** Commits by the planner and the dispatcher (each an fsync), besides the producer's one per change. */
      webhookCommitsPerSecond: round(transactions / busySeconds, 0),
      webhookCommitsPerChange: round(transactions / total, 2),
      /** How late timers ran on this process's main thread (fsyncs and SQL block it), in ms. */
      eventLoopDelayMs: {
        p50: round(loopDelay.percentile(50) / 1e6, 1),
        p99: round(loopDelay.percentile(99) / 1e6, 1),
        max: round(loopDelay.max / 1e6, 1),
      },
      /** The simulated projection's own commits: mean duration, and their share of the time while producing. */
      producerCommitMeanMs: round(producerMs / total, 2),
      producerShareOfTime: round(producerMs / 1000 / produceSeconds, 2),
      warmupSeconds,
      /** The machine is shared: 1-, 5- and 15-minute load averages before and after this run. */
      loadAverage: { before: loadBefore, after: loadavg().map((n) => round(n, 2)) },
    };
    log(`latency at ${rate}/s: p50 ${result.p50Ms} ms, p99 ${result.p99Ms} ms`);
    return result;
  };

  const phases = new Set(args.phases.split(','));

  /** A backlog of `backlog` changes planned, then one dispatcher drains it. */
  const throughputRun = async () => {
    const tsql = openSqliteSql(join(dir, 'throughput.db'));
    if (args.synchronous !== 'full')
      await tsql.script(`PRAGMA synchronous = ${args.synchronous.toUpperCase()}`);
    const planner = createWebhookService({
      sql: tsql,
      publicUrl: 'https://muster.example.org',
      allowHttp: true,
      allowCidrs: ['127.0.0.0/8'],
      dispatch: false,
    });
    await planner.migrate();
    for (const url of urls) await planner.createSubscription('bench', { url });
    for (let i = 0; i < backlog; i += 500) {
      const batch = Array.from({ length: Math.min(500, backlog - i) }, () => makeChange(Date.now()));
      await tsql.transaction((tx) => appendChanges(tx, batch));
    }
    await planner.planner.catchUp();
    const deliveries = backlog * receiverCount;
    log(`throughput: ${deliveries} deliveries planned; one dispatcher, max ${maxInFlight} in flight`);
    const dispatcher = createWebhookService({
      sql: tsql,
      publicUrl: 'https://muster.example.org',
      allowHttp: true,
      allowCidrs: ['127.0.0.1/32'],
      plan: false,
      maxInFlight,
    });
    const cpu0 = process.cpuUsage();
    const d0 = performance.now();
    await dispatcher.start();
    // Receipts arrive in batches every 50 ms; the database confirms at the end.
    while (receipts.length < deliveries) {
      if (performance.now() - d0 > 300_000)
        throw new Error(`only ${receipts.length} of ${deliveries} received`);
      await new Promise((r) => setTimeout(r, 10));
    }
    const drainSeconds = (performance.now() - d0) / 1000;
    await dispatcher.stop();
    const cpu = process.cpuUsage(cpu0);
    const [delivered] = await tsql.query<{ n: number }>(
      `SELECT COUNT(*) AS n FROM webhook_deliveries WHERE status = 'delivered'`,
    );
    await planner.stop();
    await flushReceipts();
    const result = {
      deliveries,
      received: receipts.length,
      recordedDelivered: Number(delivered?.n),
      seconds: round(drainSeconds, 2),
      deliveriesPerSecond: round(deliveries / drainSeconds, 0),
      /** CPU of this process (all its threads) per delivery while draining. */
      cpuMicrosPerDelivery: round((cpu.user + cpu.system) / deliveries, 0),
      maxInFlight,
      queues: receiverCount * missionCount,
      targetDeliveriesPerSecond: 2000,
    };
    log(`throughput: ${result.deliveriesPerSecond} deliveries/s`);
    await tsql.close();
    receipts.length = 0;
    return result;
  };

  /** Plain POSTs to the same receivers, same concurrency, as many as the drain sent. */
  const baselineRun = async () => {
    const requests = backlog * receiverCount;
    const agent = new Agent({ keepAliveTimeout: 30_000 });
    const body = JSON.stringify({ type: 'readiness.changed', timestamp: new Date().toISOString(), data: {} });
    let sent = 0;
    const b0 = performance.now();
    await Promise.all(
      Array.from({ length: maxInFlight }, async (_, w) => {
        while (sent < requests) {
          sent++;
          const res = await request(urls[(sent + w) % urls.length] as string, {
            method: 'POST',
            dispatcher: agent,
            headers: { 'content-type': 'application/json' },
            body,
          });
          await res.body.dump();
        }
      }),
    );
    const baselineSeconds = (performance.now() - b0) / 1000;
    await agent.close();
    await flushReceipts();
    receipts.length = 0;
    return {
      requests,
      seconds: round(baselineSeconds, 2),
      requestsPerSecond: round(requests / baselineSeconds, 0),
    };
  };

  try {
    const latencyRuns = [];
    if (phases.has('latency')) {
      for (const rate of args.rates.split(',').map(Number)) {
        latencyRuns.push(await latencyRun(rate));
        receipts.length = 0;
      }
    }
    const throughput = phases.has('throughput') ? await throughputRun() : null;
    const baseline = phases.has('baseline') ? await baselineRun() : null;

    print({
      benchmark: 'webhooks',
      store: `sqlite (WAL, synchronous=${args.synchronous.toUpperCase()})`,
      machine: {
        cpus: cpus().length,
        loadAverageAtStart: loadAtStart,
        loadAverageAtEnd: loadavg().map((n) => round(n, 2)),
        node: process.version,
        receivers: `child process, ${receiverCount} loopback servers`,
      },
      latency: latencyRuns[0] ?? null,
      latencyByRate: latencyRuns,
      throughput,
      baseline,
      ratios: {
        dispatcherVsPlainPosts:
          throughput && baseline
            ? round(throughput.deliveriesPerSecond / baseline.requestsPerSecond, 2)
            : null,
      },
      peakRssMiB: memory.stop(),
    });
  } finally {
    child.send({ exit: true });
    rmSync(dir, { recursive: true, force: true });
  }
}
