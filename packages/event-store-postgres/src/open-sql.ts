import type { SqlClient } from '@muster/event-store';
import { createPool, PgConnector, PgSqlClient, type PoolOptions, queryTimeoutOf } from './connection.js';
import { mapOpenError, parseConnectionString } from './errors.js';

export interface PostgresSqlClient extends SqlClient {
  readonly dialect: 'postgres';
  close(): Promise<void>;
}

/**
 * The SQL port on a PostgreSQL database of its own, for read models, checkpoints and the webhook
 * outbox when the events live elsewhere (EventStoreDB). With the PostgreSQL event store, use its
 * `sql` instead: one pool, one database. Connects once at open, so that a wrong connection string
 * fails here and not at the first query.
 */
export async function openPostgresSql(
  connectionString: string,
  options: PoolOptions = {},
): Promise<PostgresSqlClient> {
  const target = parseConnectionString(connectionString);
  const pool = createPool(target, options);
  try {
    await pool.query('SELECT 1');
  } catch (error) {
    await pool.end().catch(() => {});
    throw mapOpenError(error, target);
  }
  const client = new PgSqlClient(new PgConnector(pool), queryTimeoutOf(options));
  let closed: Promise<void> | null = null;
  return Object.assign(client, {
    close: () => {
      closed ??= pool.end().catch(() => {});
      return closed;
    },
  });
}
