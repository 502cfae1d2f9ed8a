import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FAST_DATA_PARSERS } from './event-checks.js';
import type { MissionEventType } from './events.js';
import { EVENT_SCHEMA_VERSIONS, type EventDataOf, eventDataSchemas, fromStoredEvent } from './events.js';

/** One valid data object per type with a hand-written check. */
const VALID: { [T in MissionEventType]?: EventDataOf<T> } = {
  LogisticsPledged: {
    pledgeId: 'lift',
    pledger: 'united-states',
    capability: 'airlift',
    quantity: 3,
    description: null,
    unit: 'flights',
  },
  FundingPledged: {
    pledgeId: 'f-1',
    pledger: 'canada',
    amount: 5,
    currency: 'CAD',
    baseCurrency: 'USD',
    baseCurrencyAmount: 4,
    purpose: 'salaries',
  },
  PersonnelPledged: { pledgeId: 'p', pledger: 'benin', officers: 100, description: null },
  PledgeConfirmed: { pledgeId: 'p', note: null },
  PledgeFulfilled: { pledgeId: 'p', note: 'delivered' },
  PledgeWithdrawn: { pledgeId: 'p', reason: 'budget' },
  CouncilAnnounced: { councilName: 'Transitional Presidential Council', note: null },
  CouncilApproved: { councilName: 'Transitional Presidential Council', process: 'CARICOM' },
  CouncilDissolved: { reason: 'r' },
  HostAdministrationStatusRecorded: { status: 'viable', administration: 'Government', note: null },
  CourtOrderRecorded: { reference: 'E1/2024', court: 'High Court', effect: 'barring', summary: null },
  ApprovalRecorded: { body: 'cabinet', nation: 'kenya', decision: 'granted', reference: null },
  UnitReadinessReported: { unit: 'RDU', officersReady: 0, status: 'standby', note: null },
  ReconnaissanceTeamPrepared: { teamSize: 12, leadUnit: 'GSU', note: null },
  ReconnaissanceCompleted: { summary: 'done' },
  DeploymentSuspended: { reason: 'court' },
  DeploymentResumed: { reason: 'lifted' },
};

const TYPES = Object.keys(FAST_DATA_PARSERS) as MissionEventType[];

/** Values near every boundary the schemas draw: lengths, patterns, integers, enums, types. */
const tricky: unknown[] = [
  '',
  'a',
  'ab',
  'A',
  'kenya',
  'united-states',
  '-x',
  'x-',
  'a--b',
  'a b',
  'RDU',
  'R',
  'RDU-1',
  '1RDU',
  'rdu',
  'USD',
  'usd',
  'US',
  'USDX',
  'x'.repeat(16),
  'X'.repeat(17),
  'x'.repeat(40),
  'x'.repeat(41),
  'x'.repeat(64),
  'x'.repeat(65),
  'x'.repeat(200),
  'x'.repeat(201),
  'x'.repeat(2000),
  'x'.repeat(2001),
  'airlift',
  'viable',
  'collapsed',
  'barring',
  'lifted',
  'cabinet',
  'parliament',
  'granted',
  'revoked',
  'standby',
  'preparing',
  'stood-down',
  0,
  -0,
  1,
  -1,
  1.5,
  2 ** 53,
  2 ** 53 - 1,
  1_000_000_000_000,
  1_000_000_000_001,
  Number.NaN,
  Number.POSITIVE_INFINITY,
  null,
  undefined,
  true,
  [],
  {},
  ['kenya', 'haiti'],
];

const valueArb = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...tricky) },
  { weight: 1, arbitrary: fc.string({ maxLength: 12 }) },
  { weight: 1, arbitrary: fc.integer({ min: -3, max: 3 }) },
);

type Mutation = { kind: 'delete' | 'set'; key: number | string; value: unknown };
const mutationArb: fc.Arbitrary<Mutation> = fc.record({
  kind: fc.constantFrom('delete' as const, 'set' as const),
  key: fc.oneof(fc.nat(8), fc.constantFrom('extra', '__proto__', 'constructor')),
  value: valueArb,
});

