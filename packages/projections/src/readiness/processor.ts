import type { RecordedEvent } from '@muster/event-store';
import {
  diffVerdicts,
  evaluate,
  evolve,
  fromStoredEvent,
  initialState,
  isDomainError,
  type MissionEvent,
  type MissionState,
  type MissionVerdict,
  nextChangeAt,
  type PhaseStatus,
  type PhaseVerdict,
  type Policy,
} from '@muster/readiness';
import type { ReadinessChange } from '../change-feed.js';
import { derivedId } from '../change-ids.js';

/**
 * Turns a mission's events, one at a time and in stream order, into the history of its verdict
 * and the change feed. Pure apart from the runtime it updates: the live projection, a rebuild,
 * the audit and the offline export verifier all run this same code, which is what makes their
 * results comparable byte for byte.
 *
 * Time model. A mission's verdict is evaluated at its evaluation instant `t`, which moves forward
 * with record time: to each event's `recordedAt` (never backwards), and to each instant at which
 * the verdict can change with no event (`nextChangeAt`: a mandate expiring, a dated fact or policy
 * taking effect). Before an event is applied, every such instant up to its `recordedAt` is
 * evaluated in order with the state as it was; so the history is a function of the log (and, for
 * the changes after the last event, of how far the clock has gone), whoever computes it.
 */
export interface MissionRuntime {
  missionId: string;
  state: MissionState;
  /** Last stream revision folded; -1 before any. */
  revision: number;
  position: string | null;
  lastRecordedAt: number | null;
  maxRecordedAt: number | null;
  /**
   * The latest occurredAt of any pledge, confirmation, delivery or withdrawal folded: every point
   * of the state's pools sits at one of these instants.
   */
  maxPledgeAt: number | null;
  /** Whether every event so far was recorded at or after the one before it. */
  recordedMonotonic: boolean;
  /** The evaluation instant (epoch ms); null until the mission is defined. */
  evaluatedAt: number | null;
  /** The verdict at `evaluatedAt`. */
  verdict: MissionVerdict | null;
  /** nextChangeAt(state, evaluatedAt), kept exact. */
  nextAt: number | null;
  historySeq: number;
  skippedEvents: number;
  createdPosition: string | null;
  createdRecordedAt: number | null;
}

export type ChangeCause = 'event' | 'time';

export interface HistoryEntry {
  missionId: string;
  /** 1, 2, 3, ... per mission. */
  seq: number;
  phase: string;
  title: string;
  from: PhaseStatus | null;
  to: PhaseStatus | null;
  /** World time of the change: the cause event's occurredAt, or the instant time alone changed it. */
  occurredAt: number;
  /** Record time: the cause event's recordedAt, or that same instant for a change time caused. */
  recordedAt: number;
  /** The instant the verdict was evaluated at (recordedAt, unless the log's clock went backwards). */
  evaluatedAt: number;
  cause: ChangeCause;
  causeEventId: string | null;
  causeEventType: string | null;
  /** The cause event's revision, or for a time-caused change the last revision folded. */
  causeRevision: number | null;
  causePosition: string | null;
  policyVersion: number | null;
  unmetBefore: string[];
  unmetAfter: string[];
  changeId: string;
}

export type ChangeDraft = Omit<ReadinessChange, 'seq'>;

export interface SkippedEvent {
  missionId: string;
  eventId: string;
  revision: number;
  reason: string;
}

export interface ProcessorSink {
  history: HistoryEntry[];
  changes: ChangeDraft[];
  skipped: SkippedEvent[];
}

export function newSink(): ProcessorSink {
  return { history: [], changes: [], skipped: [] };
}

export interface ProcessorOptions {
  /**
   * Evaluate after every event and recompute nextChangeAt from scratch each time, with none of
   * the shortcuts. Slow; the reference the shortcuts are tested against.
   */
  exhaustive?: boolean;
}

