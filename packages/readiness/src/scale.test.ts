import { describe, expect, it } from 'vitest';
import { evaluate } from './evaluate.js';
import { fold } from './state.js';
import { syntheticMission } from './test-support/synthetic.js';

// Correctness at scale only: speed is measured by `pnpm --filter @muster/readiness bench`.
describe('a mission stream of 100,000 events', () => {
  it('folds to the totals a straightforward model computes, with 1% of events backdated', () => {
    const { events, expected, end } = syntheticMission(100_000);
    expect(events).toHaveLength(100_000);
    const state = fold(events);
    expect(state.eventCount).toBe(100_000);
    const main = evaluate(state, end).phases.find((phase) => phase.phase === 'main-deployment')!;
    const officers = main.preconditions.find((p) => p.id === 'officers-ready')!;
    const funding = main.preconditions.find((p) => p.id === 'financial-support')!;
    const group = (n: number) => n.toLocaleString('en-US');
    const officersMet = expected.officersReady >= 1000;
    expect(officers).toMatchObject({
      met: officersMet,
      missing: officersMet ? null : `officers ready ${group(expected.officersReady)} of 1,000`,
    });
    expect(officers.evidence).toHaveLength(4);
    const fundingMet = expected.confirmedFunding >= 200_000_000;
    expect(funding).toMatchObject({
      met: fundingMet,
      missing: fundingMet ? null : `confirmed funding ${group(expected.confirmedFunding)} of 200,000,000 USD`,
    });
    expect(funding.evidence.length).toBeGreaterThan(0);
    expect(funding.evidence.length).toBeLessThanOrEqual(50);
  });
});
