/**
 * Token buckets per API key (and per client address for failed authentication), in memory.
 * A bucket holds up to ten seconds' worth of requests, so short bursts pass and sustained excess
 * is answered with 429 and the seconds until the next request would be let through.
 */
export interface RateDecision {
  allowed: boolean;
  /** The bucket's size: requests that may pass at once (0 when limits are off). */
  limit: number;
  /** Requests that may pass now. */
  remaining: number;
  /** Seconds until the bucket is full again. */
  resetSeconds: number;
  /** Seconds the bucket takes to refill from empty: the window `limit` is counted over. */
  windowSeconds: number;
  /** Seconds until a request would be let through (0 when allowed). */
  retryAfterSeconds: number;
}

interface Bucket {
  tokens: number;
  updatedAt: number;
}

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly perMs: number;
  private readonly capacity: number;

  constructor(
    private readonly perMinute: number,
    private readonly clock: () => number = Date.now,
    private readonly maxBuckets = 100_000,
  ) {
    this.perMs = perMinute / 60_000;
    this.capacity = Math.max(1, Math.ceil(perMinute / 6));
  }

  get enabled(): boolean {
    return this.perMinute > 0;
  }

  take(key: string): RateDecision {
    if (!this.enabled) {
      return {
        allowed: true,
        limit: 0,
        remaining: 0,
        resetSeconds: 0,
        windowSeconds: 0,
        retryAfterSeconds: 0,
      };
    }
    const now = this.clock();
    let bucket = this.buckets.get(key);
    if (!bucket) {
      bucket = { tokens: this.capacity, updatedAt: now };
      this.buckets.set(key, bucket);
      if (this.buckets.size > this.maxBuckets) this.prune(now);
    }
    bucket.tokens = Math.min(this.capacity, bucket.tokens + (now - bucket.updatedAt) * this.perMs);
    bucket.updatedAt = now;
    // The headers describe the bucket as it is, so that a client pacing itself by them is never
    // refused: the limit is the burst a full bucket lets through, not the per-minute rate.
    const state = () => ({
      limit: this.capacity,
      remaining: Math.floor(bucket.tokens),
      resetSeconds: Math.ceil((this.capacity - bucket.tokens) / this.perMs / 1000),
      windowSeconds: Math.ceil(this.capacity / this.perMs / 1000),
    });
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return { allowed: true, ...state(), retryAfterSeconds: 0 };
    }
    const retryAfterSeconds = Math.max(1, Math.ceil((1 - bucket.tokens) / this.perMs / 1000));
    return { allowed: false, ...state(), retryAfterSeconds };
  }

  /** Drops buckets that have refilled completely: they hold no information. */
  private prune(now: number): void {
    for (const [key, bucket] of this.buckets) {
      if (bucket.tokens + (now - bucket.updatedAt) * this.perMs >= this.capacity) this.buckets.delete(key);
    }
  }
}
