import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RateLimiter } from './rate-limit.js';

describe('RateLimiter', () => {
  it('lets a burst of a sixth of the minute through, then refuses with the wait', () => {
    let now = 0;
    const limiter = new RateLimiter(60, () => now);
    const burst = Array.from({ length: 10 }, () => limiter.take('k'));
    expect(burst.every((d) => d.allowed)).toBe(true);
    const refused = limiter.take('k');
    expect(refused).toMatchObject({ allowed: false, retryAfterSeconds: 1 });
    now += 1000;
    expect(limiter.take('k').allowed).toBe(true);
    expect(limiter.take('other').allowed).toBe(true);
  });

  it('never lets more through than the rate plus one burst, whatever the timing', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 6, max: 600 }),
        fc.array(fc.integer({ min: 0, max: 2000 }), { maxLength: 300 }),
        (perMinute, gaps) => {
          let now = 0;
          const limiter = new RateLimiter(perMinute, () => now);
          let allowed = 0;
          for (const gap of gaps) {
            now += gap;
            if (limiter.take('k').allowed) allowed++;
          }
          expect(allowed).toBeLessThanOrEqual(
            Math.ceil(perMinute / 6) + Math.floor((now * perMinute) / 60_000) + 1,
          );
        },
      ),
    );
  });

  it('tells the truth in its figures: a client that waits while remaining is 0 is never refused', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 6, max: 6000 }),
        fc.array(fc.integer({ min: 0, max: 3000 }), { maxLength: 200 }),
        (perMinute, gaps) => {
          let now = 0;
          const limiter = new RateLimiter(perMinute, () => now);
          let last = limiter.take('k');
          expect(last.limit).toBe(Math.ceil(perMinute / 6));
          expect(last.remaining).toBe(last.limit - 1);
          for (const gap of gaps) {
            now += gap;
            // Pacing by the headers: with nothing remaining, wait out Retry-After first.
            if (last.remaining === 0) now += 1000 * Math.max(1, Math.ceil(60 / perMinute));
            last = limiter.take('k');
            expect(last.allowed).toBe(true);
            expect(last.remaining).toBeLessThanOrEqual(last.limit);
            expect(last.resetSeconds).toBeLessThanOrEqual(last.windowSeconds);
          }
        },
      ),
    );
  });

  it('is off at zero', () => {
    const limiter = new RateLimiter(0);
    for (let i = 0; i < 1000; i++) expect(limiter.take('k').allowed).toBe(true);
  });
});