export function newRuntime(missionId: string): MissionRuntime {
  return {
    missionId,
    state: initialState(),
    revision: -1,
    position: null,
    lastRecordedAt: null,
    maxRecordedAt: null,
    maxPledgeAt: null,
    recordedMonotonic: true,
    evaluatedAt: null,
    verdict: null,
    nextAt: null,
    historySeq: 0,
    skippedEvents: 0,
    createdPosition: null,
    createdRecordedAt: null,
  };
}

export const MISSION_STREAM_PREFIX = 'mission-';

export function missionIdOfStream(stream: string): string | null {
  return stream.startsWith(MISSION_STREAM_PREFIX) ? stream.slice(MISSION_STREAM_PREFIX.length) : null;
}

const iso = (ms: number): string => new Date(ms).toISOString();
const msOrNull = (instant: string | null): number | null => (instant === null ? null : Date.parse(instant));

export function unmetOf(phase: PhaseVerdict | undefined): string[] {
  return phase === undefined ? [] : phase.preconditions.filter((p) => !p.met).map((p) => p.id);
}

interface PolicyRefs {
  facts: Set<string>;
  hostCollapse: boolean;
  blockers: Set<string>;
  pools: boolean;
  mandate: boolean;
  authorised: boolean;
  allUnits: boolean;
  units: Set<string>;
}

const refsCache = new WeakMap<readonly unknown[], PolicyRefs>();

/** What the mission's policies (every version) look at, to tell events that cannot matter. */
function refsOf(policies: readonly { policy: Policy }[]): PolicyRefs {
  const cached = refsCache.get(policies);
  if (cached) return cached;
  const refs: PolicyRefs = {
    facts: new Set(),
    hostCollapse: false,
    blockers: new Set(),
    pools: false,
    mandate: false,
    authorised: false,
    allUnits: false,
    units: new Set(),
  };
  for (const { policy } of policies) {
    for (const phase of policy.phases) {
      for (const p of phase.preconditions) {
        switch (p.kind) {
          case 'fact':
            refs.facts.add(p.fact);
            break;
          case 'no-blocker':
            for (const kind of p.blockers) {
              if (kind === 'host-administration-collapse') refs.hostCollapse = true;
              else refs.blockers.add(kind);
            }
            break;
          case 'threshold':
            if (p.measure === 'officers-ready') {
              if (p.units === undefined) refs.allUnits = true;
              else for (const unit of p.units) refs.units.add(unit);
            } else refs.pools = true;
            break;
          case 'coverage':
            refs.pools = true;
            break;
          case 'mandate':
            refs.mandate = true;
            break;
          case 'phase':
            if (p.status === 'authorised') refs.authorised = true;
            break;
          default: {
            const unreachable: never = p;
            throw new TypeError(`unknown precondition kind ${(unreachable as { kind: string }).kind}`);
          }
        }
      }
    }
  }
  refsCache.set(policies, refs);
  return refs;
}

/**
 * Whether applying `event` can change the verdict at `t` in any byte. Conservative: true when in
 * doubt. False only for events whose effect the verdict at `t` provably does not read: a new
 * pledge (it counts nowhere until confirmed), anything dated after `t` (every timeline is read at
 * `t`), and facts, blockers, units, pools, mandates or authorisations no policy version looks at.
 */
