import { DomainError } from './errors.js';
import { groupDigits } from './format.js';
import { canonicalInstant, toIso, toMs } from './instant.js';
import { mapEntries, mapGet, mapValues, mapValuesUnordered, type PMap } from './pmap.js';
import type {
  CoveragePrecondition,
  FactPrecondition,
  MandatePrecondition,
  NoBlockerPrecondition,
  PhaseDefinition,
  PhasePrecondition,
  Precondition,
  PreconditionKind,
  ThresholdPrecondition,
} from './policy.js';
import { type PVec, vecChunk, vecGet, vecLastIndexAtOrBefore } from './pvec.js';
import {
  fulfilledPool,
  type MissionInfo,
  type MissionState,
  NO_SUBJECT,
  type PolicyVersion,
  type PoolPoint,
  type SwitchPoint,
  type SwitchRecord,
  switchAt,
} from './state.js';
import { policyVersionAt } from './status.js';
import { FACT_LABELS, type PhaseStatus } from './vocabulary.js';

export interface PreconditionResult {
  readonly id: string;
  readonly kind: PreconditionKind;
  readonly title: string;
  readonly met: boolean;
  /** Ids of the events the result rests on, earliest first; at most MAX_EVIDENCE. */
  readonly evidence: string[];
  /** What is missing, in words, when unmet; null when met. */
  readonly missing: string | null;
}

export interface PhaseVerdict {
  readonly phase: string;
  readonly title: string;
  readonly status: PhaseStatus;
  readonly preconditions: PreconditionResult[];
}

export interface MissionVerdict {
  readonly missionId: string;
  /** The evaluated instant, canonical UTC. */
  readonly at: string;
  /** The policy version in force at `at`; null (and no phases) before the mission was defined. */
  readonly policyVersion: number | null;
  readonly phases: PhaseVerdict[];
}

/** Evidence lists are capped so a verdict stays small whatever the number of pledges. */
export const MAX_EVIDENCE = 50;

const byAt = (item: { readonly at: number }): number => item.at;

export function policyInForce(state: MissionState, t: number): PolicyVersion | undefined {
  return policyVersionAt(state, t);
}

function requireMission(state: MissionState): MissionInfo {
  if (state.mission === null) {
    throw new DomainError('mission-not-found');
  }
  return state.mission;
}

interface Context {
  readonly state: MissionState;
  readonly baseCurrency: string;
  readonly t: number;
  readonly phases: readonly PhaseDefinition[];
  readonly verdicts: Map<string, PhaseVerdict>;
}

/**
 * The verdict at `at`, under the policy version in force at `at`, from the events that occurred
 * at or before `at` by what the state knows. Pure and deterministic: the same state and instant
 * give the same bytes under JSON.stringify.
 */
export function evaluate(state: MissionState, at: string): MissionVerdict {
  const { missionId, baseCurrency } = requireMission(state);
  const iso = canonicalInstant(at, 'at');
  const t = toMs(iso, 'at');
  const policy = policyInForce(state, t);
  if (policy === undefined) {
    return { missionId, at: iso, policyVersion: null, phases: [] };
  }
  const context: Context = { state, baseCurrency, t, phases: policy.policy.phases, verdicts: new Map() };
  return {
    missionId,
    at: iso,
    policyVersion: policy.version,
    phases: policy.policy.phases.map((phase) => phaseVerdict(context, phase)),
  };
}

function phaseVerdict(context: Context, phase: PhaseDefinition): PhaseVerdict {
  const cached = context.verdicts.get(phase.id);
  if (cached !== undefined) {
    return cached;
  }
  const preconditions = phase.preconditions.map((precondition) =>
    evaluatePrecondition(context, precondition),
  );
  const unmet = preconditions.filter((result) => !result.met);
  const status: PhaseStatus = unmet.some((result) => result.kind === 'no-blocker')
    ? 'blocked'
    : unmet.length > 0
      ? 'not-ready'
      : 'ready';
  const verdict: PhaseVerdict = { phase: phase.id, title: phase.title, status, preconditions };
  context.verdicts.set(phase.id, verdict);
  return verdict;
}

/** `missing` is only worked out (dates and numbers formatted) for an unmet precondition. */
function result(
  precondition: Precondition,
  met: boolean,
  evidence: string[],
  missing: () => string,
): PreconditionResult {
  return {
    id: precondition.id,
    kind: precondition.kind,
    title: precondition.title,
    met,
    evidence: evidence.length > MAX_EVIDENCE ? evidence.slice(0, MAX_EVIDENCE) : evidence,
    missing: met ? null : missing(),
  };
}

