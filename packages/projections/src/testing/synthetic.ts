import type { EventData } from '@muster/event-store';
import {
  CAPABILITIES,
  EVENT_SCHEMA_VERSIONS,
  type MissionEvent,
  type MissionEventType,
  missionTemplates,
  type Policy,
  type Precondition,
  toStoredEvent,
} from '@muster/readiness';

/**
 * Synthetic mission streams for tests and benchmarks: a mission defined from the MSS Haiti
 * template, then a seeded mix of every kind of event (unit reports, pledges and their lifecycle,
 * political and legal facts, blockers, mandates), some backdated and a few dated in the future.
 * The same seed gives the same events, ids included.
 */
export interface SyntheticOptions {
  missionId: string;
  events: number;
  seed?: number;
  /** occurredAt of the first event (epoch ms); later events move about one minute apart. */
  startMs?: number;
  stepMs?: number;
  /**
   * `volatile` (default): facts, blockers and unit strengths flip often, for tests of the change
   * logic. `steady`: what a long-running mission looks like, mostly unit reports and pledges with a
   * verdict that changes now and then; for benchmarks.
   */
  profile?: 'volatile' | 'steady';
}

/** Cumulative thresholds of a uniform roll, per kind of event. */
interface Mix {
  report: number;
  pledge: number;
  confirm: number;
  fulfil: number;
  withdraw: number;
  host: number;
  suspend: number;
  court: number;
  council: number;
  agreement: number;
  approval: number;
  mandate: number;
  recon: number;
  authorise: number;
  amend: number;
}

function cumulative(weights: Mix): Mix {
  let sum = 0;
  const out = {} as Mix;
  for (const key of Object.keys(weights) as (keyof Mix)[]) {
    sum += weights[key];
    out[key] = sum;
  }
  return out;
}

const MIXES: Record<'volatile' | 'steady', Mix> = {
  volatile: cumulative({
    report: 0.34,
    pledge: 0.16,
    confirm: 0.12,
    fulfil: 0.04,
    withdraw: 0.04,
    host: 0.05,
    suspend: 0.04,
    court: 0.04,
    council: 0.03,
    agreement: 0.02,
    approval: 0.02,
    mandate: 0.0005,
    recon: 0.01,
    authorise: 0.005,
    amend: 0.004,
  }),
  steady: cumulative({
    report: 0.55,
    pledge: 0.2,
    confirm: 0.14,
    fulfil: 0.03,
    withdraw: 0.01,
    host: 0.003,
    suspend: 0.002,
    court: 0.002,
    council: 0.003,
    agreement: 0.002,
    approval: 0.01,
    mandate: 0.0005,
    recon: 0.001,
    authorise: 0.001,
    amend: 0,
  }),
};

const UNITS = ['RDU', 'ASTU', 'GSU', 'BPU', 'K9'] as const;
const AGREEMENTS = ['kenya-haiti-deployment-deal', 'status-of-forces', 'host-nation-support'] as const;
const MAX_MANDATES = 12;
const PARTIES = ['united-states', 'canada', 'chile', 'jamaica', 'nigeria', 'benin', 'burundi'] as const;

export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function syntheticId(missionId: string, seed: number, index: number): string {
  // A UUID-shaped id that depends only on the mission, the seed and the index.
  const hex = (n: number, width: number) => (n >>> 0).toString(16).padStart(width, '0').slice(-width);
  let h = 2166136261 ^ seed;
  for (const ch of missionId) h = Math.imul(h ^ ch.charCodeAt(0), 16777619);
  return `${hex(h, 8)}-${hex(index >>> 16, 4)}-4${hex(index, 3)}-8${hex(seed, 3)}-${hex(index, 12)}`;
}