function mayAffectVerdict(prev: MissionState, next: MissionState, event: MissionEvent, t: number): boolean {
  if (event.type === 'MissionDefined' || event.type === 'PolicyAmended') return true;
  if (Date.parse(event.occurredAt) > t) return false;
  const refs = refsOf(next.policies);
  switch (event.type) {
    case 'LogisticsPledged':
    case 'FundingPledged':
    case 'PersonnelPledged':
      return false;
    case 'PledgeConfirmed':
    case 'PledgeFulfilled':
    case 'PledgeWithdrawn':
      return refs.pools && next.pools !== prev.pools;
    case 'MandateRecorded':
      return refs.mandate && next.mandates !== prev.mandates;
    case 'UnitReadinessReported':
      return refs.allUnits || refs.units.has(event.data.unit);
    case 'CouncilAnnounced':
      return refs.facts.has('council-announced');
    case 'CouncilApproved':
    case 'CouncilDissolved':
      return refs.facts.has('council-approved');
    case 'HostAdministrationStatusRecorded':
      return refs.facts.has('host-administration-viable') || refs.hostCollapse;
    case 'AgreementSigned':
      return refs.facts.has('agreement-signed');
    case 'ApprovalRecorded':
      return refs.facts.has(event.data.body === 'cabinet' ? 'cabinet-approved' : 'parliament-approved');
    case 'ReconnaissanceTeamPrepared':
      return refs.facts.has('reconnaissance-team-prepared');
    case 'ReconnaissanceCompleted':
      return refs.facts.has('reconnaissance-completed');
    case 'CourtOrderRecorded':
      return refs.blockers.has('court-order');
    case 'DeploymentSuspended':
    case 'DeploymentResumed':
      return refs.blockers.has('suspension');
    case 'DeploymentAuthorised':
      return refs.authorised && next.authorisations !== prev.authorisations;
    default: {
      const unreachable: never = event;
      throw new TypeError(`unknown event type ${(unreachable as { type: string }).type}`);
    }
  }
}

/**
 * nextChangeAt(next, t) from nextChangeAt(prev, t), exactly: the candidates nextChangeAt looks at
 * are the points of the state's timelines, mandate bounds and policy start instants; an event adds
 * only the ones it carries. A fact, blocker, unit or authorisation point sits at the event's own
 * instant; a mandate adds its instant and bounds; a policy its start. A pool point sits at the
 * latest of its pledge's instants, so none is later than the latest pledge event folded so far:
 * when that is not after `t`, a pool change adds no candidate. Anything else is recomputed.
 */
function nextAfterEvent(
  current: number | null,
  prev: MissionState,
  next: MissionState,
  event: MissionEvent,
  t: number,
  maxPledgeAt: number | null,
): number | null {
  const full = () => msOrNull(nextChangeAt(next, iso(t)));
  if (next.mission !== prev.mission) return full();
  let candidate = current;
  const consider = (at: number) => {
    if (at > t && (candidate === null || at < candidate)) candidate = at;
  };
  const at = Date.parse(event.occurredAt);
  if (next.policies !== prev.policies) {
    if (event.type !== 'PolicyAmended') return full();
    consider(Date.parse(event.data.effectiveFrom));
  }
  if (next.mandates !== prev.mandates) {
    if (event.type !== 'MandateRecorded') return full();
    consider(at);
    consider(Date.parse(event.data.validFrom));
    consider(Date.parse(event.data.validUntil));
  }
  if (next.pools !== prev.pools && (maxPledgeAt === null || maxPledgeAt > t)) return full();
  if (
    next.facts !== prev.facts ||
    next.blockers !== prev.blockers ||
    next.units !== prev.units ||
    next.authorisations !== prev.authorisations
  ) {
    consider(at);
  }
  return candidate;
}

const PLEDGE_STATUS: Partial<Record<MissionEvent['type'], string>> = {
  LogisticsPledged: 'pledged',
  FundingPledged: 'pledged',
  PersonnelPledged: 'pledged',
  PledgeConfirmed: 'confirmed',
  PledgeFulfilled: 'fulfilled',
  PledgeWithdrawn: 'withdrawn',
};

interface Cause {
  kind: ChangeCause;
  key: string;
  eventId: string | null;
  eventType: string | null;
  revision: number | null;
  position: string | null;
  occurredAt: number;
  recordedAt: number;
  evaluatedAt: number;
}

export class MissionProcessor {
  private readonly exhaustive: boolean;

  constructor(options: ProcessorOptions = {}) {
    this.exhaustive = options.exhaustive ?? false;
  }

