import type { RecordedEvent } from '@muster/event-store';
import {
  type ComparablePhase,
  type ComparableVerdict,
  diffVerdicts,
  evaluate,
  evaluateStatus,
  eventInstants,
  evolve,
  fromStoredEvent,
  initialState,
  instantMs,
  isDomainError,
  type MissionEvent,
  type MissionState,
  type MissionVerdict,
  nextChangeAfter,
  type PhaseStatus,
  type PhaseVerdict,
  type Policy,
  type VerdictStatus,
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
 *
 * What is evaluated per event is only the verdict's status (`evaluateStatus`: phase statuses and
 * met flags, incrementally), which is all a change is judged by; the full verdict, with its
 * evidence and sentences, is evaluated when something reads it (`verdict`): the change feed when a
 * change is recorded, the verdict rows once per batch.
 */
export class MissionRuntime {
  state: MissionState = initialState();
  /** Last stream revision folded; -1 before any. */
  revision = -1;
  position: string | null = null;
  lastRecordedAt: number | null = null;
  maxRecordedAt: number | null = null;
  /**
   * The latest occurredAt of any pledge, confirmation, delivery or withdrawal folded: every point
   * of the state's pools sits at one of these instants.
   */
  maxPledgeAt: number | null = null;
  /** Whether every event so far was recorded at or after the one before it. */
  recordedMonotonic = true;
  /** The evaluation instant (epoch ms); null until the mission is defined. */
  evaluatedAt: number | null = null;
  /** The verdict's status at `evaluatedAt` (phase statuses and met flags). */
  status: VerdictStatus | null = null;
  /** nextChangeAt(state, evaluatedAt), kept exact. */
  nextAt: number | null = null;
  historySeq = 0;
  skippedEvents = 0;
  createdPosition: string | null = null;
  createdRecordedAt: number | null = null;
  /** Counts the evaluations of the verdict: the verdict rows are rewritten when it moves. */
  verdictSeq = 0;
  /** The instant of the latest evaluation of the verdict. */
  private verdictAt: number | null = null;
  private held: { state: MissionState; at: number; verdict: MissionVerdict } | null = null;

  constructor(readonly missionId: string) {}

  /**
   * The verdict at the instant it was last evaluated at: `evaluate(state, that instant)`. Events
   * folded since then changed nothing it says (they are the ones that cannot affect it), so it is
   * worked out from the current state, once, when asked.
   */
  get verdict(): MissionVerdict | null {
    const at = this.verdictAt;
    if (at === null || this.state.mission === null) return null;
    const held = this.held;
    if (held !== null && held.state === this.state && held.at === at) return held.verdict;
    const verdict = evaluate(this.state, iso(at));
    this.held = { state: this.state, at, verdict };
    return verdict;
  }

  /** Notes an evaluation of the verdict at `at`, with the full verdict when it is already known. */
  evaluated(at: number, verdict?: MissionVerdict): void {
    this.verdictAt = at;
    this.verdictSeq++;
    this.held = verdict === undefined ? null : { state: this.state, at, verdict };
  }
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
  /** Whether change-feed drafts are wanted (a rebuild never writes the feed). */
  collectChanges: boolean;
}

export function newSink(options: { changes?: boolean } = {}): ProcessorSink {
  return { history: [], changes: [], skipped: [], collectChanges: options.changes ?? true };
}

export interface ProcessorOptions {
  /**
   * Evaluate after every event and recompute nextChangeAt from scratch each time, with none of
   * the shortcuts. Slow; the reference the shortcuts are tested against.
   */
  exhaustive?: boolean;
}

export function newRuntime(missionId: string): MissionRuntime {
  return new MissionRuntime(missionId);
}

export const MISSION_STREAM_PREFIX = 'mission-';

export function missionIdOfStream(stream: string): string | null {
  return stream.startsWith(MISSION_STREAM_PREFIX) ? stream.slice(MISSION_STREAM_PREFIX.length) : null;
}

const iso = (ms: number): string => new Date(ms).toISOString();

