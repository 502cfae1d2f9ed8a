/**
 * The retry schedule of the Standard Webhooks specification: the first attempt at once, then
 * 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h and 24 h after each failure (10 attempts over
 * about 75.6 hours), each delay with ±20% jitter.
 */
export const DEFAULT_RETRY_SCHEDULE_MS: readonly number[] = Object.freeze(
  [5, 300, 1800, 7200, 18_000, 36_000, 50_400, 72_000, 86_400].map((s) => s * 1000),
);

/** Receivers that say "slow down" (429, 502, 504) or time out wait at least this long. */
export const THROTTLE_FLOOR_MS = 60_000;
export const JITTER = 0.2;

export interface RetryInput {
  /** Attempts made so far, including the one that just failed (1 after the first). */
  attempts: number;
  /** The HTTP status of the failure, when there was a response. */
  status: number | null;
  timedOut: boolean;
  /** The delay a `Retry-After` header asked for, in ms, when there was one. */
  retryAfterMs: number | null;
}

/**
 * The delay before the next attempt, or null when the schedule is exhausted. A `Retry-After`
 * is honoured but clamped to [base, 2×base] (as Svix does), so a receiver can slow us down but
 * neither speed us up nor stall us forever. `random` returns [0, 1); 0.5 means no jitter.
 */
export function nextRetryDelay(
  input: RetryInput,
  schedule: readonly number[] = DEFAULT_RETRY_SCHEDULE_MS,
  random: () => number = Math.random,
): number | null {
  const base = schedule[input.attempts - 1];
  if (base === undefined) return null;
  const throttled = input.timedOut || input.status === 429 || input.status === 502 || input.status === 504;
  let delay = throttled ? Math.max(base, THROTTLE_FLOOR_MS) : base;
  if (input.retryAfterMs !== null) delay = Math.min(Math.max(input.retryAfterMs, delay), 2 * delay);
  delay = Math.round(delay * (1 + JITTER * (2 * random() - 1)));
  return throttled ? Math.max(delay, THROTTLE_FLOOR_MS) : delay;
}

/** `Retry-After`: delta seconds, or an HTTP date relative to `now`. Null when absent or unreadable. */
export function parseRetryAfter(value: string | string[] | undefined, now: number): number | null {
  const text = (Array.isArray(value) ? value[0] : value)?.trim();
  if (!text) return null;
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  if (Number.isNaN(at)) return null;
  return Math.max(0, at - now);
}
