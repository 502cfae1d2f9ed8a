import { describe, expect, it } from 'vitest';
import { parseCommand } from './commands.js';
import { decide, decideParsed } from './decide.js';
import { DomainError } from './errors.js';
import { evaluate, nextChangeAt } from './evaluate.js';
import type { MissionEvent } from './events.js';
import { mssHaitiScenario } from './scenario.js';
import { evolve, initialState, type MissionState } from './state.js';

function replay(): { state: MissionState; events: MissionEvent[] } {
  let state = initialState();
  const events: MissionEvent[] = [];
  for (const step of mssHaitiScenario.steps) {
    try {
      const produced = decide(step.command, state);
      for (const event of produced) {
        state = evolve(state, event);
        events.push(event);
      }
    } catch (error) {
      if (!(error instanceof DomainError) || step.expected.error === null) {
        throw error;
      }
    }
  }
  return { state, events };
}

describe('the MSS Haiti scenario', () => {
  it('replays to the expected verdict after every step', () => {
    let state = initialState();
    for (const [index, step] of mssHaitiScenario.steps.entries()) {
      let error: string | null = null;
      try {
        for (const event of decide(step.command, state)) {
          state = evolve(state, event);
        }
      } catch (caught) {
        if (!(caught instanceof DomainError)) {
          throw caught;
        }
        error = caught.code;
      }
      const verdict = evaluate(state, step.expected.at);
      const actual = {
        step: index + 1,
        error,
        phases: verdict.phases.map((phase) => ({
          phase: phase.phase,
          status: phase.status,
          unmet: phase.preconditions.filter((p) => !p.met).map((p) => p.id),
        })),
      };
      expect(actual, step.title).toEqual({
        step: index + 1,
        error: step.expected.error,
        phases: step.expected.phases,
      });
    }
  });

  it('ends with the main deployment ready until the UN mandate expires', () => {
    const { state } = replay();
    const last = mssHaitiScenario.steps.at(-1)!;
    expect(nextChangeAt(state, last.expected.at)).toBe('2024-10-02T20:00:00.000Z');
    const after = evaluate(state, '2024-10-02T20:00:00.000Z');
    const main = after.phases.find((phase) => phase.phase === 'main-deployment')!;
    expect(main.status).toBe('not-ready');
    expect(main.preconditions.find((p) => p.id === 'un-backing')).toMatchObject({
      met: false,
      missing: 'mandate S/RES/2699 (2023) expired at 2024-10-02T20:00:00.000Z',
    });
    expect(nextChangeAt(state, '2024-10-02T20:00:00.000Z')).toBeNull();
  });

  it('decides the same with decideParsed on parsed commands: events, refusals and final state', () => {
    const outcome = (run: () => MissionEvent[]) => {
      try {
        return { events: run() };
      } catch (error) {
        if (!(error instanceof DomainError)) throw error;
        return { refused: error.code };
      }
    };
    let state = initialState();
    let refusals = 0;
    for (const step of mssHaitiScenario.steps) {
      const expected = outcome(() => decide(step.command, state));
      const actual = outcome(() => decideParsed(parseCommand(step.command), state));
      expect(actual, step.title).toEqual(expected);
      if ('refused' in expected) refusals++;
      for (const event of expected.events ?? []) state = evolve(state, event);
    }
    expect(refusals).toBeGreaterThan(0);
    expect(state).toEqual(replay().state);
  });
});
