import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { SqlClient } from '@muster/event-store';
import Database from 'better-sqlite3';
import { mapSqliteError, SqliteConnection, SqliteSqlClient } from './connection.js';

/**
 * The SQL port on a SQLite file of its own, for read models when the events live elsewhere
 * (EventStoreDB). With the SQLite event store, use its `sql` instead: one file, one connection.
 */
export function openSqliteSql(path: string): SqlClient & { close(): Promise<void> } {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  let connection: SqliteConnection;
  try {
    const db = new Database(path);
    if (path !== ':memory:') db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('busy_timeout = 5000');
    connection = new SqliteConnection(db);
  } catch (error) {
    throw mapSqliteError(error);
  }
  const client = new SqliteSqlClient(connection);
  return Object.assign(client, {
    close: async () => {
      await connection.lock.acquire();
      connection.close();
      connection.lock.release();
    },
  });
}
