import { DomainError } from './errors.js';
import { toMs } from './instant.js';
import { mapGet, mapValuesUnordered, type PMap } from './pmap.js';
import type { PhaseDefinition, Policy, Precondition, PreconditionKind } from './policy.js';
import { type PVec, vecGet, vecLastIndexAtOrBefore } from './pvec.js';
import {
  fulfilledPool,
  type MissionState,
  NO_SUBJECT,
  type PolicyVersion,
  type PoolPoint,
  type SwitchRecord,
  type UnitReport,
} from './state.js';
import type { PhaseStatus } from './vocabulary.js';

/*
 * The verdict reduced to what a change in it is judged by (`diffVerdicts` looks at nothing
 * else): the policy version in force, each phase's status and which preconditions are met. No
 * evidence and no `missing` sentences, so it costs a few lookups rather than a full evaluation,
 * and it can be evaluated incrementally: given the status of the same mission at an earlier
 * instant, a precondition whose inputs are the same objects (the state is persistent: what an
 * event does not touch stays identical) and that no dated point of those inputs separates from
 * the new instant keeps its result.
 */

export interface PreconditionStatus {
  readonly id: string;
  readonly kind: PreconditionKind;
  readonly title: string;
  readonly met: boolean;
}

export interface PhaseStatusSummary {
  readonly phase: string;
  readonly title: string;
  readonly status: PhaseStatus;
  readonly preconditions: readonly PreconditionStatus[];
}

export interface VerdictStatus {
  /** The evaluated instant (epoch ms). */
  readonly at: number;
  readonly policyVersion: number | null;
  /** As `evaluate` lists them; the same array as the previous status's when nothing differs. */
  readonly phases: readonly PhaseStatusSummary[];
  /** What an incremental evaluation reuses; opaque. */
  readonly memo: StatusMemo | null;
}

/** The state's collections a precondition reads, as bits. */
const FACTS = 1;
const BLOCKERS = 2;
const UNITS = 4;
const POOLS = 8;
const MANDATES = 16;
const AUTHORISATIONS = 32;

interface StatusMemo {
  readonly policy: PolicyVersion;
  readonly facts: MissionState['facts'];
  readonly blockers: MissionState['blockers'];
  readonly units: MissionState['units'];
  readonly pools: MissionState['pools'];
  readonly mandates: MissionState['mandates'];
  readonly authorisations: MissionState['authorisations'];
  /** Per precondition of the plan: met, and the first instant at which that may change. */
  readonly met: readonly boolean[];
  readonly until: readonly number[];
}

interface PlannedPrecondition {
  readonly precondition: Precondition;
  readonly phase: number;
  readonly reads: number;
  /** For a `phase`/`ready` precondition: the index of the phase it waits for, -1 if none. */
  readonly waitsFor: number;
}

interface Plan {
  readonly phases: readonly PhaseDefinition[];
  readonly items: readonly PlannedPrecondition[];
  /** Index of each phase's first precondition in `items`, plus the total at the end. */
  readonly starts: readonly number[];
}

const plans = new WeakMap<Policy, Plan>();

function readsOf(precondition: Precondition): number {
  switch (precondition.kind) {
    case 'fact':
      return FACTS;
    case 'no-blocker':
      return (
        (precondition.blockers.includes('host-administration-collapse') ? FACTS : 0) |
        (precondition.blockers.some((kind) => kind !== 'host-administration-collapse') ? BLOCKERS : 0)
      );
    case 'threshold':
      return precondition.measure === 'officers-ready' ? UNITS : POOLS;
    case 'coverage':
      return POOLS;
    case 'mandate':
      return MANDATES;
    case 'phase':
      return precondition.status === 'authorised' ? AUTHORISATIONS : 0;
    default: {
      const unreachable: never = precondition;
      throw new TypeError(`unknown precondition kind ${(unreachable as { kind: string }).kind}`);
    }
  }
}

