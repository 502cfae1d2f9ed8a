import { DomainError } from './errors.js';
import type { EventOf, MissionEvent } from './events.js';
import { validatedMs } from './instant.js';
import { jsonParts } from './json-parts.js';
import { emptyMap, mapGet, mapSet, type PMap } from './pmap.js';
import type { Policy } from './policy.js';
import {
  emptyVec,
  type PVec,
  vecGet,
  vecInsertionIndex,
  vecInsertSorted,
  vecLast,
  vecLastIndexAtOrBefore,
  vecPush,
  vecReplaceFrom,
  vecSliceFrom,
} from './pvec.js';
import type { Capability, FactName, UnitStatus } from './vocabulary.js';

/*
 * The state is plain JSON data built from persistent structures (PVec, PMap): `evolve` never
 * writes into anything its input can reach, it returns new nodes that share the untouched rest.
 * Instants are kept as epoch milliseconds. Every timeline is sorted by occurredAt, ties in the
 * order the events were recorded, so "what held at t" is a binary search.
 */

/** A point in the life of a fact or a blocker: from `at` on, it holds (`on`) or not. */
export interface SwitchPoint {
  readonly at: number;
  readonly on: boolean;
  readonly eventId: string;
}

export interface SwitchRecord {
  /** Whether it holds according to the last event recorded (what decide checks). */
  readonly current: boolean;
  readonly points: PVec<SwitchPoint>;
}

/** Subject used for facts and blockers that have no subject. */
export const NO_SUBJECT = '-';

export type PledgeKind = 'logistics' | 'funding' | 'personnel';
export type PledgeStatus = 'pledged' | 'confirmed' | 'fulfilled' | 'withdrawn';

export interface PledgeRecord {
  readonly pledgeId: string;
  readonly kind: PledgeKind;
  readonly pledger: string;
  readonly capability: Capability | null;
  /** What the pledge adds to its pool: officers, base-currency amount, or 1 for logistics. */
  readonly value: number;
  /** Latest status in the order events were recorded. */
  readonly status: PledgeStatus;
  readonly pledgedAt: number;
  readonly pledgeEventId: string;
  readonly confirmedAt: number | null;
  readonly confirmEventId: string | null;
  readonly fulfilledAt: number | null;
  readonly fulfilEventId: string | null;
  readonly withdrawnAt: number | null;
  /** The pools the pledge counts in and from when, so a withdrawal can end each. */
  readonly contributions: readonly { readonly pool: string; readonly start: number }[];
}

/**
 * A pool sums what counting pledges contribute: + at the start of a contribution, - at its end.
 * `total` is the running sum up to and including the point, so the value at t is one lookup.
 */
export interface PoolPoint {
  readonly at: number;
  readonly delta: number;
  readonly total: number;
  readonly pledgeId: string;
  /** For a start: the events that made the pledge count (pledge, confirmation, delivery). */
  readonly evidence: readonly string[] | null;
}

export interface UnitReport {
  readonly at: number;
  readonly officersReady: number;
  readonly status: UnitStatus;
  readonly eventId: string;
}

export interface MandateRecord {
  readonly mandateId: string;
  readonly issuingBody: string;
  readonly reference: string;
  /** When the MandateRecorded event occurred: before that the mandate is unknown. */
  readonly at: number;
  readonly validFrom: number;
  readonly validUntil: number;
  readonly eventId: string;
}

export interface AuthorisationRecord {
  readonly phase: string;
  readonly at: number;
  readonly eventId: string;
  readonly overridden: boolean;
}

export interface PolicyVersion {
  readonly version: number;
  readonly effectiveFrom: number;
  readonly eventId: string;
  readonly policy: Policy;
}

export interface MissionInfo {
  readonly missionId: string;
  readonly name: string;
  readonly leadNation: string;
  readonly baseCurrency: string;
  readonly template: string | null;
  readonly definedAt: number;
  readonly eventId: string;
}

export interface MissionState {
  /** Format of this structure, for stored snapshots. */
  readonly format: 1;
  readonly eventCount: number;
  readonly mission: MissionInfo | null;
  /** Sorted by version; amendments are rare, so this small array is copied on each. */
  readonly policies: readonly PolicyVersion[];
  readonly pledges: PMap<PledgeRecord>;
  /** Pool name (`funding`, `personnel`, `logistics:airlift`, `logistics-fulfilled:airlift`) → points. */
  readonly pools: PMap<PVec<PoolPoint>>;
  /** Fact name → subject → switch. */
  readonly facts: PMap<PMap<SwitchRecord>>;
  /** Blocker kind (`court-order`, `suspension`) → reference → switch. */
  readonly blockers: PMap<PMap<SwitchRecord>>;
  /** Unit code → reports sorted by occurredAt. */
  readonly units: PMap<PVec<UnitReport>>;
  readonly mandates: PMap<MandateRecord>;
  /** Phase id → its (first) authorisation. */
  readonly authorisations: PMap<AuthorisationRecord>;
}

