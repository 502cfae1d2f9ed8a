/**
 * A push/pull queue behind an async iterator: producers push, one consumer pulls. Adapters use
 * it to turn their paging loops into subscriptions with back-pressure (the producer awaits
 * `waitForDemand` before fetching the next page).
 */
export class AsyncQueue<T> implements AsyncIterableIterator<T> {
  private readonly items: T[] = [];
  private readonly waiting: Array<{ resolve: (r: IteratorResult<T>) => void; reject: (e: unknown) => void }> =
    [];
  private demandWaiters: Array<() => void> = [];
  private ended = false;
  private failure: { error: unknown } | null = null;

  constructor(private readonly highWaterMark = 1) {}

  get closed(): boolean {
    return this.ended || this.failure !== null;
  }

  push(item: T): void {
    if (this.closed) return;
    const waiter = this.waiting.shift();
    if (waiter) waiter.resolve({ value: item, done: false });
    else this.items.push(item);
  }

  end(): void {
    if (this.closed) return;
    this.ended = true;
    this.flushWaiters();
  }

  /**
   * Ends the queue and drops what it holds: a consumer that closes its subscription wants nothing
   * more, and a page fetched before the close would otherwise still be handed out after it.
   */
  cancel(): void {
    this.items.length = 0;
    this.end();
  }

  fail(error: unknown): void {
    if (this.closed) return;
    this.failure = { error };
    this.flushWaiters();
  }

  /** Resolves when the consumer has drained the buffer below the high-water mark, or the queue closed. */
  waitForDemand(): Promise<void> {
    if (this.closed || this.items.length < this.highWaterMark) return Promise.resolve();
    return new Promise((resolve) => this.demandWaiters.push(resolve));
  }

  next(): Promise<IteratorResult<T>> {
    if (this.items.length > 0) {
      const item = this.items.shift() as T;
      this.signalDemand();
      return Promise.resolve({ value: item, done: false });
    }
    if (this.failure) return Promise.reject(this.failure.error);
    if (this.ended) return Promise.resolve({ value: undefined, done: true });
    this.signalDemand();
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
  }

  /**
   * Up to `max` items already buffered, handed over at once: what `next` would return one promise
   * (and a turn of the microtask queue) at a time. Empty when nothing is buffered.
   */
  takeBuffered(max: number): T[] {
    if (this.items.length === 0 || max <= 0) return [];
    const taken = this.items.length <= max ? this.items.splice(0) : this.items.splice(0, max);
    this.signalDemand();
    return taken;
  }

  return(): Promise<IteratorResult<T>> {
    this.cancel();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this;
  }

  private signalDemand(): void {
    if (this.items.length >= this.highWaterMark) return;
    const waiters = this.demandWaiters;
    this.demandWaiters = [];
    for (const w of waiters) w();
  }

  private flushWaiters(): void {
    for (const w of this.waiting.splice(0)) {
      if (this.failure) w.reject(this.failure.error);
      else w.resolve({ value: undefined, done: true });
    }
    this.signalDemand();
    const waiters = this.demandWaiters;
    this.demandWaiters = [];
    for (const w of waiters) w();
  }
}