function planOf(policy: Policy): Plan {
  const cached = plans.get(policy);
  if (cached !== undefined) {
    return cached;
  }
  const items: PlannedPrecondition[] = [];
  const starts: number[] = [];
  policy.phases.forEach((phase, index) => {
    starts.push(items.length);
    for (const precondition of phase.preconditions) {
      const waitsFor =
        precondition.kind === 'phase' && precondition.status === 'ready'
          ? policy.phases.findIndex((other) => other.id === precondition.phase)
          : -1;
      items.push({ precondition, phase: index, reads: readsOf(precondition), waitsFor });
    }
  });
  starts.push(items.length);
  const plan: Plan = { phases: policy.phases, items, starts };
  plans.set(policy, plan);
  return plan;
}

/**
 * The version in force at t: the highest numbered one with effectiveFrom ≤ t. `policies` is
 * sorted by version (evolve keeps it so), so the newest that qualifies is the first found from
 * the end.
 */
export function policyVersionAt(state: MissionState, t: number): PolicyVersion | undefined {
  const { policies } = state;
  for (let i = policies.length - 1; i >= 0; i--) {
    const version = policies[i] as PolicyVersion;
    if (version.effectiveFrom <= t) {
      return version;
    }
  }
  return undefined;
}

/** Result of one precondition: whether it is met at t, and until when that holds at least. */
let untilOut = Number.POSITIVE_INFINITY;

const byAt = (item: { readonly at: number }): number => item.at;

/** The point of a timeline in force at t (index), noting the next point's instant in `untilOut`. */
function indexAt<T extends { readonly at: number }>(points: PVec<T>, t: number): number {
  const index = vecLastIndexAtOrBefore(points, t, byAt);
  if (index + 1 < points.n) {
    const next = vecGet(points, index + 1).at;
    if (next < untilOut) {
      untilOut = next;
    }
  }
  return index;
}

function switchOnAt(record: SwitchRecord | undefined, t: number): boolean | null {
  if (record === undefined) {
    return null;
  }
  const index = indexAt(record.points, t);
  return index < 0 ? null : vecGet(record.points, index).on;
}

function anySubjectOn(subjects: PMap<SwitchRecord> | undefined, t: number): boolean {
  if (subjects === undefined) {
    return false;
  }
  let on = false;
  for (const record of mapValuesUnordered(subjects)) {
    if (switchOnAt(record, t) === true) {
      on = true;
    }
  }
  return on;
}

function poolTotal(state: MissionState, pool: string, t: number): number {
  const points = mapGet(state.pools, pool) as PVec<PoolPoint> | undefined;
  if (points === undefined) {
    return 0;
  }
  const index = indexAt(points, t);
  return index < 0 ? 0 : vecGet(points, index).total;
}

function officersAt(reports: PVec<UnitReport> | undefined, t: number): number {
  if (reports === undefined) {
    return 0;
  }
  const index = indexAt(reports, t);
  if (index < 0) {
    return 0;
  }
  const report = vecGet(reports, index);
  return report.status === 'stood-down' ? 0 : report.officersReady;
}

function considerUntil(candidate: number, t: number): void {
  if (candidate > t && candidate < untilOut) {
    untilOut = candidate;
  }
}

