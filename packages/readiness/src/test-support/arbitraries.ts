import fc from 'fast-check';
import type { MissionCommand } from '../commands.js';
import { decide } from '../decide.js';
import { DomainError } from '../errors.js';
import type { MissionEvent } from '../events.js';
import type { Policy } from '../policy.js';
import { evolve, initialState, type MissionState } from '../state.js';
import { missionTemplates } from '../templates.js';
import { MISSION, testPolicy } from './spec.js';

/** Mission defined at this instant; generated facts range from two days before to twenty days after. */
export const DEFINED_AT = Date.parse('2024-03-01T00:00:00.000Z');
const HOUR = 3_600_000;
export const instantArb = fc
  .integer({ min: -48, max: 20 * 24 })
  .map((h) => new Date(DEFINED_AT + h * HOUR).toISOString());
/** Instants to evaluate at: from the definition on, on and between the generated hours. */
export const evaluationInstantArb = fc
  .integer({ min: 0, max: 22 * 24 * 2 })
  .map((halfHours) => new Date(DEFINED_AT + halfHours * (HOUR / 2)).toISOString());

const pledgeId = fc.constantFrom('p0', 'p1', 'p2', 'p3', 'p4', 'p5');
const unit = fc.constantFrom('RDU', 'GSU', 'ASTU');
const pledger = fc.constantFrom('united-states', 'canada', 'benin');

const altPolicy: Policy = {
  phases: [
    {
      id: 'alpha',
      title: 'Alpha, amended',
      preconditions: [
        { kind: 'coverage', id: 'lift', title: 'Airlift', capabilities: ['airlift'] },
        { kind: 'threshold', id: 'money', title: 'Money', measure: 'confirmed-funding', minimum: 300 },
        { kind: 'no-blocker', id: 'unblocked', title: 'Not suspended', blockers: ['suspension'] },
      ],
    },
    {
      id: 'gamma',
      title: 'Gamma',
      preconditions: [
        { kind: 'phase', id: 'after-alpha', title: 'After alpha', phase: 'alpha', status: 'ready' },
      ],
    },
  ],
};

type Intent = { readonly occurredAt: string; readonly payload: Record<string, unknown> & { type: string } };

