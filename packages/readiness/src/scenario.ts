import type { MissionCommand } from './commands.js';
import type { DomainErrorCode } from './errors.js';
import { MSS_HAITI_AGREEMENT_ID } from './templates.js';
import type { PhaseStatus } from './vocabulary.js';

export interface ExpectedPhase {
  readonly phase: string;
  readonly status: PhaseStatus;
  /** Ids of the unmet preconditions, in policy order. */
  readonly unmet: readonly string[];
}

export interface ScenarioStep {
  /** What happened. */
  readonly title: string;
  /** The article's sentence behind the step, when there is one. */
  readonly source: string | null;
  readonly command: MissionCommand;
  readonly expected: {
    /** The error code the command is refused with, or null when it is accepted. */
    readonly error: DomainErrorCode | null;
    /** The instant at which the verdict below holds, once the step is applied. */
    readonly at: string;
    readonly phases: readonly ExpectedPhase[];
  };
}

export interface Scenario {
  readonly missionId: string;
  readonly title: string;
  readonly steps: readonly ScenarioStep[];
}

const missionId = 'mss-haiti';

// Precondition ids of the mss-haiti template, in policy order.
const VA = 'viable-administration';
const TP = 'reconnaissance-team-prepared';
const RNB = 'reconnaissance-not-blocked';
const C = 'presidential-council-in-place';
const D = 'deployment-deal-signed';
const U = 'un-backing';
const RA = 'reconnaissance-authorised';
const RC = 'reconnaissance-completed';
const L = 'logistics-to-move';
const O = 'officers-ready';
const F = 'financial-support';
const DNB = 'deployment-not-blocked';

const status = (unmet: readonly string[], blocker: string): PhaseStatus =>
  unmet.includes(blocker) ? 'blocked' : unmet.length > 0 ? 'not-ready' : 'ready';

const phases = (reconnaissance: readonly string[], main: readonly string[]): ExpectedPhase[] => [
  { phase: 'reconnaissance', status: status(reconnaissance, RNB), unmet: reconnaissance },
  { phase: 'main-deployment', status: status(main, DNB), unmet: main },
];

type Payload = { readonly type: MissionCommand['type'] } & Record<string, unknown>;

let sequence = 0;
function step(
  title: string,
  source: string | null,
  occurredAt: string,
  payload: Payload,
  expected: {
    at?: string;
    error?: DomainErrorCode;
    reconnaissance: readonly string[];
    main: readonly string[];
  },
): ScenarioStep {
  sequence += 1;
  const command = {
    ...payload,
    commandId: `mss-haiti-${String(sequence).padStart(3, '0')}`,
    missionId,
    occurredAt,
  } as MissionCommand;
  return {
    title,
    source,
    command,
    expected: {
      error: expected.error ?? null,
      at: expected.at ?? new Date(occurredAt).toISOString(),
      phases: phases(expected.reconnaissance, expected.main),
    },
  };
}

const ARTICLE = {
  reconnaissance:
    'He said Kenya has a plan to deploy a reconnaissance mission as soon as a viable administration is in place in Haiti.',
  resignation:
    'This was in regard to ongoing violence in Haiti in the wake of the resignation of Henry as the prime minister.',
  confusion: 'This threw the plans to deploy the officers into confusion.',
  jamaica: 'It comes after regional leaders met in Jamaica to discuss a political transition in Haiti.',
  council:
    '“He informed me that a new Presidential Council will be formed shortly to manage the situation in Haiti.”',
  inPlace:
    '“I assured Secretary Blinken that Kenya will take leadership of the UN Security Support Mission in Haiti to restore peace and security in Haiti as soon as the Presidential Council is in place under an agreed process,” Ruto said.',
  deal: "Henry had been in Kenya on March 1 to sign a deal on the deployment of an international security force to help tackle violence when a coalition of gangs attacked police stations and stormed two of Haiti's largest prisons.",
  standby:
    'In Kenya, Interior Cabinet Secretary Kithure Kindiki disclosed that the Kenyan-led Haiti Mission is in the pre-deployment stage. This means the team is on standby mode and all they are waiting for are logistics to move.',
  units:
    'The teams are from the Rapid Deployment Unit (RDU), Anti Stock Theft Unit (ASTU), General Service Unit (GSU), and Border Patrol Unit (BPU).',
  pledges:
    'Several countries have pledged financial and logistical support to the team to be deployed to Haiti. They include the US, Canada, Chile, Jamaica, Nigeria, Benin and Burundi.',
  unBacked:
    'There is ongoing diplomatic pressure for a UN-backed team to be deployed to Haiti as soon as possible.',
  prepared:
    'He said he outlined Kenya’s plan to deploy a reconnaissance mission as soon as a viable administration is in place, assuring that the security personnel are adequately prepared and informed to respond effectively to the evolving situation.',
} as const;

