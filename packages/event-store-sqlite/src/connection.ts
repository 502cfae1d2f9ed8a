import { closeSync, fdatasync, fstatSync, openSync, statSync } from 'node:fs';
import {
  type SqlClient,
  type SqlRow,
  StoreClosedError,
  StoreFullError,
  StoreUnavailableError,
  type TransactionOptions,
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
  /** The write-ahead log of a file database in WAL mode (found on first use); null otherwise. */
  private wal: string | null | undefined;
  /** The fsync of the log under way, and the one queued behind it (for commits made meanwhile). */
  private syncing: Promise<void> | null = null;
  /** A descriptor of the log kept open for its fsyncs, with the inode it was opened on. */
  private walFd: { fd: number; ino: number } | null = null;
  private nextSync: Promise<void> | null = null;
  /** Set when an fsync of the log failed: what it covered may be lost, so nothing is trusted after. */
  syncFailure: Error | null = null;

  constructor(readonly db: Database.Database) {}

  /**
   * True when a commit may skip its fsync and have `syncLog` make it durable instead: a file in WAL
   * mode at `synchronous = FULL` (at a weaker level the caller chose not to wait for the disk).
   * Read at every transaction: a pragma statement holds the value it was prepared with.
   */
  get defersSync(): boolean {
    if (this.wal === undefined) {
      const mode = String(this.db.pragma('journal_mode', { simple: true })).toLowerCase();
      this.wal = mode === 'wal' && !this.db.memory ? `${this.db.name}-wal` : null;
    }
    return this.wal !== null && this.db.pragma('synchronous', { simple: true }) === 2;
  }

  /**
   * Makes the commits from here skip their fsync (`synchronous = NORMAL`) when `defersSync` allows
   * it, and says whether it did. Whoever gets true must call `restoreCommitSync` whatever happens,
   * before the lock is released: every other writer commits from FULL.
   */
  skipCommitSync(): boolean {
    if (this.closed || !this.defersSync) return false;
    this.db.exec('PRAGMA synchronous = NORMAL');
    return true;
  }

  restoreCommitSync(): void {
    if (!this.closed) this.db.exec('PRAGMA synchronous = FULL');
  }

  /**
   * fdatasync of the write-ahead log on libuv's thread pool, where it does not stop the event loop
   * (better-sqlite3 would wait for it on this thread inside COMMIT). The log is append-only between
   * checkpoints, and SQLite syncs it before checkpointing, so one fsync makes every commit written
   * before it durable: commits that arrive while one runs share the next.
   */
  syncLog(): Promise<void> {
    if (!this.syncing) {
      this.syncing = this.fsyncLog().finally(() => {
        this.syncing = null;
      });
      return this.syncing;
    }
    this.nextSync ??= this.syncing
      .catch(() => undefined)
      .then(() => {
        this.nextSync = null;
        return this.syncLog();
      });
    return this.nextSync;
  }

  private async fsyncLog(): Promise<void> {
    if (this.syncFailure) throw this.syncFailure;
    const fd = this.logDescriptor();
    if (fd === null) return;
    try {
      await new Promise<void>((resolve, reject) =>
        fdatasync(fd, (error) => (error ? reject(error) : resolve())),
      );
    } catch (error) {
      // Like PostgreSQL after fsyncgate: a failed fsync may have dropped the pages it was to
      // write, and retrying can succeed without them. Nothing written on this connection is
      // acknowledged as durable any more; a restart recovers from what the disk holds.
      this.syncFailure = new StoreUnavailableError('SQLite could not sync its write-ahead log', {
        cause: error,
      });
      throw this.syncFailure;
    } finally {
      // Closed meanwhile: the descriptor was kept for this fsync (fsyncs run one at a time).
      if (this.closed) this.closeLog();
    }
  }

  /**
   * The open log, checked against its path (a stat, no disk wait) so that a log SQLite removed
   * and created again is not mistaken for the old one. Null when there is no log: it was
   * checkpointed into the database file, which SQLite synced, and removed.
   */
  private logDescriptor(): number | null {
    let ino: number;
    try {
      ino = statSync(this.wal as string).ino;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw error;
    }
    if (this.walFd?.ino === ino) return this.walFd.fd;
    this.closeLog();
    const fd = openSync(this.wal as string, 'r');
    this.walFd = { fd, ino: fstatSync(fd).ino };
    return this.walFd.ino === ino ? fd : this.logDescriptor();
  }

  private closeLog(): void {
    if (!this.walFd) return;
    closeSync(this.walFd.fd);
    this.walFd = null;
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

  get isClosed(): boolean {
    return this.closed;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.statements.clear();
    this.db.close();
    // A descriptor in use by an fsync is closed when that fsync ends, never under it.
    if (!this.syncing) this.closeLog();
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
    /** True for the client handed to a read snapshot's callback. */
    private readonly readOnly = false,
  ) {}

  async query<T extends SqlRow = SqlRow>(text: string, params?: readonly unknown[]): Promise<T[]> {
    return this.run(() => {
      const statement = this.statement(text);
      if (!statement.reader) {
        statement.run(bindable(params));
        return [] as T[];
      }
      return statement.raw(false).all(bindable(params)) as T[];
    });
  }

  async execute(text: string, params?: readonly unknown[]): Promise<number> {
    return this.run(() => {
      const statement = this.statement(text);
      if (statement.reader) return statement.all(bindable(params)).length;
      return statement.run(bindable(params)).changes;
    });
  }

  async script(text: string): Promise<void> {
    await this.run(() => {
      if (this.connection.isClosed) throw new StoreClosedError();
      // Scripts are schema changes; what they hold cannot be checked statement by statement.
      if (this.readOnly) throw new Error('A read snapshot cannot run a script');
      this.connection.db.exec(text);
    });
  }

  /** A prepared statement; in a read snapshot, only one that writes nothing. */
  private statement(text: string): Database.Statement {
    const statement = this.connection.prepare(text);
    if (this.readOnly && !statement.readonly) {
      throw new Error(`A read snapshot cannot write: ${text.trim().slice(0, 60)}`);
    }
    return statement;
  }

  /**
   * A deferred transaction: SQLite takes its view of the database at the first read, and a WAL
   * file keeps that view for it while other connections commit. The lock keeps this process's
   * own writers out meanwhile (they share the connection, so they would land inside it).
   */
  async readSnapshot<T>(fn: (tx: SqlClient) => Promise<T>): Promise<T> {
    if (this.inTransaction) return fn(this);
    await this.connection.lock.acquire();
    const connection = this.connection;
    try {
      connection.prepare('BEGIN').run();
    } catch (error) {
      connection.lock.release();
      throw mapSqliteError(error);
    }
    try {
      return await fn(new SqliteSqlClient(connection, true, true));
    } catch (error) {
      throw mapSqliteError(error);
    } finally {
      // Nothing was written: ending it either way only lets the log be checkpointed past it.
      try {
        if (!connection.isClosed && connection.db.inTransaction) connection.prepare('ROLLBACK').run();
      } finally {
        connection.lock.release();
      }
    }
  }

  /**
   * Resolves once the transaction is on disk. With `syncInBackground` on a WAL file, the commit is
   * written at `synchronous = NORMAL` (no fsync on this thread) and the log is then synced on the
   * thread pool, the lock already released: durable as at `FULL` when the promise resolves, but
   * the event loop ran meanwhile. Until then this process (other processes too) can read the
   * commit before it is durable; whatever commits after it is durable only with it, because the
   * log is synced in order. With `durable: false`, the same commit at `NORMAL` and no sync at all:
   * the next commit at `FULL` (an append) or checkpoint makes it durable.
   */
  async transaction<T>(fn: (tx: SqlClient) => Promise<T>, options?: TransactionOptions): Promise<T> {
    if (this.inTransaction) return this.nested(fn);
    await this.connection.lock.acquire();
    const connection = this.connection;
    const tx = new SqliteSqlClient(connection, true);
    let skipped = false;
    try {
      if (connection.syncFailure) throw connection.syncFailure;
      skipped =
        (options?.durable === false || options?.syncInBackground === true) && connection.skipCommitSync();
      connection.prepare('BEGIN IMMEDIATE').run();
    } catch (error) {
      if (skipped) connection.restoreCommitSync();
      connection.lock.release();
      throw mapSqliteError(error);
    }
    // Skipped without durable: false, the log is synced after the commit instead.
    const deferred = skipped && options?.durable !== false;
    let result: T;
    try {
      result = await fn(tx);
      connection.prepare('COMMIT').run();
    } catch (error) {
      if (connection.db.inTransaction) connection.prepare('ROLLBACK').run();
      throw mapSqliteError(error);
    } finally {
      if (skipped) connection.restoreCommitSync();
      connection.lock.release();
    }
    if (deferred) await connection.syncLog();
    return result;
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
