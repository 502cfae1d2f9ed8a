import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { call, createStore, registerAgency, type ServiceProcess, startService } from '@muster/e2e';

/**
 * The soak: the service at half its measured maximum command rate for a while, with webhook
 * receivers attached. Memory must stay flat once the caches are warm, latency stable, and nothing
 * may fail. Open loop: commands are sent on a fixed schedule, whether or not earlier ones are done.
 */
export interface SoakOptions {
  seconds: number;
  /** Commands per second; when absent, half of the maximum measured for `probeSeconds` first. */
  rate?: number;
  probeSeconds?: number;
  missions?: number;
  receivers?: number;
  /**
   * Commands a mission receives before it is done and another takes its slot (300 when absent).
   * Missions end: a fixed set that grew without end would have memory grow with it by design
   * (a state keeps its whole history), up to the state caches' limit and then into reloads.
   */
  missionLifetime?: number;
  /** The service's state caches (MUSTER_STATE_CACHE_EVENTS): twice the missions' working set
   * (`missions × missionLifetime`) when absent, so that they are full after the warm-up. */
  cacheEvents?: number;
  /** Seconds left out of the comparison at the start (caches filling, the heap finding its size
   * before its first full collection); 30% of the run when absent. */
  warmupSeconds?: number;
  log?: (message: string) => void;
}

export interface SoakWindow {
  second: number;
  commands: number;
  p50Ms: number;
  p99Ms: number;
  rssMiB: number;
  /** V8 heap in use as the service reports it in /metrics (sampled at the window's close). */
  heapUsedMiB: number | null;
}

export interface SoakReport {
  seconds: number;
  maxRatePerSecond: number | null;
  ratePerSecond: number;
  commands: number;
  errors: number;
  errorSamples: string[];
  deliveries: number;
  deliveriesPerReceiver: number[];
  windows: SoakWindow[];
  /** Mean RSS of the first and the second half of the steady phase. */
  memory: {
    warmRssMiB: number;
    endRssMiB: number;
    growthPercent: number;
    /** The same comparison for the V8 heap in use: what the process keeps, as opposed to what the
     * allocator and SQLite's page caches hold on to. */
    warmHeapMiB: number | null;
    endHeapMiB: number | null;
    heapGrowthPercent: number | null;
  };
  latency: {
    medianWindowP99Ms: number;
    worstWindowP99Ms: number;
    overallP99Ms: number;
    /** Median of the window p99s in each half of the steady phase. */
    earlyP99Ms: number;
    lateP99Ms: number;
  };
}

const WINDOW_MS = 10_000;