export function unmetOf(phase: ComparablePhase | undefined): string[] {
  const out: string[] = [];
  if (phase !== undefined) for (const p of phase.preconditions) if (!p.met) out.push(p.id);
  return out;
}

/** A full verdict seen as a status, for the exhaustive reference. */
const statusOf = (verdict: MissionVerdict, at: number): VerdictStatus => ({
  at,
  policyVersion: verdict.policyVersion,
  phases: verdict.phases,
  memo: null,
});

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
function mayAffectVerdict(
  prev: MissionState,
  next: MissionState,
  event: MissionEvent,
  occurredAt: number,
  t: number,
): boolean {
  if (event.type === 'MissionDefined' || event.type === 'PolicyAmended') return true;
  if (occurredAt > t) return false;
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
 * nextChangeAt(next, t) from nextChangeAt(prev, t), exactly: an event only adds candidates (the
 * instants `eventInstants` lists), never moves or removes one.
 */
function nextAfterEvent(
  current: number | null,
  prev: MissionState,
  event: MissionEvent,
  t: number,
): number | null {
  let next = current;
  for (const at of eventInstants(prev, event)) {
    if (at > t && (next === null || at < next)) next = at;
  }
  return next;
}

const PLEDGE_STATUS: Partial<Record<MissionEvent['type'], string>> = {
  LogisticsPledged: 'pledged',
  FundingPledged: 'pledged',
  PersonnelPledged: 'pledged',
  PledgeConfirmed: 'confirmed',
  PledgeFulfilled: 'fulfilled',
  PledgeWithdrawn: 'withdrawn',
};

/** The full verdict at t, evaluated only if a recorded change needs it. */
interface LazyVerdict {
  readonly state: MissionState;
  readonly t: number;
  verdict: MissionVerdict | undefined;
}

function fullVerdict(lazy: LazyVerdict): MissionVerdict {
  lazy.verdict ??= evaluate(lazy.state, iso(lazy.t));
  return lazy.verdict;
}

interface Cause {
  kind: ChangeCause;
  key: string;
  eventId: string | null;
  eventType: string | null;
  revision: number | null;
  /** The cause event's hash; null when time caused the change. */
  hash: string | null;
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
    const recordedAt = instantMs(event.recordedAt);
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
    // The reference keeps the full verdict before the event to diff against.
    const before = this.exhaustive && rt.status !== null ? rt.verdict : null;
    const next = evolve(prev, domain);
    rt.state = next;
    const occurredAt = instantMs(domain.occurredAt);
    const pledgeStatus = PLEDGE_STATUS[domain.type];
    if (pledgeStatus !== undefined) {
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
      hash: event.hash,
      position: event.position,
      occurredAt,
      recordedAt,
      evaluatedAt: t,
    };
    if (prev.mission === null || rt.status === null) {
      rt.createdPosition = event.position;
      rt.createdRecordedAt = recordedAt;
      this.evaluate(rt, null, null, t, cause, sink);
      rt.nextAt = nextChangeAfter(next, t);
    } else {
      if (this.exhaustive || mayAffectVerdict(prev, next, domain, occurredAt, t)) {
        this.evaluate(rt, rt.status, before, t, cause, sink);
      }
      rt.evaluatedAt = t;
      rt.nextAt = this.exhaustive ? nextChangeAfter(next, t) : nextAfterEvent(rt.nextAt, prev, domain, t);
    }
    if (pledgeStatus !== undefined && sink.collectChanges && next.pledges !== prev.pledges) {
      const pledgeId = (domain.data as { pledgeId: string }).pledgeId;
      sink.changes.push({
        changeId: derivedId(rt.missionId, 'pledge.changed', pledgeId, cause.key),
        missionId: rt.missionId,
        kind: 'pledge.changed',
        subject: pledgeId,
        payload: { pledgeId, status: pledgeStatus, eventType: domain.type, details: domain.data },
        causeEventId: cause.eventId,
        causeRevision: cause.revision,
        causeHash: cause.hash,
        causePosition: cause.position,
        occurredAt: cause.occurredAt,
        recordedAt: cause.recordedAt,
      });
    }
  }

  /**
   * Evaluates the verdict at t (its status; in the reference, the full verdict), records what
   * changed since `status`, and makes t the evaluation instant.
   */
  private evaluate(
    rt: MissionRuntime,
    status: VerdictStatus | null,
    before: MissionVerdict | null,
    t: number,
    cause: Cause,
    sink: ProcessorSink,
  ): void {
    if (this.exhaustive) {
      const verdict = evaluate(rt.state, iso(t));
      this.record(rt, status === null ? null : before, verdict, { state: rt.state, t, verdict }, cause, sink);
      rt.status = statusOf(verdict, t);
      rt.evaluatedAt = t;
      rt.evaluated(t, verdict);
      return;
    }
    const next = evaluateStatus(rt.state, t, status);
    const full: LazyVerdict = { state: rt.state, t, verdict: undefined };
    if (status === null || next.phases !== status.phases || next.policyVersion !== status.policyVersion) {
      this.record(rt, status, next, full, cause, sink);
    }
    rt.status = next;
    rt.evaluatedAt = t;
    rt.evaluated(t, full.verdict);
  }

  /** Records every change time alone causes up to `until` (inclusive), in order. */
  advance(rt: MissionRuntime, until: number, sink: ProcessorSink): void {
    while (rt.nextAt !== null && rt.nextAt <= until && rt.status !== null) {
      const at = rt.nextAt;
      const before = this.exhaustive ? rt.verdict : null;
      this.evaluate(
        rt,
        rt.status,
        before,
        at,
        {
          kind: 'time',
          key: `at:${at}`,
          eventId: null,
          eventType: null,
          revision: rt.revision,
          hash: null,
          position: rt.position,
          occurredAt: at,
          recordedAt: at,
          evaluatedAt: at,
        },
        sink,
      );
      rt.nextAt = nextChangeAfter(rt.state, at);
    }
  }

  private record(
    rt: MissionRuntime,
    before: ComparableVerdict | null,
    after: ComparableVerdict & { policyVersion: number | null },
    full: LazyVerdict,
    cause: Cause,
    sink: ProcessorSink,
  ): void {
    const diff = diffVerdicts(before ?? { phases: [] }, after);
    if (diff.phases.length === 0 && diff.preconditions.length === 0) return;
    const beforePhases = new Map<string, ComparablePhase>((before?.phases ?? []).map((p) => [p.phase, p]));
    const afterPhases = new Map<string, ComparablePhase>(after.phases.map((p) => [p.phase, p]));
    const touched = new Set([...diff.phases.map((p) => p.phase), ...diff.preconditions.map((p) => p.phase)]);
    const ordered = [
      ...after.phases.map((p) => p.phase),
      ...(before?.phases ?? []).map((p) => p.phase).filter((id) => !afterPhases.has(id)),
    ].filter((id) => touched.has(id));
    const common = {
      missionId: rt.missionId,
      causeEventId: cause.eventId,
      causeRevision: cause.revision,
      causeHash: cause.hash,
      causePosition: cause.position,
      occurredAt: cause.occurredAt,
      recordedAt: cause.recordedAt,
    };
    const fullPhase = (id: string): PhaseVerdict | undefined =>
      fullVerdict(full).phases.find((p) => p.phase === id);
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
      if (sink.collectChanges && entry.from !== entry.to) {
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
            verdict: now === undefined ? null : (fullPhase(phaseId) ?? null),
            historySeq: entry.seq,
          },
        });
      }
    }
    // The first verdict of a mission is one readiness change per phase, not one per precondition.
    if (before === null || !sink.collectChanges) return;
    for (const change of diff.preconditions) {
      const missing =
        change.after === true || change.after === null
          ? null
          : (fullPhase(change.phase)?.preconditions.find((p) => p.id === change.id)?.missing ?? null);
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
          missing,
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
