import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DomainError } from './errors.js';
import { evaluate, type MissionVerdict, nextChangeAfter, nextChangeAt } from './evaluate.js';
import { eventInstants, evolve, initialState, type MissionState } from './state.js';
import { evaluateStatus, unmetPreconditions, type VerdictStatus } from './status.js';
import { DEFINED_AT, evaluationInstantArb, historyArb } from './test-support/arbitraries.js';
import { scenarioHistory } from './test-support/spec.js';

const HOUR = 3_600_000;

/** What a status says, from a status or from a full verdict. */
function flags(verdict: Pick<MissionVerdict, 'policyVersion' | 'phases'> | VerdictStatus): string {
  return JSON.stringify({
    policyVersion: verdict.policyVersion,
    phases: verdict.phases.map((phase) => ({
      phase: phase.phase,
      title: phase.title,
      status: phase.status,
      preconditions: phase.preconditions.map(({ id, kind, title, met }) => ({ id, kind, title, met })),
    })),
  });
}

describe('evaluateStatus', () => {
  it('says what evaluate says about statuses and met flags, at any instant', () => {
    fc.assert(
      fc.property(
        historyArb,
        fc.array(evaluationInstantArb, { minLength: 1, maxLength: 6 }),
        ({ state }, instants) => {
          for (const at of instants) {
            const status = evaluateStatus(state, at);
            expect(flags(status)).toBe(flags(evaluate(state, at)));
            expect(status.at).toBe(Date.parse(at));
            expect(flags(evaluateStatus(state, Date.parse(at)))).toBe(flags(status));
          }
        },
      ),
    );
  });

  it('incrementally, event by event and with time moving on (or back), says what a fresh evaluation says', () => {
    fc.assert(
      fc.property(
        historyArb,
        fc.array(fc.integer({ min: -6, max: 30 }), { minLength: 1, maxLength: 100 }),
        ({ events }, steps) => {
          let state: MissionState = initialState();
          let previous: VerdictStatus | null = null;
          let t = DEFINED_AT;
          events.forEach((event, i) => {
            state = evolve(state, event);
            if (state.mission === null) return;
            // Mostly forwards by up to a day and a quarter, now and then backwards.
            t += (steps[i % steps.length] as number) * HOUR;
            const fresh = evaluateStatus(state, t);
            const incremental = evaluateStatus(state, t, previous);
            expect(flags(incremental)).toBe(flags(fresh));
            expect(flags(incremental)).toBe(flags(evaluate(state, new Date(t).toISOString())));
            if (previous !== null && flags(previous) === flags(fresh)) {
              expect(incremental.phases).toBe(previous.phases);
            }
            // A status of an older state, or an unrelated one, is only ever a hint.
            if (i % 7 === 0) previous = evaluateStatus(state, t + 12 * HOUR);
            else previous = incremental;
          });
        },
      ),
      { numRuns: 150 },
    );
  });

  it('reuses a precondition until the next dated point of what it reads, and no longer', () => {
    const events = scenarioHistory();
    let state: MissionState = initialState();
    for (const event of events) state = evolve(state, event);
    const start = Date.parse(events[0]?.occurredAt as string);
    let previous = evaluateStatus(state, start);
    for (let t = start; t < start + 120 * 24 * HOUR; t += 6 * HOUR) {
      const next = evaluateStatus(state, t, previous);
      expect(flags(next)).toBe(flags(evaluate(state, new Date(t).toISOString())));
      previous = next;
    }
  });

  it('lists unmet preconditions in policy order; refuses an undefined mission and a bad instant', () => {
    const state = evolve(initialState(), scenarioHistory()[0] as Parameters<typeof evolve>[1]);
    const status = evaluateStatus(state, '2024-12-01T00:00:00Z');
    for (const phase of status.phases) {
      expect(unmetPreconditions(phase)).toEqual(phase.preconditions.filter((p) => !p.met).map((p) => p.id));
    }
    expect(evaluateStatus(state, '1999-01-01T00:00:00Z')).toMatchObject({ policyVersion: null, phases: [] });
    expect(() => evaluateStatus(initialState(), 0)).toThrow(DomainError);
    expect(() => evaluateStatus(state, 'yesterday')).toThrow(DomainError);
    expect(() => evaluateStatus(state, Number.NaN)).toThrow(DomainError);
  });
});

describe('nextChangeAfter', () => {
  it('is nextChangeAt in epoch milliseconds', () => {
    fc.assert(
      fc.property(historyArb, evaluationInstantArb, ({ state }, at) => {
        const next = nextChangeAt(state, at);
        expect(nextChangeAfter(state, Date.parse(at))).toBe(next === null ? null : Date.parse(next));
      }),
    );
  });

  it('moves by exactly the instants an event adds (eventInstants)', () => {
    fc.assert(
      fc.property(
        historyArb,
        fc.array(evaluationInstantArb, { minLength: 1, maxLength: 8 }),
        ({ events }, instants) => {
          let state: MissionState = initialState();
          events.forEach((event, i) => {
            const next = evolve(state, event);
            if (state.mission !== null) {
              const t = Date.parse(instants[i % instants.length] as string);
              const before = nextChangeAfter(state, t);
              let expected = before ?? Number.POSITIVE_INFINITY;
              for (const at of eventInstants(state, event)) if (at > t && at < expected) expected = at;
              expect(nextChangeAfter(next, t)).toBe(Number.isFinite(expected) ? expected : null);
            }
            state = next;
          });
        },
      ),
      { numRuns: 200 },
    );
  });
});
