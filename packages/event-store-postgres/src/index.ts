export { InvalidConnectionStringError } from './errors.js';
export { openPostgresSql, type PostgresSqlClient } from './open-sql.js';
export {
  openPostgresEventStore,
  type PostgresEventStore,
  type PostgresEventStoreOptions,
} from './postgres-event-store.js';
