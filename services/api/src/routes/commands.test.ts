import { uuidv7 } from '@muster/event-store';
import { commandCatalog, commandSchema, missionTemplates, mssHaitiScenario } from '@muster/readiness';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { assembleCommand, commandBodySchema, missionIdParam } from './commands.js';

const mssHaitiPolicy = missionTemplates['mss-haiti'].policy;

/** The scenario's commands as the API receives them: the body of each, by command type. */
const samples = new Map<string, Record<string, unknown>[]>();
for (const step of mssHaitiScenario.steps) {
  const {
    type,
    missionId: _missionId,
    ...body
  } = step.command as { type: string; missionId: string } & Record<string, unknown>;
  samples.set(type, [...(samples.get(type) ?? []), body]);
}

// The commands the scenario does not issue.
const extra: Record<string, Record<string, unknown>> = {
  AmendPolicy: { policy: mssHaitiPolicy, effectiveFrom: '2024-04-01T00:00:00Z', reason: 'new threshold' },
  RecordPledgeFulfilled: { pledgeId: 'airlift-us', note: 'delivered' },
  WithdrawPledge: { pledgeId: 'airlift-us', reason: 'aircraft needed elsewhere' },
  DissolveCouncil: { reason: 'dissolved by decree' },
  RecordApproval: { body: 'parliament', nation: 'kenya', decision: 'granted', reference: 'vote-12' },
  RecordCourtOrder: { reference: 'HCCHRPET/E234/2023', court: 'High Court of Kenya', effect: 'barring' },
};
for (const [type, body] of Object.entries(extra)) samples.set(type, [...(samples.get(type) ?? []), body]);

const someValue = fc.oneof(
  fc.string({ maxLength: 300 }),
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.constant(undefined),
  fc.constantFrom('2024-03-01T00:00:00Z', '2024-02-30T00:00:00Z', 'united-states', '', 'x'.repeat(201)),
  fc.array(fc.string(), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 8 }), fc.string({ maxLength: 8 }), { maxKeys: 3 }),
);

describe('command routes: what passes the body schema is a valid command', () => {
  it('has valid sample bodies for every command', () => {
    for (const entry of commandCatalog) {
      const bodies = samples.get(entry.type) ?? [];
      expect(bodies.length, entry.type).toBeGreaterThan(0);
      for (const body of bodies)
        expect(commandBodySchema(entry).safeParse(body).success, entry.type).toBe(true);
    }
  });

  it('assembles, from any body its route accepts, a command that passes commandSchema (the writer does not parse it again)', () => {
    let accepted = 0;
    fc.assert(
      fc.property(
        fc.constantFrom(...commandCatalog),
        fc.nat(),
        fc.array(fc.tuple(fc.string({ maxLength: 12 }), someValue), { maxLength: 3 }),
        fc.boolean(),
        fc.constantFrom('mss-haiti', 'a-b', 'Not-A-Slug', 'x'),
        fc.boolean(),
        (entry, pick, edits, editKnownFields, missionId, versionSeven) => {
          const options = samples.get(entry.type) as Record<string, unknown>[];
          const body: Record<string, unknown> = { ...options[pick % options.length] };
          const known = Object.keys(body);
          for (const [index, [name, value]] of edits.entries()) {
            const key = editKnownFields && known.length > 0 ? (known[index % known.length] as string) : name;
            body[key] = value;
          }
          const valid = commandBodySchema(entry).safeParse(body);
          if (!valid.success || !missionIdParam.safeParse(missionId).success) return;
          accepted++;
          const command = assembleCommand(entry, missionId, valid.data as Record<string, unknown>, {
            commandId: versionSeven ? uuidv7() : 'generated-id',
            occurredAt: new Date(Date.UTC(2024, 2, 1)).toISOString(),
          });
          const parsed = commandSchema.safeParse(command);
          expect(parsed.success, JSON.stringify(parsed.error?.issues)).toBe(true);
          expect(parsed.data).toEqual(command);
        },
      ),
      { numRuns: 2000 },
    );
    // Most runs must reach the check: a body that is refused proves nothing here.
    expect(accepted).toBeGreaterThan(150);
  });

  it('keeps the caller’s command id and instant over the defaults', () => {
    const entry = commandCatalog.find((c) => c.type === 'PledgeLogistics');
    if (!entry) throw new Error('no PledgeLogistics command');
    const command = assembleCommand(
      entry,
      'mss-haiti',
      {
        pledgeId: 'p1',
        pledger: 'united-states',
        capability: 'airlift',
        quantity: 1,
        unit: 'aircraft',
        commandId: 'mine',
        occurredAt: '2024-03-05T00:00:00Z',
      },
      { commandId: 'generated', occurredAt: '2024-03-01T00:00:00.000Z' },
    );
    expect(command).toMatchObject({
      type: 'PledgeLogistics',
      commandId: 'mine',
      occurredAt: '2024-03-05T00:00:00Z',
    });
  });
});