const payloadArb: fc.Arbitrary<Record<string, unknown> & { type: string }> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      type: fc.constant('PledgeLogistics'),
      pledgeId,
      pledger,
      capability: fc.constantFrom('airlift', 'medical'),
      quantity: fc.integer({ min: 1, max: 5 }),
      unit: fc.constant('aircraft'),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      type: fc.constant('PledgeFunding'),
      pledgeId,
      pledger,
      amount: fc.integer({ min: 1, max: 800 }),
      currency: fc.constant('EUR'),
      baseCurrencyAmount: fc.integer({ min: 1, max: 800 }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      type: fc.constant('PledgePersonnel'),
      pledgeId,
      pledger,
      officers: fc.integer({ min: 1, max: 40 }),
    }),
  },
  { weight: 5, arbitrary: fc.record({ type: fc.constant('ConfirmPledge'), pledgeId }) },
  { weight: 2, arbitrary: fc.record({ type: fc.constant('RecordPledgeFulfilled'), pledgeId }) },
  {
    weight: 2,
    arbitrary: fc.record({ type: fc.constant('WithdrawPledge'), pledgeId, reason: fc.constant('r') }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      type: fc.constant('ApproveCouncil'),
      councilName: fc.constant('TPC'),
      process: fc.constant('p'),
    }),
  },
  { weight: 1, arbitrary: fc.record({ type: fc.constant('DissolveCouncil'), reason: fc.constant('r') }) },
  {
    weight: 1,
    arbitrary: fc.record({ type: fc.constant('AnnounceCouncil'), councilName: fc.constant('TPC') }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      type: fc.constant('RecordHostAdministrationStatus'),
      status: fc.constantFrom('viable', 'collapsed'),
      administration: fc.constant('Gov'),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      type: fc.constant('RecordMandate'),
      mandateId: fc.constantFrom('m1', 'm2', 'm3'),
      issuingBody: fc.constantFrom('UN Security Council', 'African Union'),
      reference: fc.constant('R'),
      validFrom: instantArb,
      validUntil: instantArb,
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      type: fc.constant('SignAgreement'),
      agreementId: fc.constantFrom('a1', 'a2'),
      title: fc.constant('Deal'),
      parties: fc.constant(['kenya', 'haiti']),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      type: fc.constant('RecordCourtOrder'),
      reference: fc.constantFrom('E1', 'E2'),
      court: fc.constant('High Court'),
      effect: fc.constantFrom('barring', 'lifted'),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      type: fc.constant('RecordApproval'),
      body: fc.constantFrom('cabinet', 'parliament'),
      nation: fc.constantFrom('kenya', 'uganda'),
      decision: fc.constantFrom('granted', 'revoked'),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      type: fc.constant('ReportUnitReadiness'),
      unit,
      officersReady: fc.integer({ min: 0, max: 80 }),
      status: fc.constantFrom('preparing', 'standby', 'stood-down'),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      type: fc.constant('ReportUnitReadiness'),
      unit,
      officersReady: fc.integer({ min: 0, max: 80 }),
      status: fc.constant('standby'),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ type: fc.constant('PrepareReconnaissanceTeam'), teamSize: fc.constant(10) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ type: fc.constant('CompleteReconnaissance'), summary: fc.constant('done') }),
  },
  { weight: 1, arbitrary: fc.record({ type: fc.constant('SuspendDeployment'), reason: fc.constant('r') }) },
  { weight: 1, arbitrary: fc.record({ type: fc.constant('ResumeDeployment'), reason: fc.constant('r') }) },
  {
    weight: 1,
    arbitrary: fc.record(
      {
        type: fc.constant('AuthoriseDeployment'),
        phase: fc.constantFrom('alpha', 'beta', 'gamma'),
        override: fc.constant({ justification: 'needed' }),
      },
      { requiredKeys: ['type', 'phase'] },
    ),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      type: fc.constant('AmendPolicy'),
      policy: fc.constantFrom(testPolicy, altPolicy, missionTemplates['mss-haiti'].policy),
      reason: fc.constant('r'),
      effectiveLagHours: fc.integer({ min: 0, max: 72 }),
    }),
  },
);

const intentArb: fc.Arbitrary<Intent> = fc.record({ occurredAt: instantArb, payload: payloadArb });

function toCommand(intent: Intent, index: number): MissionCommand {
  const { effectiveLagHours, ...payload } = intent.payload;
  const extra =
    typeof effectiveLagHours === 'number'
      ? { effectiveFrom: new Date(Date.parse(intent.occurredAt) + effectiveLagHours * HOUR).toISOString() }
      : {};
  return {
    ...payload,
    ...extra,
    commandId: `gen-${index}`,
    missionId: MISSION,
    occurredAt: intent.occurredAt,
  } as MissionCommand;
}

export interface History {
  readonly events: MissionEvent[];
  readonly state: MissionState;
}

/** Decides the commands in order, keeping the accepted ones: a valid history. */
export function run(
  commands: readonly MissionCommand[],
  from: History = { events: [], state: initialState() },
): History {
  const events = [...from.events];
  let state = from.state;
  for (const command of commands) {
    try {
      for (const event of decide(command, state)) {
        events.push(event);
        state = evolve(state, event);
      }
    } catch (error) {
      if (!(error instanceof DomainError)) {
        throw error;
      }
    }
  }
  return { events, state };
}

/** Valid event histories of the test mission: defined at DEFINED_AT, then random commands. */
export const historyArb: fc.Arbitrary<History> = fc
  .array(intentArb, { minLength: 5, maxLength: 80, size: 'max' })
  .map((intents) => {
    const define = {
      type: 'DefineMission',
      commandId: 'gen-define',
      missionId: MISSION,
      occurredAt: new Date(DEFINED_AT).toISOString(),
      name: 'Generated',
      leadNation: 'kenya',
      policy: testPolicy,
    } as MissionCommand;
    return run([define, ...intents.map(toCommand)]);
  });
