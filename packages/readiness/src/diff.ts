import type { PreconditionKind } from './policy.js';
import type { PhaseStatus } from './vocabulary.js';

/**
 * What diffVerdicts reads of a verdict: a `MissionVerdict`, or a `VerdictStatus` (whose
 * preconditions have no `missing`).
 */
export interface ComparableVerdict {
  readonly phases: readonly ComparablePhase[];
}
export interface ComparablePhase {
  readonly phase: string;
  readonly title: string;
  readonly status: PhaseStatus;
  readonly preconditions: readonly ComparablePrecondition[];
}
export interface ComparablePrecondition {
  readonly id: string;
  readonly kind: PreconditionKind;
  readonly title: string;
  readonly met: boolean;
  readonly missing?: string | null;
}

export interface PhaseChange {
  readonly phase: string;
  readonly title: string;
  /** Null when the phase did not exist before (a new policy version) or no longer exists. */
  readonly before: PhaseStatus | null;
  readonly after: PhaseStatus | null;
}

export interface PreconditionChange {
  readonly phase: string;
  readonly id: string;
  readonly kind: PreconditionKind;
  readonly title: string;
  /** Whether it was met; null when it did not exist. */
  readonly before: boolean | null;
  readonly after: boolean | null;
  /** What is missing afterwards (null when met or gone). */
  readonly missing: string | null;
}

export interface VerdictDiff {
  readonly phases: PhaseChange[];
  readonly preconditions: PreconditionChange[];
}

/**
 * What changed between two verdicts of the same mission: phases whose status changed and
 * preconditions that became met or unmet (or appeared or vanished with a new policy). Progress
 * that flips nothing ("officers ready 400 of 1,000" → "600 of 1,000") is not a change. Ordered
 * as in `after`, then what only `before` had, in its order.
 */
export function diffVerdicts(before: ComparableVerdict, after: ComparableVerdict): VerdictDiff {
  const phases: PhaseChange[] = [];
  const preconditions: PreconditionChange[] = [];
  const beforePhases = new Map(before.phases.map((phase) => [phase.phase, phase]));
  const afterIds = new Set(after.phases.map((phase) => phase.phase));
  const comparePreconditions = (
    phase: string,
    old: ComparablePhase | undefined,
    next: ComparablePhase | undefined,
  ) => {
    const oldById = new Map((old?.preconditions ?? []).map((p) => [p.id, p]));
    const nextIds = new Set((next?.preconditions ?? []).map((p) => p.id));
    const change = (was: ComparablePrecondition | undefined, now: ComparablePrecondition | undefined) => {
      const shown = (now ?? was) as ComparablePrecondition;
      const metBefore = was?.met ?? null;
      const metAfter = now?.met ?? null;
      if (metBefore !== metAfter) {
        preconditions.push({
          phase,
          id: shown.id,
          kind: shown.kind,
          title: shown.title,
          before: metBefore,
          after: metAfter,
          missing: now?.missing ?? null,
        });
      }
    };
    for (const now of next?.preconditions ?? []) {
      change(oldById.get(now.id), now);
    }
    for (const was of old?.preconditions ?? []) {
      if (!nextIds.has(was.id)) {
        change(was, undefined);
      }
    }
  };
  for (const next of after.phases) {
    const old = beforePhases.get(next.phase);
    if (old?.status !== next.status) {
      phases.push({ phase: next.phase, title: next.title, before: old?.status ?? null, after: next.status });
    }
    comparePreconditions(next.phase, old, next);
  }
  for (const old of before.phases) {
    if (!afterIds.has(old.phase)) {
      phases.push({ phase: old.phase, title: old.title, before: old.status, after: null });
      comparePreconditions(old.phase, old, undefined);
    }
  }
  return { phases, preconditions };
}

/** True when some phase's status or some precondition's met flag differs. */
export function verdictChanged(before: ComparableVerdict, after: ComparableVerdict): boolean {
  const diff = diffVerdicts(before, after);
  return diff.phases.length > 0 || diff.preconditions.length > 0;
}