function evaluatePrecondition(context: Context, precondition: Precondition): PreconditionResult {
  switch (precondition.kind) {
    case 'fact':
      return evaluateFact(context, precondition);
    case 'no-blocker':
      return evaluateNoBlocker(context, precondition);
    case 'threshold':
      return evaluateThreshold(context, precondition);
    case 'coverage':
      return evaluateCoverage(context, precondition);
    case 'mandate':
      return evaluateMandate(context, precondition);
    case 'phase':
      return evaluatePhase(context, precondition);
    default: {
      const unreachable: never = precondition;
      throw new TypeError(`unknown precondition kind ${(unreachable as { kind: string }).kind}`);
    }
  }
}

function subjectsOf(collection: PMap<PMap<SwitchRecord>>, name: string): [string, SwitchRecord][] {
  const subjects = mapGet(collection, name);
  return subjects === undefined ? [] : mapEntries(subjects);
}

function evaluateFact(context: Context, precondition: FactPrecondition): PreconditionResult {
  const label = FACT_LABELS[precondition.fact];
  const candidates = subjectsOf(context.state.facts, precondition.fact).filter(
    ([subject]) => precondition.subject === undefined || subject === precondition.subject,
  );
  const evidence: string[] = [];
  let lastRevoked: SwitchPoint | undefined;
  for (const [, record] of candidates) {
    const point = switchAt(record, context.t);
    if (point?.on) {
      evidence.push(point.eventId);
    } else if (point !== undefined && (lastRevoked === undefined || point.at > lastRevoked.at)) {
      lastRevoked = point;
    }
  }
  const what = precondition.subject === undefined ? label : `${label} (${precondition.subject})`;
  const revoked = lastRevoked;
  // Unmet after a revocation: the revoking event (a dissolution, a collapse, a revoked approval)
  // is what a reader looks up to see why, so it is the evidence.
  const met = evidence.length > 0;
  if (!met && revoked !== undefined) {
    evidence.push(revoked.eventId);
  }
  return result(precondition, met, evidence, () =>
    revoked === undefined ? `no ${what} recorded` : `${what} no longer holds since ${toIso(revoked.at)}`,
  );
}

interface ActiveBlocker {
  readonly description: string;
  readonly eventId: string;
}

function evaluateNoBlocker(context: Context, precondition: NoBlockerPrecondition): PreconditionResult {
  const active: ActiveBlocker[] = [];
  const lifted: string[] = [];
  const visit = (
    point: SwitchPoint | undefined,
    activeWhen: boolean,
    describe: (since: string) => string,
  ) => {
    if (point === undefined) {
      return;
    }
    if (point.on === activeWhen) {
      active.push({ description: describe(toIso(point.at)), eventId: point.eventId });
    } else {
      lifted.push(point.eventId);
    }
  };
  for (const kind of precondition.blockers) {
    switch (kind) {
      case 'court-order':
        for (const [reference, record] of subjectsOf(context.state.blockers, 'court-order')) {
          visit(
            switchAt(record, context.t),
            true,
            (since) => `court order ${reference} barring deployment since ${since}`,
          );
        }
        break;
      case 'suspension':
        for (const [, record] of subjectsOf(context.state.blockers, 'suspension')) {
          visit(
            switchAt(record, context.t),
            true,
            (since) => `deployment suspended by the lead nation since ${since}`,
          );
        }
        break;
      case 'host-administration-collapse': {
        const subjects = mapGet(context.state.facts, 'host-administration-viable');
        const record = subjects === undefined ? undefined : mapGet(subjects, NO_SUBJECT);
        visit(switchAt(record, context.t), false, (since) => `host administration collapsed since ${since}`);
        break;
      }
      default: {
        const unreachable: never = kind;
        throw new TypeError(`unknown blocker kind ${String(unreachable)}`);
      }
    }
  }
  const met = active.length === 0;
  const evidence = met ? lifted : active.map((blocker) => blocker.eventId);
  return result(
    precondition,
    met,
    evidence,
    () => `active blocker: ${active.map((blocker) => blocker.description).join('; ')}`,
  );
}

function poolTotalAt(points: PVec<PoolPoint> | undefined, t: number): number {
  if (points === undefined) {
    return 0;
  }
  const index = vecLastIndexAtOrBefore(points, t, byAt);
  return index < 0 ? 0 : vecGet(points, index).total;
}

