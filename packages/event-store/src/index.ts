export {
  assertIdempotentReplay,
  checkExpectedRevision,
  comparePositions,
  matchesFilter,
  type StoredIdRun,
  sequencePosition,
} from './append-rules.js';
export { AsyncQueue } from './async-queue.js';
export { canonicalJson, NotJsonError } from './canonical-json.js';
export {
  EVENT_STORE_ERRORS,
  EventIdConflictError,
  EventStoreError,
  type EventStoreErrorCode,
  EventTooLargeError,
  InvalidEventError,
  InvalidExpectedRevisionError,
  InvalidReadOptionsError,
  InvalidStreamNameError,
  isEventStoreError,
  StoreClosedError,
  StoreFullError,
  StoreUnavailableError,
  StreamNotFoundError,
  WrongExpectedRevisionError,
} from './errors.js';
export {
  type ChainVerdict,
  ChainVerifier,
  computeEventHash,
  HASH_CHAIN_VERSION,
  hashInput,
  hashInputParts,
  type SealedEvent,
  type SealInput,
  sealEvents,
  verifyStream,
} from './hash-chain.js';
export { uuidv7 } from './ids.js';
export {
  migrate,
  type SqlClient,
  type SqlDialect,
  type SqlMigration,
  type SqlRow,
  type TransactionOptions,
} from './sql.js';
export type {
  Actor,
  AppendOptions,
  AppendResult,
  Direction,
  EventData,
  EventFilter,
  EventMetadata,
  EventStore,
  EventStoreLimits,
  ExpectedRevision,
  JsonObject,
  JsonPrimitive,
  JsonValue,
  Position,
  ReadAllOptions,
  ReadStreamOptions,
  RecordedEvent,
  SubscribeToAllOptions,
  Subscription,
  SubscriptionMessage,
} from './types.js';
export { DEFAULT_LIMITS } from './types.js';
export {
  isIsoInstant,
  isoInstantMs,
  MAX_STREAM_NAME_LENGTH,
  normaliseInstant,
  type PreparedAppend,
  type PreparedEvent,
  prepareAppend,
  validateExpectedRevision,
  validateReadAllOptions,
  validateReadStreamOptions,
  validateStreamName,
} from './validation.js';
