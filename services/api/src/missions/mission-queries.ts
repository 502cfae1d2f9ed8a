import {
  type EventStore,
  type RecordedEvent,
  StreamNotFoundError,
  type Subscription,
} from '@muster/event-store';
import {
  evaluate,
  evolve,
  fromStoredEvent,
  initialState,
  type MissionState,
  type MissionVerdict,
  missionStreamName,
} from '@muster/readiness';
import { ApiError } from '../errors.js';
import type { MissionWriter } from './mission-writer.js';

export interface MissionSummary {
  missionId: string;
  name: string;
  leadNation: string;
  baseCurrency: string;
  template: string | null;
  definedAt: string;
}

export type ReadinessBasis =
  | { kind: 'now' }
  | { kind: 'asOf'; instant: string }
  | { kind: 'knownAt'; instant: string }
  | { kind: 'atPosition'; position: string };

export interface ReadinessAnswer {
  basis: ReadinessBasis;
  /** Revision of the last event the answer rests on (null: none). */
  revision: number | null;
  position: string | null;
  verdict: MissionVerdict;
}

/** The read side the routes need; the projections package answers it from read models. */
export interface MissionReadModel {
  listMissions(): Promise<MissionSummary[]>;
  getMission(missionId: string): Promise<MissionSummary | null>;
  readiness(missionId: string, basis: ReadinessBasis): Promise<ReadinessAnswer>;
  close(): Promise<void>;
}

/**
 * Answers the read side by folding the mission stream (through the writer's cached state for
 * "now" and world-time questions). Record-time and position questions fold the stream up to the
 * limit. A directory of missions is kept by following `MissionDefined` events.
 */
export class FoldingReadModel implements MissionReadModel {
  private readonly missions = new Map<string, MissionSummary>();
  private subscription: Subscription | null = null;

  constructor(
    private readonly store: EventStore,
    private readonly writer: MissionWriter,
    private readonly clock: () => Date,
  ) {}

  async start(): Promise<void> {
    const subscription = this.store.subscribeToAll({
      fromPosition: 'start',
      filter: { streamPrefixes: ['mission-'], eventTypes: ['MissionDefined'] },
    });
    this.subscription = subscription;
    const iterator = subscription[Symbol.asyncIterator]();
    // Catch up before answering, then follow in the background.
    for (;;) {
      const next = await iterator.next();
      if (next.done) return;
      if (next.value.kind === 'event') this.remember(next.value.event);
      if (next.value.kind === 'caught-up') break;
    }
    void (async () => {
      try {
        for (;;) {
          const next = await iterator.next();
          if (next.done) return;
          if (next.value.kind === 'event') this.remember(next.value.event);
        }
      } catch {
        // The directory only lists; a broken subscription leaves it as it was.
      }
    })();
  }

  private remember(event: RecordedEvent): void {
    const data = event.data as {
      missionId: string;
      name: string;
      leadNation: string;
      baseCurrency?: string;
      template?: string | null;
    };
    this.missions.set(data.missionId, {
      missionId: data.missionId,
      name: data.name,
      leadNation: data.leadNation,
      baseCurrency: data.baseCurrency ?? 'USD',
      template: data.template ?? null,
      definedAt: event.metadata.occurredAt,
    });
  }

  async listMissions(): Promise<MissionSummary[]> {
    return [...this.missions.values()].sort((a, b) => a.missionId.localeCompare(b.missionId));
  }

  async getMission(missionId: string): Promise<MissionSummary | null> {
    const known = this.missions.get(missionId);
    if (known) return known;
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
        requireDefined(state, missionId);
        const at = basis.kind === 'now' ? this.clock().toISOString() : basis.instant;
        return { basis, revision, position, verdict: evaluate(state, at) };
      }
      case 'knownAt': {
        const limit = Date.parse(basis.instant);
        const folded = await this.foldWhile(missionId, (e) => Date.parse(e.recordedAt) <= limit);
        requireDefined(
          folded.state,
          missionId,
          `Mission '${missionId}' was not yet known at ${basis.instant}`,
        );
        return {
          basis,
          revision: folded.revision,
          position: folded.position,
          verdict: evaluate(folded.state, basis.instant),
        };
      }
      case 'atPosition': {
        const folded = await this.foldWhile(missionId, (e) => e.position <= basis.position);
        requireDefined(
          folded.state,
          missionId,
          `Mission '${missionId}' had no events at position ${basis.position}`,
        );
        const at = folded.lastRecordedAt ?? this.clock().toISOString();
        return {
          basis,
          revision: folded.revision,
          position: folded.position,
          verdict: evaluate(folded.state, at),
        };
      }
      default: {
        const never: never = basis;
        throw new Error(`unknown basis ${String(never)}`);
      }
    }
  }

  private async foldWhile(missionId: string, keep: (event: RecordedEvent) => boolean) {
    let state = initialState();
    let revision: number | null = null;
    let position: string | null = null;
    let lastRecordedAt: string | null = null;
    try {
      for await (const event of this.store.readStream(missionStreamName(missionId))) {
        if (!keep(event)) continue;
        state = evolve(state, fromStoredEvent(event));
        revision = event.revision;
        position = event.position;
        lastRecordedAt = event.recordedAt;
      }
    } catch (error) {
      if (!(error instanceof StreamNotFoundError)) throw error;
    }
    return { state, revision, position, lastRecordedAt };
  }

  async close(): Promise<void> {
    await this.subscription?.close();
  }
}

function requireDefined(state: MissionState, missionId: string, message?: string): void {
  if (!state.mission) throw new ApiError('mission-not-found', message ?? `No mission '${missionId}'`);
}