/**
 * The evidence of the contributions counting at t: the latest ones first found, until `enough`
 * is reached or MAX_EVIDENCE ids are collected, then listed earliest first. Scanning back from t
 * pairs each end (a withdrawal) with its start in the pool itself, so recent contributions, the
 * ones still counting, are found without visiting the whole history.
 */
function poolEvidence(context: Context, points: PVec<PoolPoint> | undefined, enough: number): string[] {
  if (points === undefined) {
    return [];
  }
  const found: (readonly string[])[] = [];
  let ended: Set<string> | undefined;
  let sum = 0;
  let ids = 0;
  let index = vecLastIndexAtOrBefore(points, context.t, byAt);
  while (index >= 0 && sum < enough && ids < MAX_EVIDENCE) {
    const { items, at } = vecChunk(points, index);
    for (let j = at; j >= 0 && sum < enough && ids < MAX_EVIDENCE; j--) {
      const point = items[j] as PoolPoint;
      if (point.evidence === null) {
        ended ??= new Set();
        ended.add(point.pledgeId);
      } else if (ended === undefined || !ended.has(point.pledgeId)) {
        found.push(point.evidence);
        ids += point.evidence.length;
        sum += point.delta;
      }
    }
    index -= at + 1;
  }
  const evidence: string[] = [];
  for (let k = found.length - 1; k >= 0; k--) {
    for (const id of found[k] as readonly string[]) {
      evidence.push(id);
    }
  }
  return evidence;
}

function evaluateThreshold(context: Context, precondition: ThresholdPrecondition): PreconditionResult {
  const { minimum } = precondition;
  switch (precondition.measure) {
    case 'officers-ready': {
      const units = precondition.units ?? mapEntries(context.state.units).map(([unit]) => unit);
      let total = 0;
      const evidence: string[] = [];
      for (const [i, unit] of units.entries()) {
        // The policy schema lets a unit be named twice; its officers are still counted once.
        if (units.indexOf(unit) !== i) {
          continue;
        }
        const reports = mapGet(context.state.units, unit);
        if (reports === undefined) {
          continue;
        }
        const index = vecLastIndexAtOrBefore(reports, context.t, byAt);
        if (index < 0) {
          continue;
        }
        const report = vecGet(reports, index);
        if (report.status !== 'stood-down') {
          total += report.officersReady;
          evidence.push(report.eventId);
        }
      }
      return result(
        precondition,
        total >= minimum,
        evidence,
        () => `officers ready ${groupDigits(total)} of ${groupDigits(minimum)}`,
      );
    }
    case 'confirmed-funding':
    case 'confirmed-personnel': {
      const pool = precondition.measure === 'confirmed-funding' ? 'funding' : 'personnel';
      const points = mapGet(context.state.pools, pool);
      const total = poolTotalAt(points, context.t);
      const evidence = poolEvidence(context, points, minimum);
      return result(precondition, total >= minimum, evidence, () =>
        pool === 'funding'
          ? `confirmed funding ${groupDigits(total)} of ${groupDigits(minimum)} ${context.baseCurrency}`
          : `confirmed personnel ${groupDigits(total)} of ${groupDigits(minimum)}`,
      );
    }
    default: {
      const unreachable: never = precondition.measure;
      throw new TypeError(`unknown measure ${String(unreachable)}`);
    }
  }
}

function evaluateCoverage(context: Context, precondition: CoveragePrecondition): PreconditionResult {
  const fulfilled = precondition.minimumStatus === 'fulfilled';
  const evidence: string[] = [];
  const uncovered: string[] = [];
  for (const capability of precondition.capabilities) {
    const pool = fulfilled ? fulfilledPool(capability) : `logistics:${capability}`;
    const points = mapGet(context.state.pools, pool);
    if (poolTotalAt(points, context.t) > 0) {
      evidence.push(...poolEvidence(context, points, 1));
    } else {
      uncovered.push(capability);
    }
  }
  return result(
    precondition,
    uncovered.length === 0,
    evidence,
    () => `no ${fulfilled ? 'fulfilled' : 'confirmed'} ${uncovered.join(', ')}`,
  );
}

