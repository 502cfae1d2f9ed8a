import { describe, expect, it } from 'vitest';
import { soak } from './soak.js';

describe('soak (CI-sized: one minute; the script runs ten)', () => {
  it('holds half its maximum rate with webhook receivers: no error, flat memory, stable latency', async () => {
    const report = await soak({ seconds: 60, probeSeconds: 4, missions: 30 });
    expect(report.errorSamples).toEqual([]);
    expect(report.errors).toBe(0);
    expect(report.commands).toBeGreaterThan(60);
    expect(report.deliveries).toBeGreaterThan(0);
    expect(report.memory.growthPercent).toBeLessThan(10);
    expect(report.latency.lateP99Ms).toBeLessThanOrEqual(Math.max(2 * report.latency.earlyP99Ms, 50));
  });
});