  /** Folds one recorded event of the mission's stream (the next revision) into the runtime. */
  apply(rt: MissionRuntime, event: RecordedEvent, sink: ProcessorSink): void {
    const recordedAt = Date.parse(event.recordedAt);
    if (Number.isNaN(recordedAt)) {
      rt.revision = event.revision;
      rt.position = event.position;
      rt.skippedEvents++;
      sink.skipped.push({
        missionId: rt.missionId,
        eventId: event.id,
        revision: event.revision,
        reason: 'invalid-recorded-at',
      });
      return;
    }
    if (rt.evaluatedAt !== null) this.advance(rt, Math.max(rt.evaluatedAt, recordedAt), sink);
    let domain: MissionEvent | null = null;
    let reason = '';
    try {
      domain = fromStoredEvent(event);
    } catch (error) {
      if (!isDomainError(error)) throw error;
      reason = error.code;
    }
    rt.revision = event.revision;
    rt.position = event.position;
    if (rt.lastRecordedAt !== null && recordedAt < rt.lastRecordedAt) rt.recordedMonotonic = false;
    rt.lastRecordedAt = recordedAt;
    rt.maxRecordedAt = rt.maxRecordedAt === null ? recordedAt : Math.max(rt.maxRecordedAt, recordedAt);
    if (domain === null) {
      // An event the domain cannot read (unknown type or version) changes nothing but is counted.
      rt.skippedEvents++;
      sink.skipped.push({ missionId: rt.missionId, eventId: event.id, revision: event.revision, reason });
      return;
    }
    const prev = rt.state;
    const next = evolve(prev, domain);
    rt.state = next;
    const occurredAt = Date.parse(domain.occurredAt);
    if (PLEDGE_STATUS[domain.type] !== undefined) {
      rt.maxPledgeAt = rt.maxPledgeAt === null ? occurredAt : Math.max(rt.maxPledgeAt, occurredAt);
    }
    if (next.mission === null) return;
    const t = Math.max(rt.evaluatedAt ?? recordedAt, recordedAt);
    const cause: Cause = {
      kind: 'event',
      key: event.id,
      eventId: event.id,
      eventType: event.type,
      revision: event.revision,
      position: event.position,
      occurredAt,
      recordedAt,
      evaluatedAt: t,
    };
    if (prev.mission === null || rt.verdict === null) {
      rt.createdPosition = event.position;
      rt.createdRecordedAt = recordedAt;
      const verdict = evaluate(next, iso(t));
      this.record(rt, null, verdict, cause, sink);
      rt.verdict = verdict;
      rt.evaluatedAt = t;
      rt.nextAt = msOrNull(nextChangeAt(next, iso(t)));
    } else {
      if (this.exhaustive || mayAffectVerdict(prev, next, domain, t)) {
        const verdict = evaluate(next, iso(t));
        this.record(rt, rt.verdict, verdict, cause, sink);
        rt.verdict = verdict;
      }
      rt.evaluatedAt = t;
      rt.nextAt = this.exhaustive
        ? msOrNull(nextChangeAt(next, iso(t)))
        : nextAfterEvent(rt.nextAt, prev, next, domain, t, rt.maxPledgeAt);
    }
    const pledgeStatus = PLEDGE_STATUS[domain.type];
    if (pledgeStatus !== undefined && next.pledges !== prev.pledges) {
      const pledgeId = (domain.data as { pledgeId: string }).pledgeId;
      sink.changes.push({
        changeId: derivedId(rt.missionId, 'pledge.changed', pledgeId, cause.key),
        missionId: rt.missionId,
        kind: 'pledge.changed',
        subject: pledgeId,
        payload: { pledgeId, status: pledgeStatus, eventType: domain.type, details: domain.data },
        causeEventId: cause.eventId,
        causePosition: cause.position,
        occurredAt: cause.occurredAt,
        recordedAt: cause.recordedAt,
      });
    }
  }

  /** Records every change time alone causes up to `until` (inclusive), in order. */
  advance(rt: MissionRuntime, until: number, sink: ProcessorSink): void {
    while (rt.nextAt !== null && rt.nextAt <= until && rt.verdict !== null) {
      const at = rt.nextAt;
      const verdict = evaluate(rt.state, iso(at));
      this.record(
        rt,
        rt.verdict,
        verdict,
        {
          kind: 'time',
          key: `at:${at}`,
          eventId: null,
          eventType: null,
          revision: rt.revision,
          position: rt.position,
          occurredAt: at,
          recordedAt: at,
          evaluatedAt: at,
        },
        sink,
      );
      rt.verdict = verdict;
      rt.evaluatedAt = at;
      rt.nextAt = msOrNull(nextChangeAt(rt.state, iso(at)));
    }
  }

