import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DEFAULT_RETRY_SCHEDULE_MS, nextRetryDelay, parseRetryAfter } from './retry.js';

const noJitter = () => 0.5;
const failure = (attempts: number, extra: Partial<Parameters<typeof nextRetryDelay>[0]> = {}) => ({
  attempts,
  status: 500,
  timedOut: false,
  retryAfterMs: null,
  ...extra,
});

describe('retry schedule', () => {
  it('follows the specification: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h, then gives up', () => {
    const delays = Array.from({ length: 10 }, (_, i) => nextRetryDelay(failure(i + 1), undefined, noJitter));
    expect(delays).toEqual([
      ...[5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400].map((s) => s * 1000),
      null,
    ]);
    const total = DEFAULT_RETRY_SCHEDULE_MS.reduce((a, b) => a + b, 0);
    expect(total / 1000).toBe(75 * 3600 + 35 * 60 + 5);
  });

  it('jitters every delay by at most ±20% (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 9 }),
        fc.double({ min: 0, max: 0.999999, noNaN: true }),
        (n, r) => {
          const base = DEFAULT_RETRY_SCHEDULE_MS[n - 1] as number;
          const delay = nextRetryDelay(failure(n), undefined, () => r) as number;
          expect(delay).toBeGreaterThanOrEqual(Math.floor(base * 0.8));
          expect(delay).toBeLessThanOrEqual(Math.ceil(base * 1.2));
        },
      ),
    );
  });

  it('waits at least 60 s after 429, 502, 504 and timeouts, jitter included', () => {
    for (const extra of [
      { status: 429 },
      { status: 502 },
      { status: 504 },
      { status: null, timedOut: true },
    ]) {
      expect(nextRetryDelay(failure(1, extra), undefined, () => 0)).toBe(60_000);
      expect(nextRetryDelay(failure(1, extra), undefined, noJitter)).toBe(60_000);
    }
    expect(nextRetryDelay(failure(1, { status: 503 }), undefined, noJitter)).toBe(5_000);
  });

  it('honours Retry-After within [base, 2×base]', () => {
    // After the 3rd failure the base is 30 min.
    expect(nextRetryDelay(failure(3, { retryAfterMs: 3_600_000 }), undefined, noJitter)).toBe(3_600_000);
    expect(nextRetryDelay(failure(3, { retryAfterMs: 10 * 3_600_000 }), undefined, noJitter)).toBe(3_600_000);
    expect(nextRetryDelay(failure(3, { retryAfterMs: 1_000 }), undefined, noJitter)).toBe(1_800_000);
    // 429 with Retry-After: 100 s after the first failure: base 60 s, clamp [60, 120] s.
    expect(nextRetryDelay(failure(1, { status: 429, retryAfterMs: 100_000 }), undefined, noJitter)).toBe(
      100_000,
    );
    expect(nextRetryDelay(failure(1, { status: 429, retryAfterMs: 999_000 }), undefined, noJitter)).toBe(
      120_000,
    );
  });

  it('reads Retry-After as seconds or an HTTP date', () => {
    const now = Date.parse('2025-03-01T00:00:00Z');
    expect(parseRetryAfter('120', now)).toBe(120_000);
    expect(parseRetryAfter('Sat, 01 Mar 2025 00:10:00 GMT', now)).toBe(600_000);
    expect(parseRetryAfter('Fri, 28 Feb 2025 00:00:00 GMT', now)).toBe(0);
    expect(parseRetryAfter('soon', now)).toBeNull();
    expect(parseRetryAfter(undefined, now)).toBeNull();
  });
});
