/**
 * Wake-ups for sleeps: `wake()` ends every sleep in progress. Each sleep registers itself and
 * removes itself when it ends, rather than hanging a reaction on a shared promise, because a
 * reaction stays on a promise until that promise settles: a worker that sleeps thousands of times
 * between two wake-ups would keep every one of those sleeps (its timer, its closure) alive.
 */
export class Wakeups {
  private readonly sleepers = new Set<() => void>();

  wake(): void {
    const sleepers = [...this.sleepers];
    this.sleepers.clear();
    for (const finish of sleepers) finish();
  }

  /** A sleep that ends after `ms` or at the next wake-up; `cancel` ends it now. */
  sleep(ms: number): { promise: Promise<void>; cancel(): void } {
    let timer: NodeJS.Timeout | undefined;
    let finish!: () => void;
    const promise = new Promise<void>((resolve) => {
      finish = () => {
        clearTimeout(timer);
        this.sleepers.delete(finish);
        resolve();
      };
    });
    timer = setTimeout(finish, Math.max(0, ms));
    this.sleepers.add(finish);
    return { promise, cancel: finish };
  }

  /** How many sleeps are in progress (tests look at it to show nothing accumulates). */
  get sleeping(): number {
    return this.sleepers.size;
  }
}
