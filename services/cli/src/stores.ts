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

/** The configured event store and the SQL database beside it, as the service opens them. */
export async function openStores(config: Readonly<CliConfig>): Promise<OpenedStores> {
  switch (config.store) {
    case 'sqlite': {
      const store = await openSqliteEventStore({ path: config.sqlitePath });
      return { store, sql: store.sql, close: () => store.close() };
    }
    case 'postgres': {
      const store = await openPostgresEventStore({ connectionString: config.databaseUrl as string });
      return { store, sql: store.sql, close: () => store.close() };
    }
    case 'esdb': {
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