function mutate(data: Record<string, unknown>, mutations: readonly Mutation[]): Record<string, unknown> {
  // Through JSON, as a store returns it: a plain object (an own `__proto__` key included).
  const out = JSON.parse(JSON.stringify(data)) as Record<string, unknown>;
  const keys = Object.keys(data);
  for (const { kind, key, value } of mutations) {
    const name = typeof key === 'number' ? (keys[key % keys.length] as string) : key;
    if (kind === 'delete') {
      delete out[name];
    } else {
      Object.defineProperty(out, name, { value, enumerable: true, writable: true, configurable: true });
    }
  }
  return out;
}

function agree(type: MissionEventType, data: unknown): void {
  const fast = FAST_DATA_PARSERS[type]?.(data);
  const slow = eventDataSchemas[type].safeParse(data);
  expect(fast !== undefined).toBe(slow.success);
  if (fast !== undefined && slow.success) {
    const expected = slow.data as Record<string, unknown>;
    expect(Object.keys(fast)).toEqual(Object.keys(expected));
    for (const key of Object.keys(expected)) {
      expect(Object.is(fast[key], expected[key])).toBe(true);
    }
  }
}

describe('hand-written checks of event data', () => {
  it('cover the frequent types and accept what their schemas accept', () => {
    for (const type of TYPES) {
      expect(VALID[type], type).toBeDefined();
      agree(type, VALID[type]);
      expect(FAST_DATA_PARSERS[type]?.(VALID[type])).toEqual(VALID[type]);
    }
    expect(TYPES).toContain('UnitReadinessReported');
    expect(TYPES).toContain('PledgeConfirmed');
  });

  it('accept exactly what zod accepts on every field set to every boundary value, or missing', () => {
    for (const type of TYPES) {
      const valid = VALID[type] as Record<string, unknown>;
      for (const key of [...Object.keys(valid), 'extra', '__proto__']) {
        agree(type, mutate(valid, [{ kind: 'delete', key, value: undefined }]));
        for (const value of tricky) agree(type, mutate(valid, [{ kind: 'set', key, value }]));
      }
    }
  });

  it('accept exactly what zod accepts, with the same output, on mutated data', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...TYPES),
        fc.array(mutationArb, { minLength: 1, maxLength: 3 }),
        (type, mutations) => {
          agree(type, mutate(VALID[type] as Record<string, unknown>, mutations));
        },
      ),
      { numRuns: 3000 },
    );
  });

  it('accept nothing zod refuses, whatever the value', () => {
    fc.assert(
      fc.property(fc.constantFrom(...TYPES), fc.anything(), (type, data) => {
        const fast = FAST_DATA_PARSERS[type]?.(data);
        if (fast !== undefined) {
          expect(eventDataSchemas[type].safeParse(data).success).toBe(true);
        }
      }),
    );
    for (const type of TYPES) {
      const valid = VALID[type] as Record<string, unknown>;
      // Not a plain object: left to zod, which decides.
      const bare = Object.assign(Object.create(null) as Record<string, unknown>, valid);
      expect(FAST_DATA_PARSERS[type]?.(bare)).toBeUndefined();
      for (const other of [null, [], 'x', 1, [valid]])
        expect(FAST_DATA_PARSERS[type]?.(other)).toBeUndefined();
    }
  });

  it('give fromStoredEvent the same events and the same errors as zod alone', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...TYPES),
        fc.array(mutationArb, { maxLength: 2 }),
        fc.constantFrom('2024-03-01T00:00:00.000Z', '2024-03-01T03:00:00+03:00', '2024-02-30T00:00:00.000Z'),
        (type, mutations, occurredAt) => {
          const data = mutate(VALID[type] as Record<string, unknown>, mutations);
          const stored = {
            id: 'e',
            type,
            data,
            metadata: { occurredAt, schemaVersion: EVENT_SCHEMA_VERSIONS[type] },
          };
          const slow = eventDataSchemas[type].safeParse(data);
          let read: unknown;
          let code: string | undefined;
          try {
            read = fromStoredEvent(stored);
          } catch (error) {
            code = (error as { code?: string }).code;
          }
          if (occurredAt.startsWith('2024-02-30')) {
            expect(code).toBe('invalid-event');
          } else if (slow.success) {
            expect(JSON.stringify(read)).toBe(
              JSON.stringify({
                id: 'e',
                type,
                schemaVersion: EVENT_SCHEMA_VERSIONS[type],
                occurredAt: new Date(occurredAt).toISOString(),
                data: slow.data,
              }),
            );
          } else {
            expect(code).toBe('invalid-event');
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});