export function initialState(): MissionState {
  return {
    format: 1,
    eventCount: 0,
    mission: null,
    policies: [],
    pledges: emptyMap(),
    pools: emptyMap(),
    facts: emptyMap(),
    blockers: emptyMap(),
    units: emptyMap(),
    mandates: emptyMap(),
    authorisations: emptyMap(),
  };
}

const byAt = (item: { readonly at: number }): number => item.at;

export function switchAt(record: SwitchRecord | undefined, t: number): SwitchPoint | undefined {
  if (record === undefined) {
    return undefined;
  }
  const index = vecLastIndexAtOrBefore(record.points, t, byAt);
  return index < 0 ? undefined : vecGet(record.points, index);
}

export function switchRecord(
  collection: PMap<PMap<SwitchRecord>>,
  name: string,
  subject: string = NO_SUBJECT,
): SwitchRecord | undefined {
  const subjects = mapGet(collection, name);
  return subjects === undefined ? undefined : mapGet(subjects, subject);
}

export function factHolds(state: MissionState, fact: FactName, subject: string = NO_SUBJECT): boolean {
  return switchRecord(state.facts, fact, subject)?.current ?? false;
}

function setSwitch(
  collection: PMap<PMap<SwitchRecord>>,
  name: string,
  subject: string,
  point: SwitchPoint,
): PMap<PMap<SwitchRecord>> {
  const subjects = mapGet(collection, name) ?? emptyMap<SwitchRecord>();
  const record = mapGet(subjects, subject);
  const next: SwitchRecord = {
    current: point.on,
    points: vecInsertSorted(record?.points ?? emptyVec<SwitchPoint>(), point, byAt),
  };
  return mapSet(collection, name, mapSet(subjects, subject, next));
}

/** Inserts a pool point, keeping the running totals right after a backdated insert: O(log n + k). */
function insertPoolPoint(points: PVec<PoolPoint>, point: Omit<PoolPoint, 'total'>): PVec<PoolPoint> {
  const last = vecLast(points);
  if (last === undefined || last.at <= point.at) {
    return vecPush(points, withTotal(point, (last?.total ?? 0) + point.delta));
  }
  const index = vecInsertionIndex(points, point.at, byAt);
  const rest = vecSliceFrom(points, index);
  let total = (index === 0 ? 0 : vecGet(points, index - 1).total) + point.delta;
  const items: PoolPoint[] = [withTotal(point, total)];
  for (const item of rest) {
    total += item.delta;
    items.push(withTotal(item, total));
  }
  return vecReplaceFrom(points, index, items);
}

/**
 * A pool point with its running total. Spelt out rather than spread (a spread copies key by key):
 * the keys in the order the spread gave them, so that serialised states keep their bytes.
 */
function withTotal(point: Omit<PoolPoint, 'total'>, total: number): PoolPoint {
  return { at: point.at, delta: point.delta, pledgeId: point.pledgeId, evidence: point.evidence, total };
}

function addToPool(
  pools: PMap<PVec<PoolPoint>>,
  pool: string,
  point: Omit<PoolPoint, 'total'>,
): PMap<PVec<PoolPoint>> {
  return mapSet(pools, pool, insertPoolPoint(mapGet(pools, pool) ?? emptyVec<PoolPoint>(), point));
}

export function confirmedPool(pledge: Pick<PledgeRecord, 'kind' | 'capability'>): string {
  return pledge.kind === 'logistics' ? `logistics:${pledge.capability}` : pledge.kind;
}

export function fulfilledPool(capability: Capability): string {
  return `logistics-fulfilled:${capability}`;
}

type Changes = Partial<Omit<MissionState, 'format' | 'eventCount'>>;

/**
 * The state after one more event, with `changes`. One object literal of a fixed shape: cheaper
 * than spreading, and it keeps every state on the same hidden class.
 */