function evaluateMandate(context: Context, precondition: MandatePrecondition): PreconditionResult {
  const body = precondition.issuingBody?.trim().toLowerCase();
  const known = mapValues(context.state.mandates).filter(
    (mandate) =>
      mandate.at <= context.t && (body === undefined || mandate.issuingBody.trim().toLowerCase() === body),
  );
  const valid = known.filter((mandate) => mandate.validFrom <= context.t && context.t < mandate.validUntil);
  if (valid.length > 0) {
    return result(
      precondition,
      true,
      valid.map((mandate) => mandate.eventId),
      () => '',
    );
  }
  // Unmet: the mandate the sentence names (the next to start, else the last to expire) is the
  // evidence, so a reader can open the resolution that lapsed or is still to come.
  const pending = known
    .filter((mandate) => mandate.validFrom > context.t)
    .sort((a, b) => a.validFrom - b.validFrom)[0];
  const expired =
    pending === undefined
      ? known
          .filter((mandate) => mandate.validUntil <= context.t)
          .sort((a, b) => b.validUntil - a.validUntil)[0]
      : undefined;
  const named = pending ?? expired;
  return result(precondition, false, named === undefined ? [] : [named.eventId], () => {
    if (pending !== undefined) {
      return `mandate ${pending.reference} valid only from ${toIso(pending.validFrom)}`;
    }
    if (expired !== undefined) {
      return `mandate ${expired.reference} expired at ${toIso(expired.validUntil)}`;
    }
    return `no mandate${precondition.issuingBody === undefined ? '' : ` from ${precondition.issuingBody}`} recorded`;
  });
}

function evaluatePhase(context: Context, precondition: PhasePrecondition): PreconditionResult {
  if (precondition.status === 'authorised') {
    const authorisation = mapGet(context.state.authorisations, precondition.phase);
    const met = authorisation !== undefined && authorisation.at <= context.t;
    return result(
      precondition,
      met,
      met ? [authorisation.eventId] : [],
      () => `deployment of phase ${precondition.phase} not authorised`,
    );
  }
  const target = context.phases.find((phase) => phase.id === precondition.phase);
  if (target === undefined) {
    return result(precondition, false, [], () => `phase ${precondition.phase} is not in the policy`);
  }
  const verdict = phaseVerdict(context, target);
  return result(
    precondition,
    verdict.status === 'ready',
    [],
    () => `phase ${precondition.phase} is ${verdict.status}`,
  );
}

/**
 * The first instant after `at` at which the verdict can change with no new event: a fact,
 * report, pledge or authorisation dated later than `at`, a mandate starting or ending, a
 * policy version taking effect. Null when nothing is scheduled. Conservative: the verdict may
 * turn out unchanged at that instant, but it never changes before it.
 */
export function nextChangeAt(state: MissionState, at: string): string | null {
  requireMission(state);
  const next = nextChangeAfter(state, toMs(at, 'at'));
  return next === null ? null : toIso(next);
}

/** The first point of a timeline dated after t, or +Infinity. */
function firstAfter(points: PVec<{ readonly at: number }>, t: number): number {
  const index = vecLastIndexAtOrBefore(points, t, byAt) + 1;
  return index < points.n ? vecGet(points, index).at : Number.POSITIVE_INFINITY;
}

function firstSwitchAfter(collection: PMap<PMap<SwitchRecord>>, t: number, next: number): number {
  let found = next;
  for (const subjects of mapValuesUnordered(collection)) {
    for (const record of mapValuesUnordered(subjects)) {
      const candidate = firstAfter(record.points, t);
      if (candidate < found) {
        found = candidate;
      }
    }
  }
  return found;
}

/** `nextChangeAt` in epoch milliseconds. */
export function nextChangeAfter(state: MissionState, t: number): number | null {
  requireMission(state);
  let next = Number.POSITIVE_INFINITY;
  for (const version of state.policies) {
    if (version.effectiveFrom > t && version.effectiveFrom < next) {
      next = version.effectiveFrom;
    }
  }
  next = firstSwitchAfter(state.facts, t, next);
  next = firstSwitchAfter(state.blockers, t, next);
  for (const reports of mapValuesUnordered(state.units)) {
    const candidate = firstAfter(reports, t);
    if (candidate < next) {
      next = candidate;
    }
  }
  for (const points of mapValuesUnordered(state.pools)) {
    const candidate = firstAfter(points, t);
    if (candidate < next) {
      next = candidate;
    }
  }
  for (const mandate of mapValuesUnordered(state.mandates)) {
    for (const candidate of [mandate.at, mandate.validFrom, mandate.validUntil]) {
      if (candidate > t && candidate < next) {
        next = candidate;
      }
    }
  }
  for (const authorisation of mapValuesUnordered(state.authorisations)) {
    if (authorisation.at > t && authorisation.at < next) {
      next = authorisation.at;
    }
  }
  return Number.isFinite(next) ? next : null;
}
