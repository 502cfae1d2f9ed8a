export {
  appendChanges,
  CHANGE_KINDS,
  type ChangeKind,
  changeFeedMigrations,
  type ReadinessChange,
  readChangeFeed,
  toChange,
} from './change-feed.js';
export { isProjectionError, PROJECTION_ERRORS, ProjectionError, type ProjectionErrorCode } from './errors.js';
export type { Logger } from './logger.js';
export type { Projection, ProjectionContext, ProjectionMode, ProjectionTable } from './projection.js';
export type { ChangeCause, HistoryEntry } from './readiness/processor.js';
export {
  createReadinessProjection,
  READINESS_PROJECTION,
  READINESS_PROJECTION_VERSION,
  type ReadinessProjectionOptions,
} from './readiness/projection.js';
export {
  type ProjectionStatus,
  type ProjectionsHandle,
  type RebuildProgress,
  type RebuildResult,
  type StartProjectionsOptions,
  startProjections,
} from './runner.js';
