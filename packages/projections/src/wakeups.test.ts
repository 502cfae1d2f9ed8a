import { describe, expect, it } from 'vitest';
import { Wakeups } from './wakeups.js';

describe('wake-ups', () => {
  it('ends every sleep in progress on wake, and only those', async () => {
    const wakeups = new Wakeups();
    const ended: number[] = [];
    const sleeps = [1, 2, 3].map((n) => wakeups.sleep(60_000).promise.then(() => ended.push(n)));
    expect(wakeups.sleeping).toBe(3);
    wakeups.wake();
    await Promise.all(sleeps);
    expect(ended).toEqual([1, 2, 3]);
    const later = wakeups.sleep(20);
    expect(wakeups.sleeping).toBe(1);
    const t0 = performance.now();
    await later.promise;
    expect(performance.now() - t0).toBeGreaterThanOrEqual(15);
  });

  it('keeps nothing of a sleep once it has ended, however it ended', async () => {
    const wakeups = new Wakeups();
    for (let i = 0; i < 10_000; i++) {
      const sleep = wakeups.sleep(60_000);
      sleep.cancel();
      await sleep.promise;
    }
    await Promise.all(Array.from({ length: 100 }, () => wakeups.sleep(1).promise));
    expect(wakeups.sleeping).toBe(0);
  });
});
