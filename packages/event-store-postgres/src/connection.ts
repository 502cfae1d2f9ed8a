import type { SqlClient, SqlRow } from '@muster/event-store';
import pg from 'pg';
import { type ConnectionTarget, isConnectionError, mapPgError } from './errors.js';

export interface PoolOptions {
  poolSize?: number;
  /** How long to wait for a new connection before giving up (StoreUnavailableError). */
  connectTimeoutMs?: number;
  /**
   * How long a statement may go unanswered before its connection is given up (default 30,000 ms;
   * 0: no limit). A server that accepts connections but stops answering (a half-open socket after
   * a network partition, a stopped host) would otherwise hold each connection that asks it
   * something, until the pool is empty and every caller waits. The statement rejects with
   * StoreUnavailableError, its connection is destroyed and the pool opens a new one; whether the
   * statement ran is unknown, as for any lost connection (appends are safe to retry: fixed event
   * ids). Migrations and other scripts (`script`) have no limit: an index over a large table may
   * take longer.
   */
  queryTimeoutMs?: number;
}

/** pg's longest timer: a statement that must never be cut off by `queryTimeoutMs`. */
const NO_QUERY_TIMEOUT = 2_147_483_647;

/**
 * A statement exempt from `queryTimeoutMs` (scripts, migrations, waits on a migration lock). pg
 * reads a per-query `query_timeout` from the query config; its type definitions leave it out.
 */
export function untimed(text: string, values?: readonly unknown[]): pg.QueryConfig {
  return { text, values, query_timeout: NO_QUERY_TIMEOUT } as pg.QueryConfig;
}

const DEFAULT_QUERY_TIMEOUT_MS = 30_000;

const INT8_OID = 20;

/**
 * BIGINT columns come back as numbers, as they do from SQLite, so that statements of the SQL port
 * (epoch milliseconds, counts) read the same in both dialects. Values past 2^53 stay strings.
 */
const types: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => {
    if (oid === INT8_OID && format !== 'binary') {
      return (value: string) => {
        const n = Number(value);
        return Number.isSafeInteger(n) ? n : value;
      };
    }
    return pg.types.getTypeParser(oid, format as 'text');
  }) as pg.CustomTypesConfig['getTypeParser'],
};

export function clientConfig(target: ConnectionTarget, options: PoolOptions = {}): pg.ClientConfig {
  const queryTimeout = options.queryTimeoutMs ?? DEFAULT_QUERY_TIMEOUT_MS;
  return {
    connectionString: target.connectionString,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 5000,
    ...(queryTimeout > 0 ? { query_timeout: queryTimeout } : {}),
    keepAlive: true,
    application_name: 'muster',
    types,
  };
}

export function createPool(target: ConnectionTarget, options: PoolOptions = {}): pg.Pool {
  const pool = new pg.Pool({
    ...clientConfig(target, options),
    max: options.poolSize ?? 10,
    idleTimeoutMillis: 30_000,
  });
  // An idle connection that dies (server restart, pg_terminate_backend) is dropped by the pool,
  // which reports it here; without a listener the 'error' event would crash the process.
  pool.on('error', () => {});
  return pool;
}

/**
 * Runs `fn` on one pooled connection. A connection that breaks while checked out is destroyed
 * rather than returned, and its error is mapped to the port's types. With `retryStale`, work that
 * is safe to repeat (reads, appends with fixed event ids) runs once more on a fresh connection when
 * a reused one turns out to be dead: after a server restart every idle connection is.
 */
export class PgConnector {
  private readonly used = new WeakSet<pg.PoolClient>();

  constructor(readonly pool: pg.Pool) {}

  async withClient<T>(fn: (client: pg.PoolClient) => Promise<T>, retryStale = false): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      let client: pg.PoolClient;
      try {
        client = await this.pool.connect();
      } catch (error) {
        throw mapPgError(error);
      }
      const reused = this.used.has(client);
      let broken: unknown = null;
      const onError = (error: unknown) => {
        broken = error;
      };
      client.on('error', onError);
      try {
        const result = await fn(client);
        this.used.add(client);
        return result;
      } catch (error) {
        if (isConnectionError(error)) broken = error;
        if (broken !== null && retryStale && reused && attempt === 0) continue;
        throw mapPgError(error);
      } finally {
        client.off('error', onError);
        client.release(broken === null ? undefined : (broken as Error));
      }
    }
  }
}

/** The SQL port over a pg pool: `$1` placeholders as pg expects them; transactions on one connection. */
export class PgSqlClient implements SqlClient {
  readonly dialect = 'postgres' as const;

  constructor(private readonly connector: PgConnector) {}

  async query<T extends SqlRow = SqlRow>(text: string, params?: readonly unknown[]): Promise<T[]> {
    const result = await this.connector.withClient((client) => client.query(text, params as unknown[]));
    return result.rows as T[];
  }

  async execute(text: string, params?: readonly unknown[]): Promise<number> {
    const result = await this.connector.withClient((client) => client.query(text, params as unknown[]));
    return result.rowCount ?? 0;
  }

  async script(text: string): Promise<void> {
    await this.connector.withClient((client) => client.query(untimed(text)));
  }

  transaction<T>(fn: (tx: SqlClient) => Promise<T>): Promise<T> {
    return this.connector.withClient(async (client) => {
      await client.query('BEGIN');
      const tx = new PgTransactionClient(client);
      try {
        const result = await fn(tx);
        const commit = await client.query('COMMIT');
        // COMMIT of a transaction that already failed (an error caught inside fn) rolls back instead.
        if (commit.command === 'ROLLBACK') {
          throw new Error('The transaction was rolled back because a statement inside it failed');
        }
        return result;
      } catch (error) {
        if (!isConnectionError(error)) await client.query('ROLLBACK').catch(() => {});
        throw error;
      } finally {
        tx.finish();
      }
    });
  }
}

/** The client handed to a transaction callback; nested transactions are savepoints. */
class PgTransactionClient implements SqlClient {
  readonly dialect = 'postgres' as const;
  private savepoints = 0;
  private finished = false;

  constructor(private readonly client: pg.PoolClient) {}

  finish(): void {
    this.finished = true;
  }

  async query<T extends SqlRow = SqlRow>(text: string, params?: readonly unknown[]): Promise<T[]> {
    return (await this.run(text, params)).rows as T[];
  }

  async execute(text: string, params?: readonly unknown[]): Promise<number> {
    return (await this.run(text, params)).rowCount ?? 0;
  }

  async script(text: string): Promise<void> {
    await this.run(text, undefined, true);
  }

  async transaction<T>(fn: (tx: SqlClient) => Promise<T>): Promise<T> {
    const name = `muster_sp_${++this.savepoints}`;
    await this.run(`SAVEPOINT ${name}`);
    try {
      const result = await fn(this);
      await this.run(`RELEASE SAVEPOINT ${name}`);
      return result;
    } catch (error) {
      if (!isConnectionError(error) && !this.finished) {
        await this.run(`ROLLBACK TO SAVEPOINT ${name}`);
        await this.run(`RELEASE SAVEPOINT ${name}`);
      }
      throw error;
    }
  }

  private async run(text: string, params?: readonly unknown[], exempt = false): Promise<pg.QueryResult> {
    if (this.finished) throw new Error('This transaction has already ended; use the client it was run on');
    try {
      if (exempt) return await this.client.query(untimed(text, params));
      return await this.client.query(text, params as unknown[]);
    } catch (error) {
      throw mapPgError(error);
    }
  }
}
