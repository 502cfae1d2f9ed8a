import type { SqlClient, SqlRow } from '@muster/event-store';
import pg from 'pg';
import { type ConnectionTarget, isConnectionError, mapPgError } from './errors.js';

export interface PoolOptions {
  poolSize?: number;
  /** How long to wait for a new connection before giving up (StoreUnavailableError). */
  connectTimeoutMs?: number;
  /**
   * How long a statement may run (default 30,000 ms; 0: no limit), on both sides of the wire.
   * The server cancels a statement that runs longer (`statement_timeout`), so that work nobody
   * waits for any more stops using the database; the statement rejects with the retryable
   * StoreUnavailableError and the connection stays in use. A server that accepts connections but
   * stops answering (a half-open socket after a network partition, a stopped host) cannot cancel
   * anything, and would otherwise hold each connection that asks it something until the pool is
   * empty: a second later than the server's limit the client gives up too, the statement rejects
   * the same way, its connection is destroyed and the pool opens a new one. Whether a statement
   * given up that way ran is unknown, as for any lost connection (appends are safe to retry: fixed
   * event ids). Migrations and other scripts (`script`) have no limit on either side: an index
   * over a large table may take longer, and so may the wait for another replica's migration.
   */
  queryTimeoutMs?: number;
}

/** pg's longest timer: a statement that must never be cut off by `queryTimeoutMs`. */
const NO_QUERY_TIMEOUT = 2_147_483_647;

/**
 * A statement exempt from the client's side of `queryTimeoutMs` (scripts, migrations, waits on a
 * migration lock). pg reads a per-query `query_timeout` from the query config; its type
 * definitions leave it out. The server's side is lifted around it: `withoutStatementTimeout`, or
 * `SET LOCAL statement_timeout = 0` in a transaction.
 */
export function untimed(text: string, values?: readonly unknown[]): pg.QueryConfig {
  return { text, values, query_timeout: NO_QUERY_TIMEOUT } as pg.QueryConfig;
}

/** Lifts the server's statement limit until the end of the current transaction... */
export const NO_STATEMENT_TIMEOUT_IN_TRANSACTION = 'SET LOCAL statement_timeout = 0';
/** ...or until this puts the connection's own limit back. */
const STATEMENT_TIMEOUT_BACK_IN_TRANSACTION = 'SET LOCAL statement_timeout TO DEFAULT';

/**
 * Runs `fn` on a connection outside a transaction with the server's statement limit lifted, and
 * puts the limit back after. A connection whose limit could not be put back is not reused.
 */
async function withoutStatementTimeout<T>(client: pg.PoolClient, fn: () => Promise<T>): Promise<T> {
  await client.query('SET statement_timeout = 0');
  let result: T;
  try {
    result = await fn();
  } finally {
    try {
      await client.query('RESET statement_timeout');
    } catch (error) {
      // Without its limit the connection must not go back to the pool: treat it as broken.
      client.emit('error', error);
    }
  }
  return result;
}

const DEFAULT_QUERY_TIMEOUT_MS = 30_000;

/** The statement limit a pool is opened with (0: none). */
export function queryTimeoutOf(options: PoolOptions): number {
  return options.queryTimeoutMs ?? DEFAULT_QUERY_TIMEOUT_MS;
}

/**
 * `begin`, and the same limit on the server's wait for the client between the statements of the
 * transaction (`idle_in_transaction_session_timeout`), sent as one message. For transactions that
 * hold, across several statements, what others queue behind (a stream's lock, the share locks of
 * a read snapshot that a swap of tables waits for): a client that vanishes without a word (its
 * host lost, a partition) leaves its session waiting inside the transaction until the server
 * learns of it, which TCP keepalive takes hours to do by default. A statement is bounded by
 * `statement_timeout`; the wait between two was not.
 */
export function boundedBegin(begin: string, queryTimeoutMs: number): string {
  if (!(queryTimeoutMs > 0)) return begin;
  return `${begin}; SET LOCAL idle_in_transaction_session_timeout = ${Math.ceil(queryTimeoutMs)}`;
}

