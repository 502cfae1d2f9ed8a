import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AsyncQueue } from './async-queue.js';

describe('AsyncQueue.takeBuffered', () => {
  it('hands items over in the order they were pushed, mixed with next() in any way', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.oneof(
            fc.record({ op: fc.constant('push' as const), n: fc.integer({ min: 1, max: 5 }) }),
            fc.record({ op: fc.constant('next' as const) }),
            fc.record({ op: fc.constant('take' as const), max: fc.integer({ min: 0, max: 6 }) }),
          ),
          { maxLength: 40 },
        ),
        async (ops) => {
          const queue = new AsyncQueue<number>(4);
          let pushed = 0;
          const got: number[] = [];
          for (const step of ops) {
            if (step.op === 'push') for (let i = 0; i < step.n; i++) queue.push(pushed++);
            else if (step.op === 'take') {
              const taken = queue.takeBuffered(step.max);
              expect(taken.length).toBeLessThanOrEqual(step.max);
              got.push(...taken);
            } else if (got.length < pushed) {
              got.push((await queue.next()).value as number);
            }
          }
          got.push(...queue.takeBuffered(Number.MAX_SAFE_INTEGER));
          expect(got).toEqual(Array.from({ length: pushed }, (_, i) => i));
          expect(queue.takeBuffered(1)).toEqual([]);
        },
      ),
    );
  });

  it('signals demand once the buffer drops below the high-water mark', async () => {
    const queue = new AsyncQueue<number>(3);
    for (let i = 0; i < 5; i++) queue.push(i);
    let demanded = false;
    const demand = queue.waitForDemand().then(() => {
      demanded = true;
    });
    expect(queue.takeBuffered(1)).toEqual([0]);
    await Promise.resolve();
    expect(demanded).toBe(false);
    expect(queue.takeBuffered(10)).toEqual([1, 2, 3, 4]);
    await demand;
    expect(demanded).toBe(true);
  });
});

describe('AsyncQueue.cancel', () => {
  it('ends the queue and drops what it holds, unlike end, which lets the consumer drain it', async () => {
    const drained = new AsyncQueue<number>(4);
    drained.push(1);
    drained.push(2);
    drained.end();
    expect(await drained.next()).toEqual({ value: 1, done: false });

    const cancelled = new AsyncQueue<number>(4);
    cancelled.push(1);
    cancelled.push(2);
    const pending = new AsyncQueue<number>(4);
    const waiting = pending.next();
    cancelled.cancel();
    pending.cancel();
    expect(await cancelled.next()).toEqual({ value: undefined, done: true });
    expect(cancelled.takeBuffered(10)).toEqual([]);
    expect(await waiting).toEqual({ value: undefined, done: true });
    cancelled.push(3);
    expect(await cancelled.next()).toEqual({ value: undefined, done: true });
  });
});
