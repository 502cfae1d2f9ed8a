import {
  type SqlClient,
  type SqlRow,
  StoreClosedError,
  StoreFullError,
  StoreUnavailableError,
} from '@muster/event-store';
import type Database from 'better-sqlite3';

/**
 * One better-sqlite3 connection shared by the event store and the SQL port. better-sqlite3 is
 * synchronous, so a statement never interleaves with another; but an async SQL transaction
 * (BEGIN ... awaits ... COMMIT) would let any other statement on the connection slip into it.
 * The exclusive lock keeps transactions and event appends apart.
 */
export class ExclusiveLock {
  private held = false;
  private readonly waiters: Array<() => void> = [];

  get isHeld(): boolean {
    return this.held;
  }

  tryAcquire(): boolean {
    if (this.held) return false;
    this.held = true;
    return true;
  }

  acquire(): Promise<void> {
    if (this.tryAcquire()) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  release(): void {
    const next = this.waiters.shift();
    if (next) next();
    else this.held = false;
  }
}

export class SqliteConnection {
  readonly lock = new ExclusiveLock();
  private readonly statements = new Map<string, Database.Statement>();
  private closed = false;

  constructor(readonly db: Database.Database) {}

  get isClosed(): boolean {
    return this.closed;
  }

  /** A cached prepared statement; `$1`-style placeholders become SQLite's numbered `?1`. */
  prepare(text: string): Database.Statement {
    if (this.closed) throw new StoreClosedError();
    let statement = this.statements.get(text);
    if (!statement) {
      statement = this.db.prepare(text.replace(/\$(\d+)/g, '?$1'));
      this.statements.set(text, statement);
    }
    return statement;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.statements.clear();
    this.db.close();
  }
}

/** `$n` placeholders become SQLite's `?n`, which better-sqlite3 binds by name: `{ 1: a, 2: b }`. */
export function bindable(params: readonly unknown[] | undefined): Record<number, unknown> {
  const named: Record<number, unknown> = {};
  params?.forEach((p, i) => {
    named[i + 1] =
      p === undefined ? null : typeof p === 'boolean' ? (p ? 1 : 0) : p instanceof Date ? p.getTime() : p;
  });
  return named;
}

export const args = (...values: unknown[]): Record<number, unknown> => bindable(values);

/** Maps SQLite failures to the port's typed errors; anything else is rethrown as is. */
export function mapSqliteError(error: unknown): unknown {
  const code = (error as { code?: unknown })?.code;
  if (typeof code !== 'string') return error;
  if (code === 'SQLITE_FULL')
    return new StoreFullError('The SQLite database or its disk is full', { cause: error });
  if (
    code.startsWith('SQLITE_IOERR') ||
    code.startsWith('SQLITE_BUSY') ||
    code.startsWith('SQLITE_CANTOPEN') ||
    code.startsWith('SQLITE_READONLY') ||
    code.startsWith('SQLITE_LOCKED')
  ) {
    return new StoreUnavailableError(`SQLite is unavailable (${code})`, { cause: error });
  }
  return error;
}

/** The SQL port over the shared connection. */
export class SqliteSqlClient implements SqlClient {
  readonly dialect = 'sqlite' as const;
  private savepoints = 0;

  constructor(
    private readonly connection: SqliteConnection,
    /** True for the client handed to a transaction callback: it already holds the lock. */
    private readonly inTransaction = false,
  ) {}

  async query<T extends SqlRow = SqlRow>(text: string, params?: readonly unknown[]): Promise<T[]> {
    return this.run(() => {
      const statement = this.connection.prepare(text);
      if (!statement.reader) {
        statement.run(bindable(params));
        return [] as T[];
      }
      return statement.raw(false).all(bindable(params)) as T[];
    });
  }

  async execute(text: string, params?: readonly unknown[]): Promise<number> {
    return this.run(() => {
      const statement = this.connection.prepare(text);
      if (statement.reader) return statement.all(bindable(params)).length;
      return statement.run(bindable(params)).changes;
    });
  }

  async script(text: string): Promise<void> {
    await this.run(() => {
      if (this.connection.isClosed) throw new StoreClosedError();
      this.connection.db.exec(text);
    });
  }

  async transaction<T>(fn: (tx: SqlClient) => Promise<T>): Promise<T> {
    if (this.inTransaction) return this.nested(fn);
    await this.connection.lock.acquire();
    const tx = new SqliteSqlClient(this.connection, true);
    try {
      this.connection.prepare('BEGIN IMMEDIATE').run();
    } catch (error) {
      this.connection.lock.release();
      throw mapSqliteError(error);
    }
    try {
      const result = await fn(tx);
      this.connection.prepare('COMMIT').run();
      return result;
    } catch (error) {
      if (this.connection.db.inTransaction) this.connection.prepare('ROLLBACK').run();
      throw mapSqliteError(error);
    } finally {
      this.connection.lock.release();
    }
  }

  private async nested<T>(fn: (tx: SqlClient) => Promise<T>): Promise<T> {
    const name = `sp_${++this.savepoints}`;
    this.connection.db.exec(`SAVEPOINT ${name}`);
    try {
      const result = await fn(this);
      this.connection.db.exec(`RELEASE ${name}`);
      return result;
    } catch (error) {
      this.connection.db.exec(`ROLLBACK TO ${name}; RELEASE ${name}`);
      throw error;
    }
  }

  private async run<T>(work: () => T): Promise<T> {
    if (this.inTransaction) {
      try {
        return work();
      } catch (error) {
        throw mapSqliteError(error);
      }
    }
    // Outside a transaction a statement must not land inside someone else's open transaction.
    if (!this.connection.lock.tryAcquire()) await this.connection.lock.acquire();
    try {
      return work();
    } catch (error) {
      throw mapSqliteError(error);
    } finally {
      this.connection.lock.release();
    }
  }
}
