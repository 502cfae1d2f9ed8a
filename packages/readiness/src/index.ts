export { actingParty } from './acting-party.js';
export {
  type CommandCatalogEntry,
  type CommandCategory,
  type CommandOf,
  type CommandType,
  commandCatalog,
  commandPayloads,
  commandSchema,
  findCommand,
  type MissionCommand,
  parseCommand,
  TEMPLATE_NAMES,
  type ValidationIssue,
} from './commands.js';
export { decide, decideParsed } from './decide.js';
export {
  type ComparablePhase,
  type ComparablePrecondition,
  type ComparableVerdict,
  diffVerdicts,
  type PhaseChange,
  type PreconditionChange,
  type VerdictDiff,
  verdictChanged,
} from './diff.js';
export {
  DOMAIN_ERRORS,
  DomainError,
  type DomainErrorCode,
  type ErrorDetails,
  isDomainError,
} from './errors.js';
export {
  evaluate,
  MAX_EVIDENCE,
  type MissionVerdict,
  nextChangeAfter,
  nextChangeAt,
  type PhaseVerdict,
  type PreconditionResult,
} from './evaluate.js';
export {
  EVENT_SCHEMA_VERSIONS,
  EVENT_TYPES,
  type EventDataOf,
  type EventOf,
  eventDataSchemas,
  fromStoredEvent,
  type MissionEvent,
  type MissionEventType,
  type StoredEvent,
  type StoredEventInput,
  toStoredEvent,
} from './events.js';
export { eventIdFor, MISSION_ID_PATTERN, missionStreamName } from './ids.js';
export { instantMs, instantSchema } from './instant.js';
export {
  type CoveragePrecondition,
  type FactPrecondition,
  type MandatePrecondition,
  type NoBlockerPrecondition,
  type PhaseDefinition,
  type PhasePrecondition,
  type Policy,
  PRECONDITION_KINDS,
  type Precondition,
  type PreconditionKind,
  policySchema,
  preconditionSchema,
  type ThresholdPrecondition,
} from './policy.js';
export { mssHaitiScenario, type Scenario, type ScenarioStep } from './scenario.js';
export {
  deserializeState,
  eventInstants,
  evolve,
  fold,
  initialState,
  type MissionState,
  serializeState,
  serializeStateParts,
} from './state.js';
export {
  evaluateStatus,
  type PhaseStatusSummary,
  type PreconditionStatus,
  unmetPreconditions,
  type VerdictStatus,
} from './status.js';
export { type MissionTemplate, MSS_HAITI_AGREEMENT_ID, missionTemplates } from './templates.js';
export {
  BLOCKER_KINDS,
  type BlockerKind,
  CAPABILITIES,
  type Capability,
  FACTS,
  type FactName,
  MEASURES,
  type Measure,
  PHASE_STATUSES,
  type PhaseStatus,
  UNIT_STATUSES,
  type UnitStatus,
} from './vocabulary.js';
