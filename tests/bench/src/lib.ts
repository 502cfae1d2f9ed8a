import { parseArgs } from 'node:util';

/** Shared helpers for benchmarks: options, latency percentiles, memory sampling, JSON output. */

export function options<T extends Record<string, { type: 'string' | 'boolean'; default?: string | boolean }>>(
  spec: T,
) {
  return parseArgs({ options: spec, allowPositionals: false, strict: true }).values as unknown as {
    [K in keyof T]: T[K]['type'] extends 'boolean' ? boolean : string;
  };
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index] as number;
}

export function latencySummary(samplesMs: number[]) {
  const sorted = [...samplesMs].sort((a, b) => a - b);
  return {
    p50Ms: round(percentile(sorted, 50)),
    p99Ms: round(percentile(sorted, 99)),
    maxMs: round(sorted[sorted.length - 1] ?? Number.NaN),
  };
}

export const round = (n: number, digits = 2) => Math.round(n * 10 ** digits) / 10 ** digits;

/** Samples RSS every few milliseconds; `stop()` returns the peak in MiB. */
export function memorySampler(intervalMs = 20) {
  let peak = process.memoryUsage().rss;
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, intervalMs);
  return {
    stop(): number {
      clearInterval(timer);
      peak = Math.max(peak, process.memoryUsage().rss);
      return round(peak / 1024 / 1024, 1);
    },
  };
}

export function print(result: unknown): void {
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
}

export function log(message: string): void {
  process.stderr.write(`[bench] ${message}\n`);
}

/** Runs `producers` loops for `seconds`, each awaiting `op` back to back; returns rate and latencies. */
export async function closedLoop(
  producers: number,
  seconds: number,
  op: (producer: number, i: number) => Promise<unknown>,
): Promise<{ ops: number; perSecond: number; latency: ReturnType<typeof latencySummary> }> {
  const deadline = performance.now() + seconds * 1000;
  const latencies: number[] = [];
  let ops = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: producers }, async (_, p) => {
      for (let i = 0; performance.now() < deadline; i++) {
        const t0 = performance.now();
        await op(p, i);
        latencies.push(performance.now() - t0);
        ops++;
      }
    }),
  );
  const elapsed = (performance.now() - start) / 1000;
  return { ops, perSecond: round(ops / elapsed, 0), latency: latencySummary(latencies) };
}
