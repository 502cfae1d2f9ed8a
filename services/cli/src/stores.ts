import { existsSync } from 'node:fs';
import type { EventStore, SqlClient } from '@muster/event-store';
import { openEsdbEventStore } from '@muster/event-store-esdb';
import { openPostgresEventStore, openPostgresSql } from '@muster/event-store-postgres';
import { openSqliteEventStore, openSqliteSql } from '@muster/event-store-sqlite';
import type { CliConfig } from './config.js';

export interface OpenedStores {
  store: EventStore;
  sql: SqlClient;
  close(): Promise<void>;
}

/** The configured SQLite file is not there: the CLI works on the service's data, never a new file. */
export class MissingSqliteFileError extends Error {
  constructor(
    readonly path: string,
    readonly variable: string,
  ) {
    super(
      `No SQLite file at ${path} (${variable}): the CLI works on an existing store and creates none; ` +
        'check the path, or start the service once to create it',
    );
    this.name = 'MissingSqliteFileError';
  }
}

/** Opening a SQLite path that does not exist would create an empty database there, and its directory. */
export function requireSqliteFile(path: string, variable: string): void {
  if (!existsSync(path)) throw new MissingSqliteFileError(path, variable);
}

/** The configured event store and the SQL database beside it, as the service opens them. */
export async function openStores(config: Readonly<CliConfig>): Promise<OpenedStores> {
  switch (config.store) {
    case 'sqlite': {
      requireSqliteFile(config.sqlitePath, 'MUSTER_SQLITE_PATH');
      const store = await openSqliteEventStore({ path: config.sqlitePath });
      return { store, sql: store.sql, close: () => store.close() };
    }
    case 'postgres': {
      const store = await openPostgresEventStore({ connectionString: config.databaseUrl as string });
      return { store, sql: store.sql, close: () => store.close() };
    }
    case 'esdb': {
      if (config.readModelStore === 'sqlite')
        requireSqliteFile(config.readModelSqlitePath, 'MUSTER_READ_MODEL_SQLITE_PATH');
      const store = await openEsdbEventStore({ connectionString: config.esdbConnectionString as string });
      await store.ping();
      const sql =
        config.readModelStore === 'postgres'
          ? await openPostgresSql(config.databaseUrl as string)
          : openSqliteSql(config.readModelSqlitePath);
      return {
        store,
        sql,
        close: async () => {
          await store.close();
          await sql.close();
        },
      };
    }
    default: {
      const never: never = config.store;
      throw new Error(`unknown store ${String(never)}`);
    }
  }
}
