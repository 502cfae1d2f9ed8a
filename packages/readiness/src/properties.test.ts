import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { MissionCommand } from './commands.js';
import { diffVerdicts, verdictChanged } from './diff.js';
import { evaluate, type MissionVerdict, nextChangeAt } from './evaluate.js';
import { fromStoredEvent, toStoredEvent } from './events.js';
import { mapEntries, mapValues } from './pmap.js';
import { vecLast } from './pvec.js';
import { deserializeState, evolve, fold, serializeState } from './state.js';
import { evaluationInstantArb, historyArb, instantArb, run } from './test-support/arbitraries.js';
import { MISSION } from './test-support/spec.js';
import type { PhaseStatus } from './vocabulary.js';

const RANK: Record<PhaseStatus, number> = { blocked: 0, 'not-ready': 1, ready: 2 };

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) {
      deepFreeze(child);
    }
  }
  return value;
}

describe('properties', () => {
  it('evaluation is deterministic: the same events give the same bytes, through the store and snapshots too', () => {
    fc.assert(
      fc.property(
        historyArb,
        fc.array(evaluationInstantArb, { minLength: 1, maxLength: 4 }),
        ({ events }, instants) => {
          const state = fold(events);
          const again = fold(JSON.parse(JSON.stringify(events.map(toStoredEvent))).map(fromStoredEvent));
          const restored = deserializeState(serializeState(state));
          expect(serializeState(again)).toBe(serializeState(state));
          for (const at of instants) {
            const verdict = JSON.stringify(evaluate(state, at));
            expect(JSON.stringify(evaluate(state, at))).toBe(verdict);
            expect(JSON.stringify(evaluate(again, at))).toBe(verdict);
            expect(JSON.stringify(evaluate(restored, at))).toBe(verdict);
          }
        },
      ),
    );
  });

  it('a verdict at t depends only on the events that occurred at or before t', () => {
    fc.assert(
      fc.property(
        historyArb,
        fc.array(evaluationInstantArb, { minLength: 1, maxLength: 4 }),
        ({ events, state }, instants) => {
          for (const at of instants) {
            const t = Date.parse(at);
            const known = events.filter((event) => Date.parse(event.occurredAt) <= t);
            expect(JSON.stringify(evaluate(fold(known), at))).toBe(JSON.stringify(evaluate(state, at)));
          }
        },
      ),
    );
  });

  it('withdrawing a pledge never makes a phase, or a precondition, more ready', () => {
    fc.assert(
      fc.property(
        historyArb,
        fc.nat(),
        instantArb,
        fc.array(evaluationInstantArb, { minLength: 1, maxLength: 4 }),
        (history, pick, withdrawnAt, instants) => {
          const open = mapValues(history.state.pledges).filter(
            (pledge) => pledge.status === 'pledged' || pledge.status === 'confirmed',
          );
          fc.pre(open.length > 0);
          const pledge = open[pick % open.length]!;
          const withdraw = {
            type: 'WithdrawPledge',
            commandId: 'withdraw',
            missionId: MISSION,
            occurredAt: withdrawnAt,
            pledgeId: pledge.pledgeId,
            reason: 'r',
          } as MissionCommand;
          const after = run([withdraw], history);
          expect(after.events.length).toBe(history.events.length + 1);
          for (const at of instants) {
            const before = evaluate(history.state, at);
            const now = evaluate(after.state, at);
            now.phases.forEach((phase, i) => {
              const old = before.phases[i]!;
              expect(RANK[phase.status]).toBeLessThanOrEqual(RANK[old.status]);
              phase.preconditions.forEach((precondition, j) => {
                if (precondition.met) {
                  expect(old.preconditions[j]!.met).toBe(true);
                }
              });
            });
          }
        },
      ),
    );
  });

  it('evolve never changes the state it is given (deep clone and deep freeze)', () => {
    fc.assert(
      fc.property(historyArb, fc.nat(), ({ events }, cut) => {
        const split = 1 + (cut % events.length);
        const prefix = fold(events.slice(0, split));
        const clone = structuredClone(prefix);
        const bytes = serializeState(prefix);
        const verdict = JSON.stringify(evaluate(prefix, '2024-03-10T00:00:00Z'));
        deepFreeze(prefix);
        let state = prefix;
        for (const event of events.slice(split)) {
          state = evolve(state, event);
        }
        // A second branch from the same prefix must not see the first.
        fold(events.slice(split).reverse(), prefix);
        expect(prefix).toEqual(clone);
        expect(serializeState(prefix)).toBe(bytes);
        expect(JSON.stringify(evaluate(prefix, '2024-03-10T00:00:00Z'))).toBe(verdict);
        expect(serializeState(state)).toBe(serializeState(fold(events)));
      }),
    );
  });

  it('nextChangeAt: the verdict does not change between an instant and the next change', () => {
    const phasesOf = (verdict: MissionVerdict) => JSON.stringify({ ...verdict, at: null });
    fc.assert(
      fc.property(
        historyArb,
        evaluationInstantArb,
        fc.double({ min: 0, max: 1, noNaN: true }),
        ({ state }, at, fraction) => {
          const next = nextChangeAt(state, at);
          const t = Date.parse(at);
          const end = next === null ? t + 400 * 24 * 3_600_000 : Date.parse(next);
          expect(end).toBeGreaterThan(t);
          const probe = new Date(t + Math.floor((end - 1 - t) * fraction)).toISOString();
          const before = evaluate(state, at);
          expect(phasesOf(evaluate(state, probe))).toBe(phasesOf(before));
          expect(verdictChanged(before, evaluate(state, probe))).toBe(false);
        },
      ),
    );
  });

  it('what decide believes of a blocker, the council or an approval is what the verdict shows from its latest change on', () => {
    // decide checks `current` (the last change recorded); evaluate reads the timeline by date.
    const guarded = new Set(['council-approved', 'cabinet-approved', 'parliament-approved']);
    fc.assert(
      fc.property(historyArb, ({ state }) => {
        const switches = [
          ...mapEntries(state.facts).filter(([name]) => guarded.has(name)),
          ...mapEntries(state.blockers),
        ];
        for (const [name, subjects] of switches) {
          for (const [subject, record] of mapEntries(subjects)) {
            expect({ name, subject, on: vecLast(record.points)?.on }).toEqual({
              name,
              subject,
              on: record.current,
            });
          }
        }
      }),
    );
  });

  it('diffVerdicts reports a change exactly when a status or a met flag differs', () => {
    fc.assert(
      fc.property(historyArb, evaluationInstantArb, evaluationInstantArb, ({ state }, a, b) => {
        const va = evaluate(state, a);
        const vb = evaluate(state, b);
        const diff = diffVerdicts(va, vb);
        const flags = (v: MissionVerdict) =>
          JSON.stringify(v.phases.map((p) => [p.phase, p.status, p.preconditions.map((c) => [c.id, c.met])]));
        expect(diff.phases.length + diff.preconditions.length > 0).toBe(flags(va) !== flags(vb));
        expect(verdictChanged(va, va)).toBe(false);
      }),
    );
  });
});
