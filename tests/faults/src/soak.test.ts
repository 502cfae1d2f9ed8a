import { describe, expect, it } from 'vitest';
import { soak } from './soak.js';

describe('soak (CI-sized: two minutes, the first one warm-up; the script runs ten)', () => {
  it('holds half its maximum rate with webhook receivers: no error, flat memory, stable latency', async () => {
    const report = await soak({
      seconds: 120,
      warmupSeconds: 60,
      probeSeconds: 4,
      missions: 30,
      missionLifetime: 100,
    });
    process.stderr.write(`[soak] ${JSON.stringify({ ...report, windows: undefined })}\n`);
    expect(report.errorSamples).toEqual([]);
    expect(report.errors).toBe(0);
    expect(report.commands).toBeGreaterThan(60);
    expect(report.deliveries).toBeGreaterThan(0);
    expect(report.memory.growthPercent).toBeLessThan(10);
    expect(report.latency.lateP99Ms).toBeLessThanOrEqual(Math.max(2 * report.latency.earlyP99Ms, 50));
  });
});
