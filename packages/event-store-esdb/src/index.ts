export { createEsdbClient, normaliseConnectionString } from './connection-string.js';
export {
  ESDB_ERRORS,
  EsdbAdapterError,
  type EsdbErrorCode,
  ForeignEventError,
  InvalidConnectionStringError,
} from './errors.js';
export {
  DEFAULT_EVENT_ID_STREAM_PREFIX,
  type EsdbEventStore,
  type EsdbEventStoreOptions,
  openEsdbEventStore,
} from './esdb-event-store.js';
export { decodePosition, encodePosition, isEsdbPosition } from './positions.js';
export type { ResubscribeOptions } from './subscription.js';
