import { bench, describe } from 'vitest';
import { evaluate } from './evaluate.js';
import { fold } from './state.js';
import { syntheticMission } from './test-support/synthetic.js';

// Figures, not pass/fail: a copy of the events into a plain array is the baseline.
const chronological = syntheticMission(100_000, 0);
const backdated = syntheticMission(100_000, 0.01);
const folded = fold(backdated.events);

describe('fold 100,000 events', () => {
  bench('baseline: copy the events', () => {
    const copy: unknown[] = [];
    for (const event of chronological.events) {
      copy.push(event);
    }
  });
  bench('fold, chronological', () => {
    fold(chronological.events);
  });
  bench('fold, 1% backdated', () => {
    fold(backdated.events);
  });
});

describe('evaluate after 100,000 events', () => {
  bench('evaluate at the end', () => {
    evaluate(folded, backdated.end);
  });
});
