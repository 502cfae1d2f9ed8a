import { describe, expect, it } from 'vitest';
import { DomainError } from './errors.js';
import {
  EVENT_SCHEMA_VERSIONS,
  EVENT_TYPES,
  eventDataSchemas,
  fromStoredEvent,
  toStoredEvent,
} from './events.js';
import { command, defineTestMission, history, scenarioHistory } from './test-support/spec.js';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    return error instanceof DomainError ? error.code : `not a DomainError: ${String(error)}`;
  }
  return undefined;
}

describe('stored events', () => {
  it('round-trip through toStoredEvent and fromStoredEvent, also as JSON', () => {
    const events = scenarioHistory();
    expect(new Set(events.map((event) => event.type)).size).toBeGreaterThan(10);
    for (const event of events) {
      const stored = toStoredEvent(event);
      expect(stored.metadata).toEqual({ occurredAt: event.occurredAt, schemaVersion: event.schemaVersion });
      expect(fromStoredEvent(stored)).toEqual(event);
      expect(fromStoredEvent(JSON.parse(JSON.stringify(stored)))).toEqual(event);
    }
  });

  it('read back events as the store returns them, with extra fields and any offset', () => {
    const [event] = history(defineTestMission());
    const recorded = {
      ...toStoredEvent(event!),
      stream: 'mission-test-mission',
      revision: 0,
      position: '00000001',
      recordedAt: '2024-03-01T00:00:01.000Z',
      metadata: {
        occurredAt: '2024-03-01T03:00:00+03:00',
        schemaVersion: 1,
        commandId: 'c',
        actor: { agency: 'a' },
      },
    };
    expect(fromStoredEvent(recorded)).toEqual(event);
  });

  it('upcast LogisticsPledged v1 (no unit) to v2', () => {
    const v1 = {
      id: '3f1c2a9e-0000-4000-8000-000000000000',
      type: 'LogisticsPledged',
      data: {
        pledgeId: 'lift',
        pledger: 'united-states',
        capability: 'airlift',
        quantity: 3,
        description: null,
      },
      metadata: { occurredAt: '2024-02-28T16:00:00Z', schemaVersion: 1 },
    };
    expect(fromStoredEvent(v1)).toEqual({
      id: v1.id,
      type: 'LogisticsPledged',
      schemaVersion: 2,
      occurredAt: '2024-02-28T16:00:00.000Z',
      data: { ...v1.data, unit: 'unspecified' },
    });
    expect(fromStoredEvent({ ...v1, metadata: { occurredAt: '2024-02-28T16:00:00Z' } }).schemaVersion).toBe(
      2,
    );
  });

  it('refuse an old version that does not match its old schema', () => {
    const bad = {
      id: 'x',
      type: 'LogisticsPledged',
      data: {
        pledgeId: 'lift',
        pledger: 'united-states',
        capability: 'airlift',
        quantity: 0,
        description: null,
      },
      metadata: { occurredAt: '2024-02-28T16:00:00Z', schemaVersion: 1 },
    };
    expect(codeOf(() => fromStoredEvent(bad))).toBe('invalid-event');
  });

  it('refuse unknown types, unsupported versions, bad data and a missing occurredAt with typed errors', () => {
    const good = toStoredEvent(history(defineTestMission())[0]!);
    expect(codeOf(() => fromStoredEvent({ ...good, type: 'MissionExploded' }))).toBe('unknown-event-type');
    expect(codeOf(() => fromStoredEvent({ ...good, type: 'toString' }))).toBe('unknown-event-type');
    expect(codeOf(() => fromStoredEvent({ ...good, metadata: { ...good.metadata, schemaVersion: 2 } }))).toBe(
      'unsupported-event-version',
    );
    expect(codeOf(() => fromStoredEvent({ ...good, metadata: { ...good.metadata, schemaVersion: 0 } }))).toBe(
      'unsupported-event-version',
    );
    expect(
      codeOf(() => fromStoredEvent({ ...good, metadata: { ...good.metadata, schemaVersion: '1' } })),
    ).toBe('unsupported-event-version');
    expect(codeOf(() => fromStoredEvent({ ...good, data: { ...good.data, surprise: 1 } }))).toBe(
      'invalid-event',
    );
    expect(codeOf(() => fromStoredEvent({ ...good, metadata: { schemaVersion: 1 } }))).toBe('invalid-event');
    expect(codeOf(() => fromStoredEvent({ ...good, metadata: null }))).toBe('invalid-event');
    expect(codeOf(() => fromStoredEvent({ ...good, metadata: { occurredAt: 'soon' } }))).toBe(
      'invalid-event',
    );
    const error = (() => {
      try {
        fromStoredEvent({ ...good, type: 'MissionExploded' });
      } catch (caught) {
        return caught as DomainError;
      }
    })();
    expect(error?.status).toBe(500);
    expect(error?.details).toEqual({ id: good.id, type: 'MissionExploded' });
  });

  it('have a current schema version for every type', () => {
    expect(Object.keys(EVENT_SCHEMA_VERSIONS).sort()).toEqual([...EVENT_TYPES].sort());
    expect(Object.keys(eventDataSchemas).sort()).toEqual([...EVENT_TYPES].sort());
  });

  it('carry a pledge of logistics at version 2 when decided now', () => {
    const [, pledged] = history(
      defineTestMission(),
      command('PledgeLogistics', {
        pledgeId: 'l',
        pledger: 'chile',
        capability: 'medical',
        quantity: 1,
        unit: 'beds',
      }),
    );
    expect(pledged?.schemaVersion).toBe(2);
  });
});