const MAIN_ALL = [C, D, U, RA, RC, L, O, F];

/**
 * The article's story as commands, in order, with the verdict expected after each. The article
 * names who pledged but not what: pledge figures and the dates after the article are
 * illustrative. The UN Security Council mandate is resolution 2699 (2023), adopted on
 * 2 October 2023 for twelve months and recorded here as a backdated fact.
 */
export const mssHaitiScenario: Scenario = {
  missionId,
  title: 'Kenya-led Multinational Security Support mission to Haiti, February to April 2024',
  steps: [
    step(
      'The MSS Haiti mission is defined from its template',
      null,
      '2024-02-01T09:00:00+03:00',
      { type: 'DefineMission', template: 'mss-haiti' },
      { reconnaissance: [VA, TP], main: MAIN_ALL },
    ),
    step(
      'The UN Security Council mandate (resolution 2699) is recorded, dated its adoption',
      ARTICLE.unBacked,
      '2023-10-02T20:00:00Z',
      {
        type: 'RecordMandate',
        mandateId: 'unsc-2699',
        issuingBody: 'UN Security Council',
        reference: 'S/RES/2699 (2023)',
        validFrom: '2023-10-02T20:00:00Z',
        validUntil: '2024-10-02T20:00:00Z',
      },
      { at: '2024-02-01T06:00:00.000Z', reconnaissance: [VA, TP], main: [C, D, RA, RC, L, O, F] },
    ),
    step(
      "Haiti's government under Prime Minister Ariel Henry is the mission's counterpart",
      'He had led the country since the former president’s assassination in July 2021.',
      '2024-02-01T12:00:00Z',
      {
        type: 'RecordHostAdministrationStatus',
        status: 'viable',
        administration: 'Government of Prime Minister Ariel Henry',
      },
      { reconnaissance: [TP], main: [C, D, RA, RC, L, O, F] },
    ),
    step(
      'The US pledges funding',
      ARTICLE.pledges,
      '2024-02-20T15:00:00Z',
      {
        type: 'PledgeFunding',
        pledgeId: 'us-funding',
        pledger: 'united-states',
        amount: 200_000_000,
        currency: 'USD',
        baseCurrencyAmount: 200_000_000,
        purpose: 'Support to the Multinational Security Support mission',
      },
      { reconnaissance: [TP], main: [C, D, RA, RC, L, O, F] },
    ),
    step(
      'Canada pledges funding',
      ARTICLE.pledges,
      '2024-02-28T14:00:00Z',
      {
        type: 'PledgeFunding',
        pledgeId: 'canada-funding',
        pledger: 'canada',
        amount: 80_500_000,
        currency: 'CAD',
        baseCurrencyAmount: 59_600_000,
      },
      { reconnaissance: [TP], main: [C, D, RA, RC, L, O, F] },
    ),
    step(
      'The US pledges airlift for the teams',
      ARTICLE.pledges,
      '2024-02-28T16:00:00Z',
      {
        type: 'PledgeLogistics',
        pledgeId: 'us-airlift',
        pledger: 'united-states',
        capability: 'airlift',
        quantity: 10,
        unit: 'flights',
      },
      { reconnaissance: [TP], main: [C, D, RA, RC, L, O, F] },
    ),
    step(
      'Chile pledges medical support',
      ARTICLE.pledges,
      '2024-02-29T10:00:00Z',
      {
        type: 'PledgeLogistics',
        pledgeId: 'chile-medical',
        pledger: 'chile',
        capability: 'medical',
        quantity: 1,
        unit: 'field-hospital',
      },
      { reconnaissance: [TP], main: [C, D, RA, RC, L, O, F] },
    ),
    step(
      'Benin pledges officers',
      ARTICLE.pledges,
      '2024-02-29T12:00:00Z',
      { type: 'PledgePersonnel', pledgeId: 'benin-officers', pledger: 'benin', officers: 2000 },
      { reconnaissance: [TP], main: [C, D, RA, RC, L, O, F] },
    ),
    step(
      'Kenya and Haiti sign the deal on the deployment in Nairobi',
      ARTICLE.deal,
      '2024-03-01T10:00:00+03:00',
      {
        type: 'SignAgreement',
        agreementId: MSS_HAITI_AGREEMENT_ID,
        title: 'Reciprocal agreement on the deployment of Kenyan police officers to Haiti',
        parties: ['kenya', 'haiti'],
      },
      { reconnaissance: [TP], main: [C, RA, RC, L, O, F] },
    ),
    step(
      'The US confirms its funding',
      ARTICLE.pledges,
      '2024-03-06T15:00:00Z',
      { type: 'ConfirmPledge', pledgeId: 'us-funding' },
      { reconnaissance: [TP], main: [C, RA, RC, L, O] },
    ),
    step(
      'Prime Minister Ariel Henry resigns: the host administration collapses',
      ARTICLE.resignation,
      '2024-03-11T20:00:00-04:00',
      {
        type: 'RecordHostAdministrationStatus',
        status: 'collapsed',
        administration: 'Government of Prime Minister Ariel Henry',
        note: 'Henry is stranded in Puerto Rico; gangs control the streets of Port-au-Prince.',
      },
      { reconnaissance: [VA, TP, RNB], main: [C, RA, RC, L, O, DNB] },
    ),
    step(
      'Regional leaders meeting in Jamaica announce a Presidential Council',
      ARTICLE.council,
      '2024-03-11T20:30:00-04:00',
      { type: 'AnnounceCouncil', councilName: 'Transitional Presidential Council', note: ARTICLE.jamaica },
      { reconnaissance: [VA, TP, RNB], main: [C, RA, RC, L, O, DNB] },
    ),
    step(
      'Kenya puts the deployment on hold',
      ARTICLE.confusion,
      '2024-03-12T14:00:00+03:00',
      {
        type: 'SuspendDeployment',
        reason: 'No administration in Haiti to receive the mission after the resignation of Ariel Henry.',
      },
      { reconnaissance: [VA, TP, RNB], main: [C, RA, RC, L, O, DNB] },
    ),
    step(
      'Kenya cannot send the reconnaissance mission yet: it is refused with what is missing',
      ARTICLE.reconnaissance,
      '2024-03-14T12:00:00+03:00',
      { type: 'AuthoriseDeployment', phase: 'reconnaissance' },
      { error: 'phase-not-ready', reconnaissance: [VA, TP, RNB], main: [C, RA, RC, L, O, DNB] },
    ),
    step(
      'The Rapid Deployment Unit reports ready, on standby',
      ARTICLE.standby,
      '2024-03-15T09:00:00+03:00',
      { type: 'ReportUnitReadiness', unit: 'RDU', officersReady: 400, status: 'standby' },
      { reconnaissance: [VA, TP, RNB], main: [C, RA, RC, L, O, DNB] },
    ),
    step(
      'The Anti Stock Theft Unit reports ready, on standby',
      ARTICLE.units,
      '2024-03-15T09:10:00+03:00',
      { type: 'ReportUnitReadiness', unit: 'ASTU', officersReady: 250, status: 'standby' },
      { reconnaissance: [VA, TP, RNB], main: [C, RA, RC, L, O, DNB] },
    ),
    step(
      'The General Service Unit reports ready, on standby',
      ARTICLE.units,
      '2024-03-15T09:20:00+03:00',
      { type: 'ReportUnitReadiness', unit: 'GSU', officersReady: 250, status: 'standby' },
      { reconnaissance: [VA, TP, RNB], main: [C, RA, RC, L, O, DNB] },
    ),
    step(
      'The Border Patrol Unit reports ready, on standby: more than 1,000 officers in all',
      'Kenya which will lead the team to combat the gangs plans to deploy more than 1,000 officers to Haiti to help in the mission.',
      '2024-03-15T09:30:00+03:00',
      { type: 'ReportUnitReadiness', unit: 'BPU', officersReady: 150, status: 'standby' },
      { reconnaissance: [VA, TP, RNB], main: [C, RA, RC, L, DNB] },
    ),
    step(
      'Jamaica pledges officers',
      ARTICLE.pledges,
      '2024-03-20T14:00:00Z',
      { type: 'PledgePersonnel', pledgeId: 'jamaica-officers', pledger: 'jamaica', officers: 200 },
      { reconnaissance: [VA, TP, RNB], main: [C, RA, RC, L, DNB] },
    ),
    step(
      'Nigeria pledges equipment',
      ARTICLE.pledges,
      '2024-03-20T15:00:00Z',
      {
        type: 'PledgeLogistics',
        pledgeId: 'nigeria-equipment',
        pledger: 'nigeria',
        capability: 'equipment',
        quantity: 20,
        unit: 'vehicles',
      },
      { reconnaissance: [VA, TP, RNB], main: [C, RA, RC, L, DNB] },
    ),
    step(
      'Burundi pledges officers',
      ARTICLE.pledges,
      '2024-03-21T09:00:00Z',
      { type: 'PledgePersonnel', pledgeId: 'burundi-officers', pledger: 'burundi', officers: 300 },
      { reconnaissance: [VA, TP, RNB], main: [C, RA, RC, L, DNB] },
    ),
    step(
      'Canada confirms its funding',
      ARTICLE.pledges,
      '2024-03-22T14:00:00Z',
      { type: 'ConfirmPledge', pledgeId: 'canada-funding' },
      { reconnaissance: [VA, TP, RNB], main: [C, RA, RC, L, DNB] },
    ),
    step(
      'The Presidential Council is established under the agreed process',
      ARTICLE.inPlace,
      '2024-04-12T12:00:00-04:00',
      {
        type: 'ApproveCouncil',
        councilName: 'Transitional Presidential Council',
        process:
          'Established by decree under the transition agreed by Caricom and Haitian stakeholders in Jamaica.',
      },
      { reconnaissance: [VA, TP, RNB], main: [RA, RC, L, DNB] },
    ),
    step(
      'The Council is sworn in: Haiti has a viable administration again',
      ARTICLE.reconnaissance,
      '2024-04-25T10:00:00-04:00',
      {
        type: 'RecordHostAdministrationStatus',
        status: 'viable',
        administration: 'Transitional Presidential Council',
      },
      { reconnaissance: [TP, RNB], main: [RA, RC, L, DNB] },
    ),
    step(
      'Kenya lifts its hold on the deployment',
      ARTICLE.inPlace,
      '2024-04-25T20:00:00+03:00',
      { type: 'ResumeDeployment', reason: 'The Presidential Council is in place under an agreed process.' },
      { reconnaissance: [TP], main: [RA, RC, L] },
    ),
    step(
      'The US confirms the airlift: the logistics to move the teams',
      ARTICLE.standby,
      '2024-04-26T08:00:00Z',
      { type: 'ConfirmPledge', pledgeId: 'us-airlift' },
      { reconnaissance: [TP], main: [RA, RC] },
    ),
    step(
      'The reconnaissance team is prepared and briefed',
      ARTICLE.prepared,
      '2024-04-26T14:00:00+03:00',
      { type: 'PrepareReconnaissanceTeam', teamSize: 12, leadUnit: 'GSU' },
      { reconnaissance: [], main: [RA, RC] },
    ),
    step(
      'Kenya authorises the reconnaissance mission',
      ARTICLE.reconnaissance,
      '2024-04-27T09:00:00+03:00',
      { type: 'AuthoriseDeployment', phase: 'reconnaissance' },
      { reconnaissance: [], main: [RC] },
    ),
    step(
      'The reconnaissance mission is completed: the main deployment is ready',
      null,
      '2024-04-30T17:00:00+03:00',
      {
        type: 'CompleteReconnaissance',
        summary: 'Reception, basing and liaison arrangements in Port-au-Prince assessed.',
      },
      { reconnaissance: [], main: [] },
    ),
  ],
};
