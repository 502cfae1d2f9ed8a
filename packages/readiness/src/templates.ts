import type { TEMPLATE_NAMES } from './commands.js';
import type { Policy } from './policy.js';

export interface MissionTemplate {
  readonly name: string;
  readonly leadNation: string;
  readonly baseCurrency: string;
  readonly policy: Policy;
}

/** The agreement the MSS Haiti policy expects to be signed (the deal of 1 March 2024). */
export const MSS_HAITI_AGREEMENT_ID = 'kenya-haiti-deployment-deal';

/**
 * The Kenya-led Multinational Security Support mission to Haiti, as the article states it.
 * `docs/readiness-mss-haiti.md` names the sentence each precondition comes from.
 */
const mssHaiti: MissionTemplate = {
  name: 'Multinational Security Support Mission to Haiti',
  leadNation: 'kenya',
  baseCurrency: 'USD',
  policy: {
    phases: [
      {
        id: 'reconnaissance',
        title: 'Reconnaissance mission',
        preconditions: [
          {
            kind: 'fact',
            id: 'viable-administration',
            title: 'A viable administration is in place in Haiti',
            fact: 'host-administration-viable',
          },
          {
            kind: 'fact',
            id: 'reconnaissance-team-prepared',
            title: 'The security personnel are adequately prepared and informed',
            fact: 'reconnaissance-team-prepared',
          },
          {
            kind: 'no-blocker',
            id: 'reconnaissance-not-blocked',
            title: 'No collapse of the host administration and no suspension by Kenya',
            blockers: ['host-administration-collapse', 'suspension'],
          },
        ],
      },
      {
        id: 'main-deployment',
        title: 'Main deployment of more than 1,000 officers',
        preconditions: [
          {
            kind: 'fact',
            id: 'presidential-council-in-place',
            title: 'The Presidential Council is in place under an agreed process',
            fact: 'council-approved',
          },
          {
            kind: 'fact',
            id: 'deployment-deal-signed',
            title: 'The deal on the deployment signed on 1 March 2024',
            fact: 'agreement-signed',
            subject: MSS_HAITI_AGREEMENT_ID,
          },
          {
            kind: 'mandate',
            id: 'un-backing',
            title: 'A UN Security Council mandate is in force',
            issuingBody: 'UN Security Council',
          },
          {
            kind: 'phase',
            id: 'reconnaissance-authorised',
            title: 'The reconnaissance mission was deployed first',
            phase: 'reconnaissance',
            status: 'authorised',
          },
          {
            kind: 'fact',
            id: 'reconnaissance-completed',
            title: 'The reconnaissance mission is completed',
            fact: 'reconnaissance-completed',
          },
          {
            kind: 'coverage',
            id: 'logistics-to-move',
            title: 'Logistics to move the teams',
            capabilities: ['airlift'],
          },
          {
            kind: 'threshold',
            id: 'officers-ready',
            title: 'More than 1,000 officers ready from the RDU, ASTU, GSU and BPU',
            measure: 'officers-ready',
            minimum: 1000,
            units: ['RDU', 'ASTU', 'GSU', 'BPU'],
          },
          {
            kind: 'threshold',
            id: 'financial-support',
            title: 'Financial support pledged and confirmed',
            measure: 'confirmed-funding',
            minimum: 200_000_000,
          },
          {
            kind: 'no-blocker',
            id: 'deployment-not-blocked',
            title: 'No collapse of the host administration, no suspension by Kenya, no court order',
            blockers: ['host-administration-collapse', 'suspension', 'court-order'],
          },
        ],
      },
    ],
  },
};

export const missionTemplates: Readonly<Record<(typeof TEMPLATE_NAMES)[number], MissionTemplate>> =
  Object.freeze({
    'mss-haiti': mssHaiti,
  });