function next(state: MissionState, changes: Changes = {}): MissionState {
  return {
    format: 1,
    eventCount: state.eventCount + 1,
    mission: changes.mission === undefined ? state.mission : changes.mission,
    policies: changes.policies ?? state.policies,
    pledges: changes.pledges ?? state.pledges,
    pools: changes.pools ?? state.pools,
    facts: changes.facts ?? state.facts,
    blockers: changes.blockers ?? state.blockers,
    units: changes.units ?? state.units,
    mandates: changes.mandates ?? state.mandates,
    authorisations: changes.authorisations ?? state.authorisations,
  };
}

function withFact(
  state: MissionState,
  fact: FactName,
  on: boolean,
  at: number,
  eventId: string,
  subject = NO_SUBJECT,
) {
  return next(state, { facts: setSwitch(state.facts, fact, subject, { at, on, eventId }) });
}

function withBlocker(
  state: MissionState,
  kind: string,
  subject: string,
  on: boolean,
  at: number,
  eventId: string,
) {
  return next(state, { blockers: setSwitch(state.blockers, kind, subject, { at, on, eventId }) });
}

function newPledge(
  state: MissionState,
  event: EventOf<'LogisticsPledged' | 'FundingPledged' | 'PersonnelPledged'>,
  at: number,
  kind: PledgeKind,
  value: number,
  capability: Capability | null,
): MissionState {
  if (mapGet(state.pledges, event.data.pledgeId) !== undefined) {
    return next(state);
  }
  const record: PledgeRecord = {
    pledgeId: event.data.pledgeId,
    kind,
    pledger: event.data.pledger,
    capability,
    value,
    status: 'pledged',
    pledgedAt: at,
    pledgeEventId: event.id,
    confirmedAt: null,
    confirmEventId: null,
    fulfilledAt: null,
    fulfilEventId: null,
    withdrawnAt: null,
    contributions: [],
  };
  return next(state, { pledges: mapSet(state.pledges, record.pledgeId, record) });
}

/** Epoch milliseconds of an event's instant. Events reach evolve validated (by decide or fromStoredEvent). */
function instantOf(event: MissionEvent, value: string): number {
  const ms = validatedMs(value);
  if (Number.isNaN(ms)) {
    throw new DomainError('invalid-event', { id: event.id, type: event.type, value });
  }
  return ms;
}

/**
 * Folds one event into the state. Total: an event that does not fit (a confirmation of a
 * pledge the state has not seen, as happens when only the events up to some instant are
 * folded) changes nothing but the count.
 */
