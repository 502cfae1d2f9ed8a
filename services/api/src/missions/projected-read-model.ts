import type { Position } from '@muster/event-store';
import type { ProjectionsHandle, ReadinessQueries } from '@muster/projections';
import { evaluate } from '@muster/readiness';
import { ApiError } from '../errors.js';
import type { MissionReadModel, MissionSummary, ReadinessAnswer, ReadinessBasis } from './mission-queries.js';
import type { MissionWriter } from './mission-writer.js';

/**
 * The read side on the projections' read models. "Now" and world-time questions are answered
 * from the writer's state, which is checked against the store's revision and so never behind;
 * record-time and position questions from snapshots plus a short fold. Before reading a read
 * model, the process waits (briefly) until the projections have caught up with its own latest
 * append, so a client reads its writes.
 */
export class ProjectedReadModel implements MissionReadModel {
  private lastPosition: Position | null = null;

  constructor(
    private readonly writer: MissionWriter,
    private readonly queries: ReadinessQueries,
    private readonly projections: ProjectionsHandle,
    private readonly clock: () => Date,
    private readonly readYourWritesMs = 2000,
  ) {}

  /** The writer reports every append; reads wait for the projections to reach the latest. */
  committed(position: Position): void {
    if (this.lastPosition === null || position > this.lastPosition) this.lastPosition = position;
  }

  async caughtUp(): Promise<boolean> {
    if (this.lastPosition === null) return true;
    return this.projections.waitForPosition(this.lastPosition, this.readYourWritesMs);
  }

  async listMissions(page: { after?: string; limit: number; only?: readonly string[] }) {
    await this.caughtUp();
    const found = await this.queries.listMissions(page);
    return found && { missions: found.missions.map(summary), next: found.next };
  }

  async getMission(missionId: string): Promise<MissionSummary | null> {
    await this.caughtUp();
    const stored = await this.queries.getMission(missionId);
    if (stored) return summary(stored);
    // Not in the read model yet (or the projection is behind): the log decides.
    const { state } = await this.writer.current(missionId);
    if (!state.mission) return null;
    return {
      missionId,
      name: state.mission.name,
      leadNation: state.mission.leadNation,
      baseCurrency: state.mission.baseCurrency,
      template: state.mission.template,
      definedAt: new Date(state.mission.definedAt).toISOString(),
    };
  }

  async readiness(missionId: string, basis: ReadinessBasis): Promise<ReadinessAnswer> {
    switch (basis.kind) {
      case 'now':
      case 'asOf': {
        const { state, revision, position } = await this.writer.current(missionId);
        if (!state.mission) throw new ApiError('mission-not-found', `No mission '${missionId}'`);
        const at = basis.kind === 'now' ? this.clock().toISOString() : basis.instant;
        return { basis, revision, position, verdict: evaluate(state, at) };
      }
      case 'knownAt':
      case 'atPosition': {
        await this.caughtUp();
        const verdict =
          basis.kind === 'knownAt'
            ? await this.queries.verdictKnownAt(missionId, basis.instant)
            : await this.queries.verdictAtPosition(missionId, basis.position);
        // A mission known but with no policy in effect yet (defined with a later occurredAt) is
        // answered like asOf answers it: no phases, policyVersion null. Only an unknown one is 404.
        if (!verdict) {
          throw new ApiError(
            'mission-not-found',
            basis.kind === 'knownAt'
              ? `Mission '${missionId}' was not yet known at ${basis.instant}`
              : `Mission '${missionId}' had no events at position ${basis.position}`,
          );
        }
        const { basis: _computed, ...rest } = verdict;
        return { basis, revision: verdict.basis.revision, position: verdict.basis.position, verdict: rest };
      }
      default: {
        const never: never = basis;
        throw new Error(`unknown basis ${String(never)}`);
      }
    }
  }

  async close(): Promise<void> {}
}

/** The API's fields of a stored summary (the read model's row carries more). */
function summary(stored: MissionSummary): MissionSummary {
  return {
    missionId: stored.missionId,
    name: stored.name,
    leadNation: stored.leadNation,
    baseCurrency: stored.baseCurrency,
    template: stored.template,
    definedAt: stored.definedAt,
  };
}