export async function soak(options: SoakOptions): Promise<SoakReport> {
  const log = options.log ?? (() => {});
  const missions = options.missions ?? 40;
  const lifetime = options.missionLifetime ?? 300;
  const receiverCount = options.receivers ?? 3;
  const store = await createStore('sqlite');
  const receivers: Server[] = [];
  const received = Array.from({ length: receiverCount }, () => 0);
  let service: ServiceProcess | null = null;
  try {
    for (let r = 0; r < receiverCount; r++) {
      const server = createServer((req, res) => {
        req.resume();
        req.on('end', () => {
          received[r] = (received[r] ?? 0) + 1;
          res.writeHead(204).end();
        });
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      receivers.push(server);
    }
    service = await startService(store, {
      LOG_LEVEL: 'warn',
      MUSTER_RATE_LIMIT_PER_MINUTE: '0',
      MUSTER_WEBHOOK_ALLOW_HTTP: '1',
      MUSTER_WEBHOOK_ALLOW_CIDRS: '127.0.0.0/8',
      MUSTER_STATE_CACHE_EVENTS: String(Math.max(1000, options.cacheEvents ?? 2 * missions * lifetime)),
    });
    const running = service;
    const key = await registerAgency(running, 'soak-coordinator', ['coordinator']);
    for (const server of receivers) {
      const created = await call(running, 'POST', '/v1/webhooks', {
        key,
        body: { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, missions: '*' },
      });
      if (created.status !== 201) throw new Error(`subscribe: ${created.status} ${created.body}`);
    }
    // Slot s's missions follow one another, staggered so that they do not all end together.
    const defined = new Map<string, Promise<void>>();
    const define = (mission: string): Promise<void> => {
      let done = defined.get(mission);
      if (!done) {
        done = call(running, 'POST', '/v1/missions', {
          key,
          body: { id: mission, template: 'mss-haiti' },
          headers: { 'idempotency-key': `define-${mission}` },
        }).then((res) => {
          if (res.status !== 201)
            throw new Error(`define ${mission}: ${res.status} ${res.body.slice(0, 200)}`);
        });
        defined.set(mission, done);
      }
      return done;
    };
    const missionOf = (n: number): string => {
      const slot = n % missions;
      const generation = Math.floor(
        (Math.floor(n / missions) + Math.floor((slot * lifetime) / missions)) / lifetime,
      );
      return `soak-${slot}-${generation}`;
    };
    for (let m = 0; m < missions; m++) await define(missionOf(m));

    let sequence = 0;
    const units = ['RDU', 'ASTU', 'GSU', 'BPU'];
    const command = async (): Promise<{ ms: number; ok: boolean; detail?: string }> => {
      const n = sequence++;
      const mission = missionOf(n);
      const pledge = n % 10 < 3;
      const path = `/v1/missions/${mission}/commands/${pledge ? 'pledge-logistics' : 'report-unit-readiness'}`;
      const body = pledge
        ? {
            pledgeId: `soak-${n}`,
            pledger: 'united-states',
            capability: 'transport',
            quantity: 1,
            unit: 'vehicles',
          }
        : { unit: units[n % 4], officersReady: (n * 37) % 400, status: 'standby' };
      const started = performance.now();
      try {
        await define(mission);
        const res = await call(running, 'POST', path, { key, body });
        const ms = performance.now() - started;
        return res.status === 201
          ? { ms, ok: true }
          : { ms, ok: false, detail: `${res.status} ${res.body.slice(0, 200)}` };
      } catch (error) {
        return { ms: performance.now() - started, ok: false, detail: String(error) };
      }
    };

    let maxRate: number | null = null;
    let rate = options.rate ?? 0;
    if (!options.rate) {
      const probeSeconds = options.probeSeconds ?? 5;
      const deadline = performance.now() + probeSeconds * 1000;
      let done = 0;
      await Promise.all(
        Array.from({ length: 32 }, async () => {
          while (performance.now() < deadline) {
            await command();
            done++;
          }
        }),
      );
      maxRate = Math.round(done / probeSeconds);
      rate = Math.max(1, Math.round(maxRate / 2));
      log(`maximum about ${maxRate} commands/s; soaking at ${rate}/s for ${options.seconds}s`);
    }

    const latencies: number[] = [];
    const windows: SoakWindow[] = [];
    let windowLatencies: number[] = [];
    let errors = 0;
    const errorSamples: string[] = [];
    const inflight = new Set<Promise<void>>();
    const start = performance.now();
    const end = start + options.seconds * 1000;
    let nextWindow = start + WINDOW_MS;
    for (let i = 0; ; i++) {
      const due = start + (i * 1000) / rate;
      if (due >= end) break;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      const task = command().then((result) => {
        latencies.push(result.ms);
        windowLatencies.push(result.ms);
        if (!result.ok) {
          errors++;
          if (errorSamples.length < 5 && result.detail) errorSamples.push(result.detail);
        }
      });
      const tracked = task.finally(() => inflight.delete(tracked));
      inflight.add(tracked);
      if (performance.now() >= nextWindow) {
        const closed = closeWindow(windows.length, windowLatencies, rssMiB(running));
        windows.push(closed);
        sampleHeap(running, closed);
        windowLatencies = [];
        nextWindow += WINDOW_MS;
      }
    }
    await Promise.all([...inflight]);
    if (windowLatencies.length > 0)
      windows.push(closeWindow(windows.length, windowLatencies, rssMiB(running)));
    // Let the outbox drain before counting deliveries.
    await new Promise((resolve) => setTimeout(resolve, 3000));

    // After the warm-up (caches filling, the heap finding its size), the steady phase is split in
    // halves: memory and latency of the second half are compared with the first. Means over
    // several windows, because single RSS readings swing with garbage collection.
    const warmupWindows = Math.round(((options.warmupSeconds ?? options.seconds * 0.3) * 1000) / WINDOW_MS);
    const steady = windows.slice(Math.min(windows.length - 2, Math.max(1, warmupWindows)));
    const half = Math.max(1, Math.floor(steady.length / 2));
    const early = steady.slice(0, half);
    const late = steady.slice(half);
    const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / Math.max(1, values.length);
    const warm = round(mean(early.map((w) => w.rssMiB)));
    const endRss = round(mean(late.map((w) => w.rssMiB)));
    const heaps = (ws: SoakWindow[]) => ws.flatMap((w) => (w.heapUsedMiB === null ? [] : [w.heapUsedMiB]));
    const warmHeap = heaps(early).length > 0 ? round(mean(heaps(early))) : null;
    const endHeap = heaps(late).length > 0 ? round(mean(heaps(late))) : null;
    const p99s = steady.map((w) => w.p99Ms).sort((a, b) => a - b);
    return {
      seconds: options.seconds,
      maxRatePerSecond: maxRate,
      ratePerSecond: rate,
      commands: latencies.length,
      errors,
      errorSamples,
      deliveries: received.reduce((a, b) => a + b, 0),
      deliveriesPerReceiver: received,
      windows,
      memory: {
        warmRssMiB: warm,
        endRssMiB: endRss,
        growthPercent: round(((endRss - warm) / warm) * 100),
        warmHeapMiB: warmHeap,
        endHeapMiB: endHeap,
        heapGrowthPercent:
          warmHeap !== null && endHeap !== null ? round(((endHeap - warmHeap) / warmHeap) * 100) : null,
      },
      latency: {
        medianWindowP99Ms: p99s[Math.floor(p99s.length / 2)] ?? 0,
        worstWindowP99Ms: p99s[p99s.length - 1] ?? 0,
        overallP99Ms: percentile(latencies, 99),
        earlyP99Ms: percentile(
          early.map((w) => w.p99Ms),
          50,
        ),
        lateP99Ms: percentile(
          late.map((w) => w.p99Ms),
          50,
        ),
      },
    };
  } finally {
    await service?.stop().catch(() => {});
    for (const server of receivers) await new Promise((resolve) => server.close(resolve));
    await store.dispose();
  }
}

function closeWindow(index: number, latencies: number[], rss: number): SoakWindow {
  return {
    second: Math.round(((index + 1) * WINDOW_MS) / 1000),
    commands: latencies.length,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    rssMiB: rss,
    heapUsedMiB: null,
  };
}

/** Fills the window's heap figure from /metrics when the answer comes; a miss leaves it null. */
function sampleHeap(service: { url: string }, window: SoakWindow): void {
  fetch(`${service.url}/metrics`)
    .then((res) => res.text())
    .then((text) => {
      const bytes = Number(/^muster_nodejs_heap_size_used_bytes (\S+)$/m.exec(text)?.[1]);
      if (Number.isFinite(bytes)) window.heapUsedMiB = round(bytes / 2 ** 20);
    })
    .catch(() => {});
}

function rssMiB(service: ServiceProcess): number {
  const status = readFileSync(`/proc/${service.child.pid}/status`, 'utf8');
  const kib = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0);
  return round(kib / 1024);
}

function percentile(values: number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return round(sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number);
}

const round = (n: number) => Math.round(n * 10) / 10;
