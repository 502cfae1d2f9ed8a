import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { MAX_HEAP_GROWTH_PERCENT, setHeapGrowthPercent } from './heap-growth.js';

const MODULE = fileURLToPath(new URL('./heap-growth.ts', import.meta.url));

/**
 * A fold-like workload in a fresh process: a live set of objects replaced round after round, so
 * that each generation of them is promoted before it dies. Prints the full collections it took.
 */
const WORKLOAD = `
import { PerformanceObserver, constants } from 'node:perf_hooks';
const { setHeapGrowthPercent } = await import(process.env.HEAP_GROWTH_MODULE);
setHeapGrowthPercent(Number(process.env.HEAP_GROWTH_PERCENT));
let full = 0;
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) if (entry.detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) full++;
}).observe({ entryTypes: ['gc'] });
const ring = new Array(300_000);
for (let round = 0; round < 12; round++) {
  for (let i = 0; i < ring.length; i++) ring[i] = { index: i, round, pair: [i, round] };
}
await new Promise((resolve) => setTimeout(resolve, 50));
process.stdout.write(String(full));
`;

function fullCollections(percent: number): number {
  const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', WORKLOAD], {
    env: { PATH: process.env.PATH ?? '', HEAP_GROWTH_MODULE: MODULE, HEAP_GROWTH_PERCENT: String(percent) },
    encoding: 'utf8',
  });
  return Number(out);
}

describe('setHeapGrowthPercent', () => {
  it('makes V8 collect the old generation more often than its own policy does', () => {
    const own = fullCollections(0);
    const tight = fullCollections(20);
    expect(tight).toBeGreaterThan(2 * Math.max(1, own));
  });

  it('refuses a value that is not an integer from 0 to the maximum', () => {
    for (const bad of [-1, 1.5, Number.NaN, MAX_HEAP_GROWTH_PERCENT + 1]) {
      expect(() => setHeapGrowthPercent(bad)).toThrow(RangeError);
    }
  });
});
