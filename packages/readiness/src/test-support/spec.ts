import { expect } from 'vitest';
import type { CommandOf, CommandType, MissionCommand } from '../commands.js';
import { decide } from '../decide.js';
import { DomainError, type DomainErrorCode } from '../errors.js';
import type { EventDataOf, EventOf, MissionEvent, MissionEventType } from '../events.js';
import { EVENT_SCHEMA_VERSIONS } from '../events.js';
import { eventIdFor } from '../ids.js';
import type { Policy } from '../policy.js';
import { mssHaitiScenario } from '../scenario.js';
import { fold, type MissionState } from '../state.js';

export const MISSION = 'test-mission';
export const T0 = '2024-03-01T00:00:00.000Z';

let counter = 0;

type Payload<T extends CommandType> = Omit<CommandOf<T>, 'type' | 'commandId' | 'missionId' | 'occurredAt'>;

/** A command of the test mission, with a fresh command id. */
export function command<T extends CommandType>(
  type: T,
  payload: Payload<T>,
  occurredAt: string = T0,
  missionId: string = MISSION,
): CommandOf<T> {
  counter += 1;
  return { type, commandId: `cmd-${counter}`, missionId, occurredAt, ...payload } as unknown as CommandOf<T>;
}

/** The event `decide` is expected to produce as the `index`-th for `cmd`. */
export function event<T extends MissionEventType>(
  cmd: MissionCommand,
  type: T,
  data: EventDataOf<T>,
  index = 0,
): EventOf<T> {
  return {
    id: eventIdFor(cmd.missionId, cmd.commandId, index),
    type,
    schemaVersion: EVENT_SCHEMA_VERSIONS[type],
    occurredAt: new Date(cmd.occurredAt).toISOString(),
    data,
  };
}

/** The events of accepted commands, decided in order: a compact way to write a history. */
export function history(...commands: MissionCommand[]): MissionEvent[] {
  const events: MissionEvent[] = [];
  let state = fold([]);
  for (const cmd of commands) {
    const produced = decide(cmd, state);
    events.push(...produced);
    state = fold(produced, state);
  }
  return events;
}

/**
 * Given events, when a command, then events or a typed error:
 *
 *   given(history(define)).when(pledge).thenEvents([event(pledge, 'LogisticsPledged', {...})]);
 *   given([]).when(pledge).thenError('mission-not-found');
 */
export function given(events: readonly MissionEvent[]) {
  const state = fold(events);
  return {
    state,
    when(cmd: MissionCommand) {
      return {
        /** Asserts the events; returns the state after them. */
        thenEvents(expected: readonly MissionEvent[]): MissionState {
          const actual = decide(cmd, state);
          expect(actual).toEqual(expected);
          return fold(actual, state);
        },
        /** Asserts the error code (and details it must contain); returns the error. */
        thenError(code: DomainErrorCode, details?: Record<string, unknown>): DomainError {
          let caught: unknown;
          try {
            decide(cmd, state);
          } catch (error) {
            caught = error;
          }
          expect(caught, `expected ${code}`).toBeInstanceOf(DomainError);
          const error = caught as DomainError;
          expect(error.code).toBe(code);
          if (details !== undefined) {
            expect(error.details).toMatchObject(details);
          }
          return error;
        },
      };
    },
  };
}

/** A policy using every precondition kind, for tests that are not about the MSS Haiti template. */
export const testPolicy: Policy = {
  phases: [
    {
      id: 'alpha',
      title: 'Alpha',
      preconditions: [
        { kind: 'fact', id: 'council', title: 'Council approved', fact: 'council-approved' },
        {
          kind: 'no-blocker',
          id: 'unblocked',
          title: 'Nothing blocks',
          blockers: ['court-order', 'suspension', 'host-administration-collapse'],
        },
        {
          kind: 'threshold',
          id: 'officers',
          title: 'Officers ready',
          measure: 'officers-ready',
          minimum: 100,
          units: ['RDU', 'GSU'],
        },
        { kind: 'coverage', id: 'lift', title: 'Airlift and medical', capabilities: ['airlift', 'medical'] },
        { kind: 'mandate', id: 'mandate', title: 'UN mandate', issuingBody: 'UN Security Council' },
      ],
    },
    {
      id: 'beta',
      title: 'Beta',
      preconditions: [
        { kind: 'phase', id: 'alpha-ready', title: 'Alpha ready', phase: 'alpha', status: 'ready' },
        {
          kind: 'phase',
          id: 'alpha-authorised',
          title: 'Alpha authorised',
          phase: 'alpha',
          status: 'authorised',
        },
        { kind: 'threshold', id: 'funding', title: 'Funding', measure: 'confirmed-funding', minimum: 1000 },
        {
          kind: 'threshold',
          id: 'personnel',
          title: 'Personnel',
          measure: 'confirmed-personnel',
          minimum: 50,
        },
        {
          kind: 'coverage',
          id: 'lift-delivered',
          title: 'Airlift delivered',
          capabilities: ['airlift'],
          minimumStatus: 'fulfilled',
        },
        { kind: 'fact', id: 'agreement', title: 'Any agreement signed', fact: 'agreement-signed' },
        {
          kind: 'fact',
          id: 'parliament',
          title: 'Kenyan parliament approved',
          fact: 'parliament-approved',
          subject: 'kenya',
        },
      ],
    },
  ],
};

/** DefineMission of the test mission with `testPolicy`. */
export function defineTestMission(occurredAt: string = T0): CommandOf<'DefineMission'> {
  return command(
    'DefineMission',
    { name: 'Test mission', leadNation: 'kenya', baseCurrency: 'USD', policy: testPolicy },
    occurredAt,
  );
}

/** The events of the MSS Haiti scenario's accepted commands, in order. */
export function scenarioHistory(): MissionEvent[] {
  const events: MissionEvent[] = [];
  let state = fold([]);
  for (const step of mssHaitiScenario.steps) {
    if (step.expected.error === null) {
      const produced = decide(step.command, state);
      events.push(...produced);
      state = fold(produced, state);
    }
  }
  return events;
}
