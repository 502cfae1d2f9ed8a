/**
 * Token buckets per API key (and per client address for failed authentication), in memory.
 * A bucket holds up to ten seconds' worth of requests, so short bursts pass and sustained excess
 * is answered with 429 and the seconds until the next request would be let through.
 */
export interface RateDecision {
  allowed: boolean;
  limit: number;
  remaining: number;
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
    if (!this.enabled) return { allowed: true, limit: 0, remaining: 0, retryAfterSeconds: 0 };
    const now = this.clock();
    let bucket = this.buckets.get(key);
    if (!bucket) {
      bucket = { tokens: this.capacity, updatedAt: now };
      this.buckets.set(key, bucket);
      if (this.buckets.size > this.maxBuckets) this.prune(now);
    }
    bucket.tokens = Math.min(this.capacity, bucket.tokens + (now - bucket.updatedAt) * this.perMs);
    bucket.updatedAt = now;
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return {
        allowed: true,
        limit: this.perMinute,
        remaining: Math.floor(bucket.tokens),
        retryAfterSeconds: 0,
      };
    }
    const retryAfterSeconds = Math.max(1, Math.ceil((1 - bucket.tokens) / this.perMs / 1000));
    return { allowed: false, limit: this.perMinute, remaining: 0, retryAfterSeconds };
  }

  /** Drops buckets that have refilled completely: they hold no information. */
  private prune(now: number): void {
    for (const [key, bucket] of this.buckets) {
      if (bucket.tokens + (now - bucket.updatedAt) * this.perMs >= this.capacity) this.buckets.delete(key);
    }
  }
}
