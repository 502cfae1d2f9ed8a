import { setFlagsFromString } from 'node:v8';

/**
 * The heap growth a service process runs with: after each full collection, V8 lets the old
 * generation grow to this much more than what survived it before collecting again.
 */
export const DEFAULT_HEAP_GROWTH_PERCENT = 50;
export const MAX_HEAP_GROWTH_PERCENT = 400;

/**
 * Sets V8's heap growth for the rest of the process (0: V8's own policy, which lets the old
 * generation reach up to four times its live size when collections are cheap). A catch-up or a
 * rebuild folds many events whose intermediate states outlive a young-generation cycle, so its
 * garbage is promoted and, under V8's policy, left to pile up: the 1M-event replay benchmark,
 * with 75-100 MiB live, peaked at 560-1,130 MiB RSS, and at 363-369 MiB with 50% at the same
 * speed (the CLI's rebuild alone: 475-485 against 328-342 MiB; docs/decisions.md, 30). Call it at
 * start, before the heap has grown.
 */
export function setHeapGrowthPercent(percent: number): void {
  if (!Number.isInteger(percent) || percent < 0 || percent > MAX_HEAP_GROWTH_PERCENT) {
    throw new RangeError(
      `heap growth must be an integer from 0 to ${MAX_HEAP_GROWTH_PERCENT}, not ${percent}`,
    );
  }
  if (percent > 0) setFlagsFromString(`--heap-growing-percent=${percent}`);
}