/** Whether a precondition (other than `phase`/`ready`) is met at t; sets `untilOut`. */
function metAt(state: MissionState, precondition: Precondition, t: number): boolean {
  switch (precondition.kind) {
    case 'fact': {
      const subjects = mapGet(state.facts, precondition.fact);
      if (precondition.subject === undefined) {
        return anySubjectOn(subjects, t);
      }
      return subjects !== undefined && switchOnAt(mapGet(subjects, precondition.subject), t) === true;
    }
    case 'no-blocker': {
      let active = false;
      for (const kind of precondition.blockers) {
        if (kind === 'host-administration-collapse') {
          const viable = mapGet(state.facts, 'host-administration-viable');
          if (viable !== undefined && switchOnAt(mapGet(viable, NO_SUBJECT), t) === false) {
            active = true;
          }
        } else if (anySubjectOn(mapGet(state.blockers, kind), t)) {
          active = true;
        }
      }
      return !active;
    }
    case 'threshold': {
      if (precondition.measure === 'officers-ready') {
        let total = 0;
        if (precondition.units === undefined) {
          for (const reports of mapValuesUnordered(state.units)) {
            total += officersAt(reports, t);
          }
        } else {
          const { units } = precondition;
          for (let i = 0; i < units.length; i++) {
            // A unit named twice counts once, as in evaluate.
            if (units.indexOf(units[i] as string) === i) {
              total += officersAt(mapGet(state.units, units[i] as string), t);
            }
          }
        }
        return total >= precondition.minimum;
      }
      const pool = precondition.measure === 'confirmed-funding' ? 'funding' : 'personnel';
      return poolTotal(state, pool, t) >= precondition.minimum;
    }
    case 'coverage': {
      const fulfilled = precondition.minimumStatus === 'fulfilled';
      let covered = true;
      for (const capability of precondition.capabilities) {
        const pool = fulfilled ? fulfilledPool(capability) : `logistics:${capability}`;
        if (!(poolTotal(state, pool, t) > 0)) {
          covered = false;
        }
      }
      return covered;
    }
    case 'mandate': {
      const body = precondition.issuingBody?.trim().toLowerCase();
      let valid = false;
      for (const mandate of mapValuesUnordered(state.mandates)) {
        if (body !== undefined && mandate.issuingBody.trim().toLowerCase() !== body) {
          continue;
        }
        considerUntil(mandate.at, t);
        considerUntil(mandate.validFrom, t);
        considerUntil(mandate.validUntil, t);
        if (mandate.at <= t && mandate.validFrom <= t && t < mandate.validUntil) {
          valid = true;
        }
      }
      return valid;
    }
    case 'phase': {
      // `ready` is worked out from the other phase's status; only `authorised` lands here.
      const authorisation = mapGet(state.authorisations, precondition.phase);
      if (authorisation === undefined) {
        return false;
      }
      considerUntil(authorisation.at, t);
      return authorisation.at <= t;
    }
    default: {
      const unreachable: never = precondition;
      throw new TypeError(`unknown precondition kind ${(unreachable as { kind: string }).kind}`);
    }
  }
}

function unchanged(memo: StatusMemo, state: MissionState, reads: number): boolean {
  return (
    ((reads & FACTS) === 0 || memo.facts === state.facts) &&
    ((reads & BLOCKERS) === 0 || memo.blockers === state.blockers) &&
    ((reads & UNITS) === 0 || memo.units === state.units) &&
    ((reads & POOLS) === 0 || memo.pools === state.pools) &&
    ((reads & MANDATES) === 0 || memo.mandates === state.mandates) &&
    ((reads & AUTHORISATIONS) === 0 || memo.authorisations === state.authorisations)
  );
}

const NO_PHASES: readonly PhaseStatusSummary[] = Object.freeze([]);

/**
 * The status of the verdict at `at` (epoch ms, or an instant): for every phase of the policy
 * version in force, its status and which preconditions are met, exactly as `evaluate` says.
 * With `previous` (a status of the same mission, from this state or an earlier one, at `at` or
 * before), the preconditions that nothing since can have changed are not evaluated again, and
 * when no flag differs the result shares `previous.phases`.
 */
