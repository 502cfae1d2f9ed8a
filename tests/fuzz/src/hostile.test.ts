import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { check, emptyTally, type FuzzTarget, hostileRequests, startTarget } from './hostile.js';

describe('hostile input against every route', () => {
  let target: FuzzTarget;
  beforeAll(async () => {
    target = await startTarget();
  });
  afterAll(() => target.close());

  it('never answers 5xx, always a problem body for 4xx, never writes on refusal, and stays up', async () => {
    const tally = emptyTally();
    await fc.assert(
      fc.asyncProperty(hostileRequests(target), async (request) => {
        const broken = await check(target, request, tally);
        if (broken) throw new Error(`${broken}: ${request.method} ${request.url}`);
      }),
      {
        numRuns: Number(process.env.MUSTER_FUZZ_RUNS ?? 3000),
        seed: Number(process.env.MUSTER_FUZZ_SEED ?? Date.now() % 2 ** 31),
      },
    );
    expect(tally.violations).toEqual([]);
    expect(tally.requests).toBeGreaterThan(0);
    // Every class of refusal was exercised, not only one.
    expect(Object.keys(tally.byStatus).filter((s) => s.startsWith('4')).length).toBeGreaterThan(4);
    const live = await target.app.inject({ method: 'GET', url: '/health/live' });
    expect(live.statusCode).toBe(200);
  });
});