export function evolve(state: MissionState, event: MissionEvent): MissionState {
  const at = instantOf(event, event.occurredAt);
  switch (event.type) {
    case 'MissionDefined': {
      if (state.mission !== null) {
        return next(state);
      }
      const { data } = event;
      return next(state, {
        mission: {
          missionId: data.missionId,
          name: data.name,
          leadNation: data.leadNation,
          baseCurrency: data.baseCurrency,
          template: data.template,
          definedAt: at,
          eventId: event.id,
        },
        policies: [{ version: 1, effectiveFrom: at, eventId: event.id, policy: data.policy }],
      });
    }
    case 'PolicyAmended': {
      const { version, effectiveFrom, policy } = event.data;
      if (state.policies.some((existing) => existing.version === version)) {
        return next(state);
      }
      const entry: PolicyVersion = {
        version,
        effectiveFrom: instantOf(event, effectiveFrom),
        eventId: event.id,
        policy,
      };
      return next(state, { policies: [...state.policies, entry].sort((a, b) => a.version - b.version) });
    }
    case 'LogisticsPledged':
      return newPledge(state, event, at, 'logistics', 1, event.data.capability);
    case 'FundingPledged':
      return newPledge(state, event, at, 'funding', event.data.baseCurrencyAmount, null);
    case 'PersonnelPledged':
      return newPledge(state, event, at, 'personnel', event.data.officers, null);
    case 'PledgeConfirmed': {
      const pledge = mapGet(state.pledges, event.data.pledgeId);
      if (pledge === undefined || pledge.confirmedAt !== null || pledge.withdrawnAt !== null) {
        return next(state);
      }
      const start = Math.max(pledge.pledgedAt, at);
      const pool = confirmedPool(pledge);
      return next(state, {
        pledges: mapSet(state.pledges, pledge.pledgeId, {
          ...pledge,
          status: 'confirmed',
          confirmedAt: at,
          confirmEventId: event.id,
          contributions: [...pledge.contributions, { pool, start }],
        }),
        pools: addToPool(state.pools, pool, {
          at: start,
          delta: pledge.value,
          pledgeId: pledge.pledgeId,
          evidence: [pledge.pledgeEventId, event.id],
        }),
      });
    }
    case 'PledgeFulfilled': {
      const pledge = mapGet(state.pledges, event.data.pledgeId);
      if (pledge === undefined || pledge.fulfilledAt !== null || pledge.withdrawnAt !== null) {
        return next(state);
      }
      const fulfilled: PledgeRecord = {
        ...pledge,
        status: 'fulfilled',
        fulfilledAt: at,
        fulfilEventId: event.id,
      };
      if (pledge.confirmedAt === null || pledge.confirmEventId === null || pledge.capability === null) {
        return next(state, { pledges: mapSet(state.pledges, pledge.pledgeId, fulfilled) });
      }
      const start = Math.max(pledge.pledgedAt, pledge.confirmedAt, at);
      const pool = fulfilledPool(pledge.capability);
      return next(state, {
        pledges: mapSet(state.pledges, pledge.pledgeId, {
          ...fulfilled,
          contributions: [...pledge.contributions, { pool, start }],
        }),
        pools: addToPool(state.pools, pool, {
          at: start,
          delta: 1,
          pledgeId: pledge.pledgeId,
          evidence: [pledge.pledgeEventId, pledge.confirmEventId, event.id],
        }),
      });
    }
    case 'PledgeWithdrawn': {
      const pledge = mapGet(state.pledges, event.data.pledgeId);
      if (pledge === undefined || pledge.withdrawnAt !== null) {
        return next(state);
      }
      let pools = state.pools;
      for (const { pool, start } of pledge.contributions) {
        // A withdrawal dated before the contribution began cancels it at its start.
        pools = addToPool(pools, pool, {
          at: Math.max(at, start),
          delta: -pledge.value,
          pledgeId: pledge.pledgeId,
          evidence: null,
        });
      }
      return next(state, {
        pledges: mapSet(state.pledges, pledge.pledgeId, { ...pledge, status: 'withdrawn', withdrawnAt: at }),
        pools,
      });
    }
    case 'CouncilAnnounced':
      return withFact(state, 'council-announced', true, at, event.id);
    case 'CouncilApproved':
      return withFact(state, 'council-approved', true, at, event.id);
    case 'CouncilDissolved':
      return withFact(state, 'council-approved', false, at, event.id);
    case 'HostAdministrationStatusRecorded':
      return withFact(state, 'host-administration-viable', event.data.status === 'viable', at, event.id);
    case 'AgreementSigned':
      return withFact(state, 'agreement-signed', true, at, event.id, event.data.agreementId);
    case 'ApprovalRecorded':
      return withFact(
        state,
        event.data.body === 'cabinet' ? 'cabinet-approved' : 'parliament-approved',
        event.data.decision === 'granted',
        at,
        event.id,
        event.data.nation,
      );
    case 'ReconnaissanceTeamPrepared':
      return withFact(state, 'reconnaissance-team-prepared', true, at, event.id);
    case 'ReconnaissanceCompleted':
      return withFact(state, 'reconnaissance-completed', true, at, event.id);
    case 'CourtOrderRecorded':
      return withBlocker(
        state,
        'court-order',
        event.data.reference,
        event.data.effect === 'barring',
        at,
        event.id,
      );
    case 'DeploymentSuspended':
      return withBlocker(state, 'suspension', NO_SUBJECT, true, at, event.id);
    case 'DeploymentResumed':
      return withBlocker(state, 'suspension', NO_SUBJECT, false, at, event.id);
    case 'MandateRecorded': {
      const { data } = event;
      if (mapGet(state.mandates, data.mandateId) !== undefined) {
        return next(state);
      }
      return next(state, {
        mandates: mapSet(state.mandates, data.mandateId, {
          mandateId: data.mandateId,
          issuingBody: data.issuingBody,
          reference: data.reference,
          at,
          validFrom: instantOf(event, data.validFrom),
          validUntil: instantOf(event, data.validUntil),
          eventId: event.id,
        }),
      });
    }
    case 'UnitReadinessReported': {
      const { data } = event;
      const report: UnitReport = {
        at,
        officersReady: data.officersReady,
        status: data.status,
        eventId: event.id,
      };
      const reports = mapGet(state.units, data.unit) ?? emptyVec<UnitReport>();
      return next(state, { units: mapSet(state.units, data.unit, vecInsertSorted(reports, report, byAt)) });
    }
    case 'DeploymentAuthorised': {
      if (mapGet(state.authorisations, event.data.phase) !== undefined) {
        return next(state);
      }
      return next(state, {
        authorisations: mapSet(state.authorisations, event.data.phase, {
          phase: event.data.phase,
          at,
          eventId: event.id,
          overridden: event.data.override !== null,
        }),
      });
    }
    default: {
      const unreachable: never = event;
      throw new DomainError('unknown-event-type', { type: (unreachable as { type: string }).type });
    }
  }
}

