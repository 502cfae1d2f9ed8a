import {
  EVENT_SCHEMA_VERSIONS,
  type EventDataOf,
  type MissionEvent,
  type MissionEventType,
} from '../events.js';
import { eventIdFor } from '../ids.js';
import { missionTemplates } from '../templates.js';

const START = Date.parse('2024-02-01T00:00:00.000Z');
const UNITS = ['RDU', 'ASTU', 'GSU', 'BPU'] as const;

export interface Synthetic {
  readonly events: MissionEvent[];
  /** What a straightforward model says at the end, to check the fold against. */
  readonly expected: { officersReady: number; confirmedFunding: number; openPledges: number };
  readonly end: string;
}

/**
 * A long mss-haiti stream, mostly unit readiness reports and pledges, one event a minute, with
 * `backdatedShare` of the events dated up to a day early (recorded late). Deterministic: a
 * seeded generator, no Math.random.
 */
export function syntheticMission(count: number, backdatedShare = 0.01): Synthetic {
  let seed = 42;
  const random = () => {
    seed = (Math.imul(seed, 1_103_515_245) + 12_345) >>> 0;
    return seed / 2 ** 32;
  };
  const events: MissionEvent[] = [];
  const push = <T extends MissionEventType>(type: T, at: number, data: EventDataOf<T>) => {
    events.push({
      id: eventIdFor('mss-haiti', `synthetic-${events.length}`, 0),
      type,
      schemaVersion: EVENT_SCHEMA_VERSIONS[type],
      occurredAt: new Date(at).toISOString(),
      data,
    } as MissionEvent);
  };
  const template = missionTemplates['mss-haiti'];
  push('MissionDefined', START, {
    missionId: 'mss-haiti',
    name: template.name,
    leadNation: template.leadNation,
    baseCurrency: 'USD',
    template: 'mss-haiti',
    policy: template.policy,
  });
  const latest = new Map<string, { at: number; officers: number }>();
  const pledges: { id: string; amount: number; confirmedAt: number | null; withdrawn: boolean }[] = [];
  let clock = START;
  while (events.length < count) {
    clock += 60_000;
    const at = random() < backdatedShare ? clock - Math.floor(random() * 86_400_000) : clock;
    const roll = random();
    if (roll < 0.6) {
      const unit = UNITS[Math.floor(random() * UNITS.length)]!;
      const officers = Math.floor(random() * 400);
      push('UnitReadinessReported', at, { unit, officersReady: officers, status: 'standby', note: null });
      const previous = latest.get(unit);
      if (previous === undefined || previous.at <= at) {
        latest.set(unit, { at, officers });
      }
    } else if (roll < 0.8) {
      const id = `pledge-${pledges.length}`;
      const amount = 1 + Math.floor(random() * 1_000_000);
      if (random() < 0.5) {
        push('FundingPledged', at, {
          pledgeId: id,
          pledger: 'united-states',
          amount,
          currency: 'USD',
          baseCurrency: 'USD',
          baseCurrencyAmount: amount,
          purpose: null,
        });
        pledges.push({ id, amount, confirmedAt: null, withdrawn: false });
      } else {
        push('LogisticsPledged', at, {
          pledgeId: id,
          pledger: 'canada',
          capability: 'airlift',
          quantity: 1,
          unit: 'flights',
          description: null,
        });
        pledges.push({ id, amount: 0, confirmedAt: null, withdrawn: false });
      }
    } else if (roll < 0.95 && pledges.length > 0) {
      const pledge = pledges[Math.floor(random() * pledges.length)]!;
      if (pledge.confirmedAt === null && !pledge.withdrawn) {
        push('PledgeConfirmed', clock, { pledgeId: pledge.id, note: null });
        pledge.confirmedAt = clock;
      }
    } else if (pledges.length > 0) {
      const pledge = pledges[Math.floor(random() * pledges.length)]!;
      if (!pledge.withdrawn) {
        push('PledgeWithdrawn', clock, { pledgeId: pledge.id, reason: 'reassigned' });
        pledge.withdrawn = true;
      }
    }
  }
  let officersReady = 0;
  for (const { officers } of latest.values()) {
    officersReady += officers;
  }
  const confirmedFunding = pledges
    .filter((pledge) => pledge.confirmedAt !== null && !pledge.withdrawn)
    .reduce((sum, pledge) => sum + pledge.amount, 0);
  return {
    events,
    expected: { officersReady, confirmedFunding, openPledges: pledges.filter((p) => !p.withdrawn).length },
    end: new Date(clock + 60_000).toISOString(),
  };
}
