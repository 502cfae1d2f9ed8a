import type { EventStore, SqlClient } from '@muster/event-store';
import { openEsdbEventStore } from '@muster/event-store-esdb';
import { openPostgresEventStore, openPostgresSql } from '@muster/event-store-postgres';
import { openSqliteEventStore, openSqliteSql } from '@muster/event-store-sqlite';
import type { Config } from './config.js';

export interface OpenedStores {
  store: EventStore;
  sql: SqlClient;
  /** Whether the store refuses an append whose pipelined predecessor failed (see MissionWriter). */
  pipelineAppends: boolean;
  /** Closes the store and, when separate, the SQL database. */
  close(): Promise<void>;
}

/** A start-up failure that names the setting to fix. */
export class StoreOpenError extends Error {
  constructor(
    readonly variable: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${variable}: ${message}`, options);
    this.name = 'StoreOpenError';
  }
}

/**
 * Opens the configured event store and the SQL database that holds read models, checkpoints,
 * idempotency keys and the webhook outbox beside it: the same SQLite file or PostgreSQL database
 * as the events, or, with EventStoreDB, a SQLite file or PostgreSQL database of their own.
 */
export async function openStores(config: Readonly<Config>): Promise<OpenedStores> {
  const limits = { maxEventBytes: config.maxEventBytes };
  switch (config.store) {
    case 'sqlite': {
      const store = await named('MUSTER_SQLITE_PATH', () =>
        openSqliteEventStore({ path: config.sqlitePath, limits }),
      );
      return { store, sql: store.sql, pipelineAppends: true, close: () => store.close() };
    }
    case 'postgres': {
      const store = await named('DATABASE_URL', () =>
        openPostgresEventStore({
          connectionString: config.databaseUrl as string,
          limits,
          queryTimeoutMs: config.databaseQueryTimeoutMs,
          // The mission writer pipelines commands: an append must land only on its predecessor.
          chainPipelinedAppends: true,
        }),
      );
      return { store, sql: store.sql, pipelineAppends: true, close: () => store.close() };
    }
    case 'esdb': {
      const store = await named('ESDB_CONNECTION_STRING', () =>
        openEsdbEventStore({ connectionString: config.esdbConnectionString as string, limits }),
      );
      await named('ESDB_CONNECTION_STRING', () => store.ping());
      const sql =
        config.readModelStore === 'postgres'
          ? await named('DATABASE_URL', () =>
              openPostgresSql(config.databaseUrl as string, {
                queryTimeoutMs: config.databaseQueryTimeoutMs,
              }),
            )
          : await named('MUSTER_READ_MODEL_SQLITE_PATH', async () =>
              openSqliteSql(config.readModelSqlitePath),
            );
      return {
        store,
        sql,
        pipelineAppends: false,
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

async function named<T>(variable: string, open: () => Promise<T>): Promise<T> {
  try {
    return await open();
  } catch (error) {
    throw new StoreOpenError(variable, (error as Error).message, { cause: error });
  }
}