/**
 * The instants at which what `event` adds to `state` takes effect: the dated points `evolve`
 * puts in timelines and pools, a mandate's instant and bounds, a policy version's start, an
 * authorisation. An event only ever adds such instants (none moves or goes away), so the first
 * instant after t at which the verdict can change is, after the event, the earlier of the one
 * before it and the first of these after t. Empty for an event `evolve` ignores.
 */
export function eventInstants(state: MissionState, event: MissionEvent): number[] {
  const at = instantOf(event, event.occurredAt);
  switch (event.type) {
    case 'MissionDefined':
      return state.mission === null ? [at] : [];
    case 'PolicyAmended':
      return state.policies.some((existing) => existing.version === event.data.version)
        ? []
        : [instantOf(event, event.data.effectiveFrom)];
    case 'LogisticsPledged':
    case 'FundingPledged':
    case 'PersonnelPledged':
      return [];
    case 'PledgeConfirmed': {
      const pledge = mapGet(state.pledges, event.data.pledgeId);
      if (pledge === undefined || pledge.confirmedAt !== null || pledge.withdrawnAt !== null) {
        return [];
      }
      return [Math.max(pledge.pledgedAt, at)];
    }
    case 'PledgeFulfilled': {
      const pledge = mapGet(state.pledges, event.data.pledgeId);
      if (
        pledge === undefined ||
        pledge.fulfilledAt !== null ||
        pledge.withdrawnAt !== null ||
        pledge.confirmedAt === null ||
        pledge.confirmEventId === null ||
        pledge.capability === null
      ) {
        return [];
      }
      return [Math.max(pledge.pledgedAt, pledge.confirmedAt, at)];
    }
    case 'PledgeWithdrawn': {
      const pledge = mapGet(state.pledges, event.data.pledgeId);
      if (pledge === undefined || pledge.withdrawnAt !== null) {
        return [];
      }
      return pledge.contributions.map(({ start }) => Math.max(at, start));
    }
    case 'MandateRecorded':
      return mapGet(state.mandates, event.data.mandateId) !== undefined
        ? []
        : [at, instantOf(event, event.data.validFrom), instantOf(event, event.data.validUntil)];
    case 'DeploymentAuthorised':
      return mapGet(state.authorisations, event.data.phase) !== undefined ? [] : [at];
    case 'CouncilAnnounced':
    case 'CouncilApproved':
    case 'CouncilDissolved':
    case 'HostAdministrationStatusRecorded':
    case 'AgreementSigned':
    case 'ApprovalRecorded':
    case 'ReconnaissanceTeamPrepared':
    case 'ReconnaissanceCompleted':
    case 'CourtOrderRecorded':
    case 'DeploymentSuspended':
    case 'DeploymentResumed':
    case 'UnitReadinessReported':
      return [at];
    default: {
      const unreachable: never = event;
      throw new DomainError('unknown-event-type', { type: (unreachable as { type: string }).type });
    }
  }
}

/** Folds events into a state, from `initialState()` unless another state is given. */
export function fold(events: Iterable<MissionEvent>, from: MissionState = initialState()): MissionState {
  let state = from;
  for (const event of events) {
    state = evolve(state, event);
  }
  return state;
}

/** JSON text of a state. The state is plain data, so this is JSON.stringify. */
export function serializeState(state: MissionState): string {
  return JSON.stringify(state);
}

/**
 * `serializeState(state)` in parts of about `size` characters, made one at a time (see
 * `jsonParts`): for writing a large state without ever holding its whole text.
 */
export function serializeStateParts(state: MissionState, size: number): Generator<string, void, undefined> {
  return jsonParts(state, size);
}

/** Reads a state written by `serializeState` (or plain JSON.stringify). */
export function deserializeState(json: string): MissionState {
  const value: unknown = JSON.parse(json);
  if (typeof value !== 'object' || value === null || (value as { format?: unknown }).format !== 1) {
    throw new TypeError('not a serialised mission state (format 1)');
  }
  return value as MissionState;
}