export function evaluateStatus(
  state: MissionState,
  at: number | string,
  previous?: VerdictStatus | null,
): VerdictStatus {
  if (state.mission === null) {
    throw new DomainError('mission-not-found');
  }
  const t = typeof at === 'number' ? at : toMs(at, 'at');
  if (!Number.isFinite(t)) {
    throw new DomainError('invalid-instant', { field: 'at', value: String(at) });
  }
  const version = policyVersionAt(state, t);
  if (version === undefined) {
    return { at: t, policyVersion: null, phases: NO_PHASES, memo: null };
  }
  const plan = planOf(version.policy);
  const old =
    previous?.memo != null && previous.memo.policy === version && previous.at <= t ? previous.memo : null;
  const count = plan.items.length;
  const met: boolean[] = new Array(count);
  const until: number[] = new Array(count);
  for (let i = 0; i < count; i++) {
    const item = plan.items[i] as PlannedPrecondition;
    if (item.reads === 0) {
      // `phase`/`ready`: from the other phase's status, below.
      met[i] = false;
      until[i] = Number.POSITIVE_INFINITY;
    } else if (old !== null && t < (old.until[i] as number) && unchanged(old, state, item.reads)) {
      met[i] = old.met[i] as boolean;
      until[i] = old.until[i] as number;
    } else {
      untilOut = Number.POSITIVE_INFINITY;
      met[i] = metAt(state, item.precondition, t);
      until[i] = untilOut;
    }
  }
  const statuses: (PhaseStatus | undefined)[] = new Array(plan.phases.length);
  for (let p = 0; p < plan.phases.length; p++) {
    phaseStatus(plan, met, statuses, p);
  }
  const memo: StatusMemo = {
    policy: version,
    facts: state.facts,
    blockers: state.blockers,
    units: state.units,
    pools: state.pools,
    mandates: state.mandates,
    authorisations: state.authorisations,
    met,
    until,
  };
  if (previous != null && sameFlags(plan, met, statuses, version.version, previous)) {
    return { at: t, policyVersion: version.version, phases: previous.phases, memo };
  }
  const phases: PhaseStatusSummary[] = [];
  for (let p = 0; p < plan.phases.length; p++) {
    const phase = plan.phases[p] as PhaseDefinition;
    const preconditions: PreconditionStatus[] = [];
    for (let i = plan.starts[p] as number; i < (plan.starts[p + 1] as number); i++) {
      const { precondition } = plan.items[i] as PlannedPrecondition;
      preconditions.push({
        id: precondition.id,
        kind: precondition.kind,
        title: precondition.title,
        met: met[i] as boolean,
      });
    }
    phases.push({ phase: phase.id, title: phase.title, status: statuses[p] as PhaseStatus, preconditions });
  }
  return { at: t, policyVersion: version.version, phases, memo };
}

/**
 * A phase's status from its met flags, filling in its `phase`/`ready` preconditions from the
 * phases they wait for first (policies have no cycles between phases).
 */
function phaseStatus(
  plan: Plan,
  met: boolean[],
  statuses: (PhaseStatus | undefined)[],
  p: number,
): PhaseStatus {
  const known = statuses[p];
  if (known !== undefined) {
    return known;
  }
  let unmet = 0;
  let blocked = false;
  for (let i = plan.starts[p] as number; i < (plan.starts[p + 1] as number); i++) {
    const item = plan.items[i] as PlannedPrecondition;
    if (item.reads === 0) {
      met[i] = item.waitsFor >= 0 && phaseStatus(plan, met, statuses, item.waitsFor) === 'ready';
    }
    if (!met[i]) {
      unmet++;
      if (item.precondition.kind === 'no-blocker') {
        blocked = true;
      }
    }
  }
  const status: PhaseStatus = blocked ? 'blocked' : unmet > 0 ? 'not-ready' : 'ready';
  statuses[p] = status;
  return status;
}

/** Whether `previous` lists the same phases and preconditions with the same statuses and flags. */
function sameFlags(
  plan: Plan,
  met: readonly boolean[],
  statuses: readonly (PhaseStatus | undefined)[],
  version: number,
  previous: VerdictStatus,
): boolean {
  if (previous.policyVersion !== version || previous.phases.length !== plan.phases.length) {
    return false;
  }
  for (let p = 0; p < plan.phases.length; p++) {
    const before = previous.phases[p] as PhaseStatusSummary;
    const start = plan.starts[p] as number;
    if (
      before.status !== statuses[p] ||
      before.phase !== (plan.phases[p] as PhaseDefinition).id ||
      before.preconditions.length !== (plan.starts[p + 1] as number) - start
    ) {
      return false;
    }
    for (let j = 0; j < before.preconditions.length; j++) {
      const precondition = before.preconditions[j] as PreconditionStatus;
      if (
        precondition.met !== met[start + j] ||
        precondition.id !== (plan.items[start + j] as PlannedPrecondition).precondition.id
      ) {
        return false;
      }
    }
  }
  return true;
}

/** The ids of a phase's unmet preconditions, in policy order. */
export function unmetPreconditions(phase: {
  readonly preconditions: readonly PreconditionStatus[];
}): string[] {
  const out: string[] = [];
  for (const precondition of phase.preconditions) {
    if (!precondition.met) {
      out.push(precondition.id);
    }
  }
  return out;
}
