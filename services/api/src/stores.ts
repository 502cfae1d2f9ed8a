import type { EventStore, SqlClient } from '@muster/event-store';
import { openSqliteEventStore } from '@muster/event-store-sqlite';
import type { Config } from './config.js';

export interface OpenedStores {
  store: EventStore;
  sql: SqlClient;
  /** Closes the store and, when separate, the SQL database. */
  close(): Promise<void>;
}

/** Opens the configured event store and the SQL database that holds read models beside it. */
export async function openStores(config: Readonly<Config>): Promise<OpenedStores> {
  switch (config.store) {
    case 'sqlite': {
      const store = await openSqliteEventStore({
        path: config.sqlitePath,
        limits: { maxEventBytes: config.maxEventBytes },
      });
      return { store, sql: store.sql, close: () => store.close() };
    }
    case 'postgres':
    case 'esdb':
      throw new Error(`MUSTER_STORE=${config.store} is not available in this build yet`);
    default: {
      const never: never = config.store;
      throw new Error(`unknown store ${String(never)}`);
    }
  }
}