/** The mission's events as domain events, in stream order. */
export function* syntheticMissionEvents(options: SyntheticOptions): Generator<MissionEvent> {
  const { missionId, events } = options;
  const seed = options.seed ?? 1;
  const random = mulberry32(seed);
  const start = options.startMs ?? Date.UTC(2024, 0, 1);
  const step = options.stepMs ?? 60_000;
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  const template = missionTemplates['mss-haiti'];
  const mix = MIXES[options.profile ?? 'volatile'];
  const steady = options.profile === 'steady';
  const pending: string[] = [];
  const confirmed: string[] = [];
  let pledges = 0;
  let mandates = 0;
  let suspended = false;
  let council = 0;
  let authorised = false;
  let policyVersion = 1;

  for (let i = 0; i < events; i++) {
    let at = start + i * step;
    const r = random();
    if (r < (steady ? 0.02 : 0.08)) at -= Math.floor(random() * 48) * 3_600_000;
    else if (r < (steady ? 0.025 : 0.1)) at += Math.floor(random() * 72) * 3_600_000;
    const event = <T extends MissionEventType>(type: T, data: Extract<MissionEvent, { type: T }>['data']) =>
      ({
        id: syntheticId(missionId, seed, i),
        type,
        schemaVersion: EVENT_SCHEMA_VERSIONS[type],
        occurredAt: new Date(at).toISOString(),
        data,
      }) as MissionEvent;
    if (i === 0) {
      yield event('MissionDefined', {
        missionId,
        name: `${template.name} (${missionId})`,
        leadNation: template.leadNation,
        baseCurrency: template.baseCurrency,
        template: 'mss-haiti',
        policy: template.policy,
      });
      continue;
    }
    const roll = random();
    if (roll < mix.report) {
      yield event('UnitReadinessReported', {
        unit: pick(UNITS),
        officersReady: steady ? 240 + Math.floor(random() * 120) : Math.floor(random() * 450),
        status: random() < (steady ? 0.99 : 0.9) ? 'standby' : random() < 0.5 ? 'preparing' : 'stood-down',
        note: null,
      });
    } else if (roll < mix.pledge) {
      const pledgeId = `p-${++pledges}`;
      pending.push(pledgeId);
      const kind = random();
      if (kind < 0.4)
        yield event('LogisticsPledged', {
          pledgeId,
          pledger: pick(PARTIES),
          capability: pick(CAPABILITIES),
          quantity: 1 + Math.floor(random() * 20),
          unit: 'flights',
          description: null,
        });
      else if (kind < 0.75)
        yield event('FundingPledged', {
          pledgeId,
          pledger: pick(PARTIES),
          amount: 1_000_000 + Math.floor(random() * 90_000_000),
          currency: 'USD',
          baseCurrency: 'USD',
          baseCurrencyAmount: 1_000_000 + Math.floor(random() * 90_000_000),
          purpose: null,
        });
      else
        yield event('PersonnelPledged', {
          pledgeId,
          pledger: pick(PARTIES),
          officers: 1 + Math.floor(random() * 300),
          description: null,
        });
    } else if (roll < mix.confirm && pending.length > 0) {
      const pledgeId = pending.splice(Math.floor(random() * pending.length), 1)[0] as string;
      confirmed.push(pledgeId);
      yield event('PledgeConfirmed', { pledgeId, note: null });
    } else if (roll < mix.fulfil && confirmed.length > 0) {
      yield event('PledgeFulfilled', { pledgeId: pick(confirmed), note: null });
    } else if (roll < mix.withdraw && confirmed.length + pending.length > 0) {
      const pool =
        random() < 0.5 && confirmed.length > 0 ? confirmed : pending.length > 0 ? pending : confirmed;
      const pledgeId = pool.splice(Math.floor(random() * pool.length), 1)[0] as string;
      yield event('PledgeWithdrawn', { pledgeId, reason: 'Reallocated elsewhere' });
    } else if (roll < mix.host) {
      yield event('HostAdministrationStatusRecorded', {
        status: random() < 0.7 ? 'viable' : 'collapsed',
        administration: 'Transitional Presidential Council',
        note: null,
      });
    } else if (roll < mix.suspend) {
      suspended = !suspended;
      yield suspended
        ? event('DeploymentSuspended', { reason: 'Security situation under review' })
        : event('DeploymentResumed', { reason: 'Security situation reviewed' });
    } else if (roll < mix.court) {
      yield event('CourtOrderRecorded', {
        reference: `HCC-${1 + Math.floor(random() * 5)}`,
        court: 'High Court of Kenya',
        effect: random() < 0.5 ? 'barring' : 'lifted',
        summary: null,
      });
    } else if (roll < mix.council) {
      council = (council + 1) % 3;
      yield council === 1
        ? event('CouncilAnnounced', { councilName: 'Transitional Presidential Council', note: null })
        : council === 2
          ? event('CouncilApproved', {
              councilName: 'Transitional Presidential Council',
              process: 'Agreed in Jamaica',
            })
          : event('CouncilDissolved', { reason: 'Mandate of the council ended' });
    } else if (roll < mix.agreement) {
      yield event('AgreementSigned', {
        agreementId: pick(AGREEMENTS),
        title: 'Deployment agreement',
        parties: ['kenya', 'haiti'],
      });
    } else if (roll < mix.approval) {
      yield event('ApprovalRecorded', {
        body: random() < 0.5 ? 'cabinet' : 'parliament',
        nation: pick(PARTIES),
        decision: random() < 0.8 ? 'granted' : 'revoked',
        reference: null,
      });
    } else if (roll < mix.mandate && mandates < MAX_MANDATES) {
      const validFrom = at - Math.floor(random() * 30) * 86_400_000;
      yield event('MandateRecorded', {
        mandateId: `mandate-${++mandates}`,
        issuingBody: 'UN Security Council',
        reference: `S/RES/${2700 + mandates}`,
        validFrom: new Date(validFrom).toISOString(),
        validUntil: new Date(validFrom + (1 + Math.floor(random() * 90)) * 86_400_000).toISOString(),
      });
    } else if (roll < mix.recon) {
      yield random() < 0.5
        ? event('ReconnaissanceTeamPrepared', { teamSize: 12, leadUnit: 'GSU', note: null })
        : event('ReconnaissanceCompleted', { summary: 'Assessed reception arrangements' });
    } else if (roll < mix.authorise && !authorised) {
      authorised = true;
      yield event('DeploymentAuthorised', {
        phase: 'reconnaissance',
        policyVersion: 1,
        statusAtAuthorisation: 'ready',
        unmet: [],
        override: null,
      });
    } else if (roll < mix.amend) {
      policyVersion++;
      const effectiveFrom = at + Math.floor(random() * 72) * 3_600_000;
      yield event('PolicyAmended', {
        version: policyVersion,
        effectiveFrom: new Date(effectiveFrom).toISOString(),
        reason: 'Lessons from the field',
        policy: policyVariant(template.policy, policyVersion),
      });
    } else {
      yield event('UnitReadinessReported', {
        unit: pick(UNITS),
        officersReady: Math.floor(random() * 450),
        status: 'standby',
        note: null,
      });
    }
  }
}

/**
 * Alternate versions of the template policy: every unit counts and fewer officers suffice, or the
 * mandate gives way to delivered medical support; phases and their ids stay as they are.
 */
function policyVariant(policy: Policy, version: number): Policy {
  const phases = policy.phases.map((phase) => ({
    ...phase,
    preconditions: phase.preconditions.flatMap((p): Precondition[] => {
      if (version % 2 === 0 && p.kind === 'threshold' && p.measure === 'officers-ready') {
        return [{ kind: 'threshold', id: p.id, title: p.title, measure: 'officers-ready', minimum: 900 }];
      }
      if (version % 2 === 1 && p.kind === 'mandate') {
        return [
          {
            kind: 'coverage',
            id: 'medical-delivered',
            title: 'Medical support delivered',
            capabilities: ['medical'],
            minimumStatus: 'fulfilled',
          },
        ];
      }
      return [p];
    }),
  }));
  return { phases };
}

/** The same events as the store takes them on append. */
export function* syntheticMissionEventData(options: SyntheticOptions): Generator<EventData> {
  for (const event of syntheticMissionEvents(options)) {
    const stored = toStoredEvent(event);
    yield { id: stored.id, type: stored.type, data: stored.data, metadata: stored.metadata };
  }
}
