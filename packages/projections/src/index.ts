export { type AuditMismatch, type AuditMismatchKind, type AuditReport, auditMission } from './audit.js';
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
export {
  EXPORT_CONTENT_TYPE,
  EXPORT_KIND,
  EXPORT_VERSION,
  type ExportHeader,
  type ExportProblem,
  type ExportProblemKind,
  type ExportQuery,
  type ExportVerification,
  exportHeader,
  exportLine,
  exportLines,
  exportMission,
  type VerifyExportOptions,
  verdictFromExport,
  verifyExport,
} from './export.js';
export {
  DEFAULT_HEAP_GROWTH_PERCENT,
  MAX_HEAP_GROWTH_PERCENT,
  setHeapGrowthPercent,
} from './heap-growth.js';
export type { Logger } from './logger.js';
export type { Projection, ProjectionContext, ProjectionMode, ProjectionTable } from './projection.js';
export type { ChangeCause, HistoryEntry } from './readiness/processor.js';
export {
  createReadinessProjection,
  READINESS_PROJECTION,
  READINESS_PROJECTION_VERSION,
  type ReadinessProjection,
  type ReadinessProjectionOptions,
  type SharedMissionState,
} from './readiness/projection.js';
export {
  type CurrentVerdict,
  createReadinessQueries,
  type HistoryPage,
  type MissionPage,
  type MissionPageOptions,
  type MissionSummary,
  type ReadinessQueries,
  type ReadinessQueriesOptions,
  type TimeTravelVerdict,
} from './readiness/queries.js';
export {
  type ProjectionStatus,
  type ProjectionsHandle,
  type RebuildProgress,
  type RebuildResult,
  readProjectionStatus,
  type StartProjectionsOptions,
  startProjections,
} from './runner.js';