/** How much later than the server's limit the client stops waiting for an answer. */
const CLIENT_GRACE_MS = 1000;

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
  const queryTimeout = queryTimeoutOf(options);
  return {
    connectionString: target.connectionString,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 5000,
    ...(queryTimeout > 0
      ? {
          statement_timeout: queryTimeout,
          query_timeout: Math.min(queryTimeout + CLIENT_GRACE_MS, NO_QUERY_TIMEOUT),
        }
      : {}),
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
 * is safe to repeat (reads, appends with fixed event ids) runs again when a reused connection turns
 * out to be dead (after a server restart or a failover every idle connection is), until it runs on
 * a live one or has tried as many as the pool holds.
 */
export class PgConnector {
  private readonly used = new WeakSet<pg.PoolClient>();
  private readonly staleRetries: number;

  constructor(readonly pool: pg.Pool) {
    this.staleRetries = (pool.options as { max?: number }).max ?? 10;
  }

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
        // Each dead connection found is destroyed; after a failover the pool may hold several,
        // so keep going while the failures are reused connections, up to the pool's size.
        if (broken !== null && retryStale && reused && attempt < this.staleRetries) continue;
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

  constructor(
    private readonly connector: PgConnector,
    /** The pool's statement limit, also the limit of a read snapshot's wait for its client. */
    private readonly queryTimeoutMs = 0,
  ) {}

  async query<T extends SqlRow = SqlRow>(text: string, params?: readonly unknown[]): Promise<T[]> {
    const result = await this.connector.withClient((client) => client.query(text, params as unknown[]));
    return result.rows as T[];
  }

  async execute(text: string, params?: readonly unknown[]): Promise<number> {
    const result = await this.connector.withClient((client) => client.query(text, params as unknown[]));
    return result.rowCount ?? 0;
  }

  async script(text: string): Promise<void> {
    await this.connector.withClient((client) =>
      withoutStatementTimeout(client, () => client.query(untimed(text))),
    );
  }

  transaction<T>(fn: (tx: SqlClient) => Promise<T>): Promise<T> {
    return this.inTransaction('BEGIN', false, fn);
  }

  /**
   * REPEATABLE READ takes one snapshot at the first statement and keeps it: the reads that follow
   * see no commit made after it. READ ONLY has the server refuse writes. The share locks on the
   * tables it read are held to its end, and a swap of those tables queues behind them (and every
   * other statement on them behind the swap): a client gone without a word must not hold them until
   * the server finds out (`boundedBegin`).
   */
  readSnapshot<T>(fn: (tx: SqlClient) => Promise<T>): Promise<T> {
    return this.inTransaction(
      boundedBegin('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY', this.queryTimeoutMs),
      true,
      fn,
    );
  }

  private inTransaction<T>(begin: string, snapshot: boolean, fn: (tx: SqlClient) => Promise<T>): Promise<T> {
    return this.connector.withClient(async (client) => {
      await client.query(begin);
      const tx = new PgTransactionClient(client, snapshot);
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

  constructor(
    private readonly client: pg.PoolClient,
    /** True in a read snapshot: every statement sees the commits its first one saw. */
    private readonly snapshot: boolean,
  ) {}

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

  async readSnapshot<T>(fn: (tx: SqlClient) => Promise<T>): Promise<T> {
    // A read-write transaction runs at READ COMMITTED: each of its statements sees the latest
    // commits, so it cannot stand for one view.
    if (!this.snapshot) throw new Error('A read snapshot cannot be taken inside a read-write transaction');
    if (this.finished) throw new Error('This transaction has already ended; use the client it was run on');
    return fn(this);
  }

  private async run(text: string, params?: readonly unknown[], exempt = false): Promise<pg.QueryResult> {
    if (this.finished) throw new Error('This transaction has already ended; use the client it was run on');
    try {
      if (exempt) {
        await this.client.query(NO_STATEMENT_TIMEOUT_IN_TRANSACTION);
        const result = await this.client.query(untimed(text, params));
        // The rest of the transaction has the limit again (after a failure there is no rest).
        await this.client.query(STATEMENT_TIMEOUT_BACK_IN_TRANSACTION);
        return result;
      }
      return await this.client.query(text, params as unknown[]);
    } catch (error) {
      // Outside a snapshot this is a standby (after a failover) and worth a retry; here it is the
      // caller's mistake, and a retry would fail the same way.
      if (this.snapshot && (error as { code?: unknown })?.code === READ_ONLY_SQL_TRANSACTION) {
        throw new Error(`A read snapshot cannot write: ${text.trim().slice(0, 60)}`, { cause: error });
      }
      throw mapPgError(error);
    }
  }
}

const READ_ONLY_SQL_TRANSACTION = '25006';
