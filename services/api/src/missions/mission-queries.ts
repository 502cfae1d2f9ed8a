import type { MissionVerdict } from '@muster/readiness';

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
  /** A page of defined missions, oldest first; null when `after` names none of them. */
  listMissions(page: { after?: string; limit: number; only?: readonly string[] }): Promise<{
    missions: MissionSummary[];
    next: string | null;
  } | null>;
  getMission(missionId: string): Promise<MissionSummary | null>;
  readiness(missionId: string, basis: ReadinessBasis): Promise<ReadinessAnswer>;
  /** Waits (briefly) until the read models hold this process's latest append; false on timeout. */
  caughtUp(): Promise<boolean>;
  close(): Promise<void>;
}
