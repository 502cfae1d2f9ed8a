export { backupSqliteFile, type SqliteBackup } from './backup.js';
export { openSqliteSql } from './open-sql.js';
export {
  openSqliteEventStore,
  type SqliteEventStore,
  type SqliteEventStoreOptions,
} from './sqlite-event-store.js';
