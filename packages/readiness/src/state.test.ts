import { describe, expect, it } from 'vitest';
import { evaluate } from './evaluate.js';
import type { MissionEvent } from './events.js';
import { mapGet } from './pmap.js';
import { deserializeState, eventInstants, evolve, fold, initialState, serializeState } from './state.js';
import { command, defineTestMission, history, scenarioHistory } from './test-support/spec.js';

describe('MissionState', () => {
  it('is plain JSON data that survives serialisation unchanged', () => {
    const state = fold(scenarioHistory());
    const json = serializeState(state);
    expect(json).toBe(JSON.stringify(state));
    const restored = deserializeState(json);
    expect(restored).toEqual(state);
    expect(serializeState(restored)).toBe(json);
    expect(evaluate(restored, '2024-04-30T14:00:00Z')).toEqual(evaluate(state, '2024-04-30T14:00:00Z'));
  });

  it('refuses to deserialise something that is not a state', () => {
    expect(() => deserializeState('{"format":2}')).toThrow(TypeError);
    expect(() => deserializeState('null')).toThrow(TypeError);
  });

  it('keeps counting events and a snapshot can be folded further', () => {
    const events = scenarioHistory();
    const half = Math.floor(events.length / 2);
    const resumed = fold(events.slice(half), deserializeState(serializeState(fold(events.slice(0, half)))));
    expect(serializeState(resumed)).toBe(serializeState(fold(events)));
    expect(resumed.eventCount).toBe(events.length);
  });

  it('tracks pledges through their lifecycle', () => {
    const state = fold(
      history(
        defineTestMission(),
        command('PledgeLogistics', {
          pledgeId: 'l',
          pledger: 'chile',
          capability: 'medical',
          quantity: 1,
          unit: 'beds',
        }),
        command('ConfirmPledge', { pledgeId: 'l' }, '2024-03-02T00:00:00Z'),
        command('RecordPledgeFulfilled', { pledgeId: 'l' }, '2024-03-03T00:00:00Z'),
      ),
    );
    expect(mapGet(state.pledges, 'l')).toMatchObject({
      status: 'fulfilled',
      pledger: 'chile',
      confirmedAt: Date.parse('2024-03-02T00:00:00Z'),
      fulfilledAt: Date.parse('2024-03-03T00:00:00Z'),
      contributions: [
        { pool: 'logistics:medical', start: Date.parse('2024-03-02T00:00:00Z') },
        { pool: 'logistics-fulfilled:medical', start: Date.parse('2024-03-03T00:00:00Z') },
      ],
    });
  });
});

describe('evolve', () => {
  const [defined, pledged, confirmed, fulfilled] = history(
    defineTestMission(),
    command('PledgeLogistics', {
      pledgeId: 'l',
      pledger: 'chile',
      capability: 'airlift',
      quantity: 1,
      unit: 'planes',
    }),
    command('ConfirmPledge', { pledgeId: 'l' }),
    command('RecordPledgeFulfilled', { pledgeId: 'l' }),
  ) as [MissionEvent, MissionEvent, MissionEvent, MissionEvent];

  it('ignores events that do not fit, as a partial fold (events up to an instant) produces them', () => {
    const onlyDefined = fold([defined]);
    for (const orphan of [confirmed, fulfilled]) {
      const after = evolve(onlyDefined, orphan);
      expect({ ...after, eventCount: 1 }).toEqual(onlyDefined);
      expect(after.eventCount).toBe(2);
    }
    const twice = fold([defined, pledged, pledged, confirmed, confirmed, fulfilled, fulfilled, defined]);
    expect(serializeState({ ...twice, eventCount: 4 })).toBe(
      serializeState(fold([defined, pledged, confirmed, fulfilled])),
    );
  });

  it('records a delivery without a confirmation as delivered but not counting', () => {
    const state = fold([defined, pledged, fulfilled]);
    expect(mapGet(state.pledges, 'l')).toMatchObject({ status: 'fulfilled', contributions: [] });
    expect(state.pools.size).toBe(0);
  });

  it('ignores a duplicate mandate, policy version and authorisation', () => {
    const events = history(
      defineTestMission(),
      command('RecordMandate', {
        mandateId: 'm',
        issuingBody: 'UN Security Council',
        reference: 'R',
        validFrom: '2024-03-01T00:00:00Z',
        validUntil: '2024-04-01T00:00:00Z',
      }),
      command('AmendPolicy', {
        policy: { phases: [{ id: 'x', title: 'X', preconditions: [] }] },
        reason: 'r',
      }),
      command('AuthoriseDeployment', { phase: 'x' }),
    );
    const once = fold(events);
    const again = fold(events.slice(1), once);
    expect({ ...again, eventCount: once.eventCount }).toEqual(once);
  });

  it('starts from an empty state', () => {
    expect(initialState()).toMatchObject({ format: 1, eventCount: 0, mission: null, policies: [] });
  });

  it('tells the instants a pledge event adds: its lifecycle and its withdrawal, by the latest instant so far', () => {
    const ms = (at: string) => Date.parse(at);
    const pledge = (pledgeId: string) =>
      command(
        'PledgeLogistics',
        { pledgeId, pledger: 'chile', capability: 'airlift', quantity: 1, unit: 'planes' },
        '2024-03-02T00:00:00Z',
      );
    const events = history(
      defineTestMission(),
      pledge('l'),
      command('ConfirmPledge', { pledgeId: 'l' }, '2024-03-05T00:00:00Z'),
      command('RecordPledgeFulfilled', { pledgeId: 'l' }, '2024-03-04T00:00:00Z'),
      pledge('w'),
      command('ConfirmPledge', { pledgeId: 'w' }, '2024-03-06T00:00:00Z'),
      command('WithdrawPledge', { pledgeId: 'w', reason: 'r' }, '2024-03-03T00:00:00Z'),
    );
    const states = events.map((_, i) => fold(events.slice(0, i)));
    const instantsOf = (i: number) => eventInstants(states[i]!, events[i]!);
    expect(instantsOf(1)).toEqual([]);
    expect(instantsOf(2)).toEqual([ms('2024-03-05T00:00:00Z')]);
    // Delivered before it was confirmed: it counts from the confirmation.
    expect(instantsOf(3)).toEqual([ms('2024-03-05T00:00:00Z')]);
    // Withdrawn before it began to count: the contribution ends where it began.
    expect(instantsOf(6)).toEqual([ms('2024-03-06T00:00:00Z')]);
    // Ignored events add nothing.
    const all = fold(events);
    for (const i of [0, 2, 3, 6]) expect(eventInstants(all, events[i]!)).toEqual([]);
  });
});
