import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { actingParty } from './acting-party.js';
import {
  commandCatalog,
  commandPayloads,
  commandSchema,
  findCommand,
  parseCommand,
  TEMPLATE_NAMES,
} from './commands.js';
import { DomainError } from './errors.js';
import { instantSchema } from './instant.js';
import { mssHaitiScenario } from './scenario.js';
import { fold } from './state.js';
import { missionTemplates } from './templates.js';
import { command, defineTestMission, history } from './test-support/spec.js';

describe('commandCatalog', () => {
  it('has one entry per command type, with a kebab-case name derived from the type', () => {
    const types = Object.keys(commandPayloads).sort();
    expect(commandCatalog.map((entry) => entry.type).sort()).toEqual(types);
    expect(commandSchema.options.map((option) => option.shape.type.value).sort()).toEqual(types);
    for (const entry of commandCatalog) {
      const kebab = entry.type.replace(/([a-z])([A-Z])/g, '$1-$2').toLowerCase();
      expect(entry.name).toBe(kebab);
      expect(entry.description).toMatch(/^[A-Z].*\.$/);
      expect(['mission-admin', 'pledge', 'political', 'legal', 'operational']).toContain(entry.category);
      expect(findCommand(entry.name)).toBe(entry);
    }
    expect(findCommand('launch-missiles')).toBeUndefined();
  });

  it('has payload schemas the API can extend and turn into JSON Schema: strict, transform-free', () => {
    for (const entry of commandCatalog) {
      const body = entry.payloadSchema.extend({
        occurredAt: instantSchema,
        commandId: z.string().optional(),
      });
      const json = z.toJSONSchema(body) as {
        additionalProperties?: unknown;
        properties: Record<string, unknown>;
      };
      expect(json.additionalProperties, entry.name).toBe(false);
      expect(Object.keys(json.properties)).toContain('occurredAt');
      for (const field of ['type', 'commandId', 'missionId', 'occurredAt']) {
        expect(Object.keys(entry.payloadSchema.shape), entry.name).not.toContain(field);
      }
    }
  });

  it('names the acting party field of the pledge commands only', () => {
    const withField = commandCatalog.filter((entry) => entry.actingPartyField !== undefined);
    expect(withField.map((entry) => [entry.name, entry.actingPartyField])).toEqual([
      ['pledge-logistics', 'pledger'],
      ['pledge-funding', 'pledger'],
      ['pledge-personnel', 'pledger'],
    ]);
    for (const entry of withField) {
      expect(Object.keys(entry.payloadSchema.shape)).toContain(entry.actingPartyField);
    }
  });

  it('refuses unknown keys in every payload', () => {
    for (const entry of commandCatalog) {
      const result = entry.payloadSchema.safeParse({ surprise: true });
      expect(result.success).toBe(false);
      expect(JSON.stringify(result.error?.issues)).toContain('surprise');
    }
  });

  it('accepts every command of the scenario as an HTTP body would carry it', () => {
    for (const step of mssHaitiScenario.steps) {
      const { type, commandId: _id, missionId: _mission, ...body } = step.command;
      const entry = commandCatalog.find((candidate) => candidate.type === type)!;
      const parsed = entry.payloadSchema.extend({ occurredAt: instantSchema }).safeParse(body);
      expect(parsed.success, step.title).toBe(true);
    }
  });

  it('lists exactly the shipped templates', () => {
    expect([...TEMPLATE_NAMES].sort()).toEqual(Object.keys(missionTemplates).sort());
  });
});

describe('parseCommand', () => {
  it('returns a valid command', () => {
    const cmd = command('SuspendDeployment', { reason: 'r' });
    expect(parseCommand(JSON.parse(JSON.stringify(cmd)))).toEqual(cmd);
  });

  it('throws invalid-command naming every problem', () => {
    let caught: unknown;
    try {
      parseCommand({
        type: 'PledgeFunding',
        commandId: '',
        missionId: 'x',
        occurredAt: 'yesterday',
        amount: -1,
      });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(DomainError);
    const error = caught as DomainError;
    expect(error.code).toBe('invalid-command');
    expect(error.status).toBe(422);
    const paths = (error.details.issues as { path: string }[]).map((issue) => issue.path);
    expect(paths).toEqual(
      expect.arrayContaining(['commandId', 'missionId', 'occurredAt', 'amount', 'pledgeId']),
    );
  });

  it('refuses an unknown command type', () => {
    expect(() => parseCommand({ type: 'LaunchMissiles' })).toThrow(DomainError);
  });
});

describe('actingParty', () => {
  const pledge = command('PledgeFunding', {
    pledgeId: 'money',
    pledger: 'canada',
    amount: 1,
    currency: 'CAD',
    baseCurrencyAmount: 1,
  });
  const state = fold(history(defineTestMission(), pledge));

  it('is the pledger of a new pledge', () => {
    expect(actingParty(pledge, state)).toBe('canada');
    expect(
      actingParty(
        command('PledgeLogistics', {
          pledgeId: 'p',
          pledger: 'chile',
          capability: 'medical',
          quantity: 1,
          unit: 'beds',
        }),
        state,
      ),
    ).toBe('chile');
    expect(
      actingParty(command('PledgePersonnel', { pledgeId: 'q', pledger: 'benin', officers: 1 }), state),
    ).toBe('benin');
  });

  it('is the pledger of the referenced pledge for confirm, fulfil and withdraw', () => {
    expect(actingParty(command('ConfirmPledge', { pledgeId: 'money' }), state)).toBe('canada');
    expect(actingParty(command('RecordPledgeFulfilled', { pledgeId: 'money' }), state)).toBe('canada');
    expect(actingParty(command('WithdrawPledge', { pledgeId: 'money', reason: 'r' }), state)).toBe('canada');
    expect(actingParty(command('ConfirmPledge', { pledgeId: 'ghost' }), state)).toBeUndefined();
  });

  it('is undefined for commands that act for no particular party', () => {
    expect(actingParty(command('SuspendDeployment', { reason: 'r' }), state)).toBeUndefined();
    for (const step of mssHaitiScenario.steps) {
      if (!step.command.type.startsWith('Pledge') && !['ConfirmPledge'].includes(step.command.type)) {
        expect(actingParty(step.command, state)).toBeUndefined();
      }
    }
  });
});