  private record(
    rt: MissionRuntime,
    before: MissionVerdict | null,
    after: MissionVerdict,
    cause: Cause,
    sink: ProcessorSink,
  ): void {
    const diff = diffVerdicts(
      before ?? { missionId: rt.missionId, at: after.at, policyVersion: null, phases: [] },
      after,
    );
    if (diff.phases.length === 0 && diff.preconditions.length === 0) return;
    const beforePhases = new Map((before?.phases ?? []).map((p) => [p.phase, p]));
    const afterPhases = new Map(after.phases.map((p) => [p.phase, p]));
    const touched = new Set([...diff.phases.map((p) => p.phase), ...diff.preconditions.map((p) => p.phase)]);
    const ordered = [
      ...after.phases.map((p) => p.phase),
      ...(before?.phases ?? []).map((p) => p.phase).filter((id) => !afterPhases.has(id)),
    ].filter((id) => touched.has(id));
    const common = {
      missionId: rt.missionId,
      causeEventId: cause.eventId,
      causePosition: cause.position,
      occurredAt: cause.occurredAt,
      recordedAt: cause.recordedAt,
    };
    for (const phaseId of ordered) {
      const was = beforePhases.get(phaseId);
      const now = afterPhases.get(phaseId);
      rt.historySeq++;
      const entry: HistoryEntry = {
        missionId: rt.missionId,
        seq: rt.historySeq,
        phase: phaseId,
        title: (now ?? was)?.title ?? phaseId,
        from: was?.status ?? null,
        to: now?.status ?? null,
        occurredAt: cause.occurredAt,
        recordedAt: cause.recordedAt,
        evaluatedAt: cause.evaluatedAt,
        cause: cause.kind,
        causeEventId: cause.eventId,
        causeEventType: cause.eventType,
        causeRevision: cause.revision,
        causePosition: cause.position,
        policyVersion: after.policyVersion,
        unmetBefore: unmetOf(was),
        unmetAfter: unmetOf(now),
        changeId: derivedId(rt.missionId, 'history', phaseId, cause.key),
      };
      sink.history.push(entry);
      if (entry.from !== entry.to) {
        sink.changes.push({
          ...common,
          changeId: derivedId(rt.missionId, 'readiness.changed', phaseId, cause.key),
          kind: 'readiness.changed',
          subject: phaseId,
          payload: {
            phase: phaseId,
            title: entry.title,
            from: entry.from,
            to: entry.to,
            policyVersion: after.policyVersion,
            unmetBefore: entry.unmetBefore,
            unmetAfter: entry.unmetAfter,
            verdict: now ?? null,
            historySeq: entry.seq,
          },
        });
      }
    }
    // The first verdict of a mission is one readiness change per phase, not one per precondition.
    if (before === null) return;
    for (const change of diff.preconditions) {
      sink.changes.push({
        ...common,
        changeId: derivedId(rt.missionId, 'precondition.changed', change.phase, change.id, cause.key),
        kind: 'precondition.changed',
        subject: change.phase,
        payload: {
          phase: change.phase,
          precondition: change.id,
          preconditionKind: change.kind,
          title: change.title,
          before: change.before,
          after: change.after,
          missing: change.missing,
        },
      });
    }
  }
}

/** Folds a whole stream in memory: the reference the audit and the offline verifier compare with. */
export function replayMission(
  missionId: string,
  events: Iterable<RecordedEvent>,
  options: ProcessorOptions & { until?: number } = {},
): { runtime: MissionRuntime; sink: ProcessorSink } {
  const processor = new MissionProcessor(options);
  const runtime = newRuntime(missionId);
  const sink = newSink();
  for (const event of events) processor.apply(runtime, event, sink);
  if (options.until !== undefined) processor.advance(runtime, options.until, sink);
  return { runtime, sink };
}
