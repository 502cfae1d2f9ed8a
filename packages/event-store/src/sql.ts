/**
 * The SQL port. Read models, checkpoints, idempotency keys and the webhook outbox live in SQL:
 * the SQLite file that also holds the events, or PostgreSQL. Statements use `$1, $2, ...`
 * placeholders in both dialects; integer columns hold epoch milliseconds for instants so that
 * the same statements compare them in both.
 */
export type SqlDialect = 'sqlite' | 'postgres';

export type SqlRow = Record<string, unknown>;

export interface SqlClient {
  readonly dialect: SqlDialect;
  query<T extends SqlRow = SqlRow>(text: string, params?: readonly unknown[]): Promise<T[]>;
  /** Runs a statement; resolves with the number of rows it changed. */
  execute(text: string, params?: readonly unknown[]): Promise<number>;
  /** Several `;`-separated statements without parameters (schema scripts); never cut off by a statement time limit. */
  script(text: string): Promise<void>;
  /**
   * Runs `fn` in one transaction: committed when it resolves, rolled back when it throws.
   * Nested calls run inside the outer transaction.
   */
  transaction<T>(fn: (tx: SqlClient) => Promise<T>, options?: TransactionOptions): Promise<T>;
  /**
   * Runs `fn` on a read-only view of one committed state of the database: every read through
   * `tx` sees the same commits, whatever commits meanwhile. For readers that compare rows of
   * several tables with each other while writers keep committing (the audit). PostgreSQL: one
   * connection in a `REPEATABLE READ READ ONLY` transaction (the view is taken at its first
   * statement). SQLite: one read transaction (in WAL mode the view is taken at its first read)
   * under the connection's lock. Statements that write are refused. Keep it short: on SQLite the
   * other statements of this process wait for it and the write-ahead log cannot be checkpointed
   * past it; on PostgreSQL vacuum keeps every row version it might read, and a swap of tables
   * waits for it (a client that vanishes mid-way is let go by the server after the pool's
   * statement limit). Inside a SQLite transaction `fn` runs in that transaction (already one view);
   * inside a PostgreSQL read-write transaction, whose statements each see the latest commits, it
   * is refused.
   */
  readSnapshot<T>(fn: (tx: SqlClient) => Promise<T>): Promise<T>;
}

export interface TransactionOptions {
  /**
   * Durable all the same when the promise resolves, but the wait for the disk does not stop the
   * event loop: on SQLite (whose commits are otherwise an fsync on the calling thread) the
   * write-ahead log is synced on the thread pool after the commit, which takes a little longer
   * for this caller and frees the thread for everyone else. For background writers that commit
   * often, such as the webhook dispatcher. PostgreSQL commits never block the thread; it ignores it.
   */
  syncInBackground?: boolean;
  /**
   * `false`: the commit need not be on disk when the promise resolves. It is atomic all the same,
   * and durable once a later durable commit (or a checkpoint of the log) syncs it; a crash before
   * that may lose it whole, never part of it. For work redone from a checkpoint written in the
   * same transaction, such as the batches of a rebuild. SQLite then commits at
   * `synchronous = NORMAL` without any fsync; PostgreSQL ignores it.
   */
  durable?: boolean;
}

/** Creates the tables of one module (projections, webhooks, ...) once, in any order of callers. */
export interface SqlMigration {
  /** Unique per module and version, e.g. `webhooks:001`. */
  id: string;
  sqlite: string;
  postgres: string;
}

export async function migrate(sql: SqlClient, migrations: readonly SqlMigration[]): Promise<void> {
  const lock = async (tx: SqlClient) => {
    if (tx.dialect === 'postgres') {
      // Replicas starting at once: the others wait here, then see the tables and rows. A script,
      // because a script has no statement time limit and the wait lasts the other's migration.
      await tx.script("SELECT pg_advisory_xact_lock(hashtext('muster_migrations'))");
    }
  };
  await sql.transaction(async (tx) => {
    await lock(tx);
    await tx.script(
      'CREATE TABLE IF NOT EXISTS muster_migrations (id TEXT PRIMARY KEY, applied_at BIGINT NOT NULL)',
    );
  });
  for (const migration of migrations) {
    await sql.transaction(async (tx) => {
      await lock(tx);
      const done = await tx.query('SELECT id FROM muster_migrations WHERE id = $1', [migration.id]);
      if (done.length > 0) return;
      await tx.script(tx.dialect === 'postgres' ? migration.postgres : migration.sqlite);
      await tx.execute('INSERT INTO muster_migrations (id, applied_at) VALUES ($1, $2)', [
        migration.id,
        Date.now(),
      ]);
    });
  }
}
