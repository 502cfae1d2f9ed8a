import { mkdirSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import {
  type AppendOptions,
  type AppendResult,
  type AppendUnderLockOptions,
  AsyncQueue,
  assertIdempotentReplay,
  CorruptEventError,
  checkExpectedRevision,
  DEFAULT_LIMITS,
  type EventData,
  type EventFilter,
  EventIdConflictError,
  type EventStore,
  type EventStoreLimits,
  InvalidReadOptionsError,
  type LockedDecision,
  type Position,
  type PreparedAppend,
  prepareAppend,
  type ReadAllOptions,
  type ReadStreamOptions,
  type RecordedEvent,
  type SqlClient,
  StoreClosedError,
  StoreUnavailableError,
  StreamNotFoundError,
  type SubscribeToAllOptions,
  type Subscription,
  type SubscriptionMessage,
  sealEvents,
  sequencePosition,
  uuidv7,
  validateBatchSize,
  validateKnownRevision,
  validateReadAllOptions,
  validateReadStreamOptions,
  validateStreamName,
} from '@muster/event-store';
import Database from 'better-sqlite3';
import { args, mapSqliteError, SqliteConnection, SqliteSqlClient } from './connection.js';
import {
  advance,
  hasMore,
  leadingInteger,
  type PageJob,
  pageParams,
  ReadAhead,
  ReadAheadThreadError,
} from './read-ahead.js';

export interface SqliteEventStoreOptions {
  /** A file path, or `:memory:`. The directory is created when missing. */
  path: string;
  limits?: Partial<EventStoreLimits>;
  /** Source of `recordedAt`; tests pass a controlled clock. */
  clock?: () => Date;
  /**
   * `FULL` (default): an append resolves only once its transaction is on disk. `NORMAL` trades
   * the last transactions before a power loss for speed; never the default.
   */
  synchronous?: 'FULL' | 'NORMAL';
  /** How often a live subscription looks for appends made by other processes. */
  pollIntervalMs?: number;
  /** Rows per page when reading. */
  pageSize?: number;
  /**
   * Coalesce concurrent appends into one transaction (default true), and sync the log off the
   * event loop. Off, every append is its own transaction with its own fsync inside `COMMIT`: only
   * useful as a benchmark baseline.
   */
  groupCommit?: boolean;
  /**
   * A read (`readAll`, `readStream`) past this many pages goes on from a read-ahead thread with
   * its own read-only connection (default 16; `false`: never; never for `:memory:`). SQLite then
   * fetches the next pages while the caller parses and uses this one: on two cores a full
   * `readAll` ran 1.2 to 1.8 times as fast. At most two such threads run at once; further long
   * reads stay in the caller's thread.
   */
  readAheadAfterPages?: number | false;
  /**
   * Heap limit of each read-ahead thread, in MiB (default 256). A page that does not fit (events
   * of a megabyte each) ends the thread, and the read goes on in the caller's thread.
   */
  readAheadMemoryMb?: number;
}

/** Pages a read takes in its own thread before a read-ahead thread may take over. */
const READ_AHEAD_AFTER_PAGES = 16;
/** A read hands the event loop a turn between pages at least this often (ms). */
const TURN_EVERY_MS = 10;
const MAX_READ_AHEADS = 2;

export interface SqliteEventStore extends EventStore {
  readonly kind: 'sqlite';
  /** The SQL port on the same file: read models commit in the same database as the events. */
  readonly sql: SqlClient;
  readonly path: string;
  /** Offered: the write transaction is the lock. */
  appendUnderLock(
    stream: string,
    options: AppendUnderLockOptions,
    decide: LockedDecision,
  ): Promise<AppendResult | null>;
}

interface StreamHead {
  revision: number;
  hash: string;
}

const HEAD_CACHE_SIZE = 50_000;

/** A Map that forgets its oldest entries past a size. */
class BoundedMap<K, V> {
  private readonly map = new Map<K, V>();

  constructor(private readonly limit: number) {}

  get(key: K): V | undefined {
    return this.map.get(key);
  }

  delete(key: K): void {
    this.map.delete(key);
  }

  remember(key: K, value: V): void {
    this.map.delete(key);
    this.map.set(key, value);
    if (this.map.size > this.limit) {
      const oldest = this.map.keys().next().value;
      if (oldest !== undefined) this.map.delete(oldest);
    }
  }
}

/** A plain append, or a decision to make inside the write transaction (`appendUnderLock`). */
type PendingAppend =
  | {
      kind: 'append';
      prepared: PreparedAppend;
      resolve: (result: AppendResult) => void;
      reject: (error: unknown) => void;
    }
  | {
      kind: 'locked';
      stream: string;
      knownRevision: number | null;
      decide: LockedDecision;
      resolve: (result: AppendResult | null) => void;
      reject: (error: unknown) => void;
    };

/** What `decide` threw: the caller's own refusal, handed back as it is. */
class Refusal {
  constructor(readonly error: unknown) {}
}

type Outcome = { ok: true; result: AppendResult | null } | { ok: false; error: unknown };

type EventRow = [
  position: number,
  revision: number,
  id: string,
  stream: string,
  type: string,
  data: unknown,
  metadata: unknown,
  recordedAt: string,
  hash: string,
  previousHash: string | null,
];

/**
 * Each event is selected as one JSON array text, built by SQLite from its columns (the two integers
 * first, so that a page's cursor can be read off its last text: see read-ahead.ts), and read with
 * one JSON.parse: materialising ten column values as JavaScript strings and parsing data and
 * metadata apart cost about 14% more per event (measured page by page, alternating, on 1M events);
 * `concat()` (SQLite 3.44+; better-sqlite3 12 bundles a newer one) builds the text with one
 * allocation, a fifth cheaper in SQLite than a chain of `||`.
 * Data and metadata are stored as JSON text and go in as they are; the stream name is the one
 * free-form text and is quoted by SQLite; ids (UUIDs), types (a restricted pattern), instants and
 * hashes are written by this store in forms that need no escaping. {@link parseRows} checks the
 * element count, so a column text that is not one JSON value fails the read (a CorruptEventError
 * naming the event, after the events before it), as parsing it alone would. The exception is a pair of edited texts that only together form values
 * (data `[1` and metadata `2],0`): they read as other data and metadata, which editing those
 * columns directly could also give, and which the hash chain catches the same way.
 */
const ROW_JSON = `concat('[', position, ',', revision, ',"', id, '",', json_quote(stream), ',"', type, '",', data, ',', metadata, ',"', recorded_at, '","', hash, '",', coalesce('"' || previous_hash || '"', 'null'), ']')`;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS events (
  position      INTEGER PRIMARY KEY AUTOINCREMENT,
  id            TEXT    NOT NULL UNIQUE,
  stream        TEXT    NOT NULL,
  revision      INTEGER NOT NULL,
  type          TEXT    NOT NULL,
  data          TEXT    NOT NULL,
  metadata      TEXT    NOT NULL,
  recorded_at   TEXT    NOT NULL,
  hash          TEXT    NOT NULL,
  previous_hash TEXT,
  UNIQUE (stream, revision)
);
`;

export async function openSqliteEventStore(options: SqliteEventStoreOptions): Promise<SqliteEventStore> {
  if (options.path !== ':memory:') mkdirSync(dirname(options.path), { recursive: true });
  let db: Database.Database;
  try {
    db = new Database(options.path);
    if (options.path !== ':memory:') db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${options.synchronous ?? 'FULL'}`);
    db.pragma('busy_timeout = 5000');
    db.pragma('foreign_keys = ON');
    db.exec(SCHEMA);
  } catch (error) {
    throw mapSqliteError(error);
  }
  return new SqliteStore(new SqliteConnection(db), options);
}

class SqliteStore implements SqliteEventStore {
  readonly kind = 'sqlite' as const;
  readonly sql: SqlClient;
  readonly path: string;
  /** The file opened; a ping checks the path still names it (not moved away, deleted or replaced). */
  private readonly inode: number | null;
  private readonly limits: EventStoreLimits;
  private readonly clock: () => Date;
  private readonly pollIntervalMs: number;
  private readonly pageSize: number;
  private readonly groupCommit: boolean;
  private pending: PendingAppend[] = [];
  private flushScheduled = false;
  private flushing: Promise<void> | null = null;
  private readonly liveWaiters = new Set<() => void>();
  /** Last revision and hash of recently written streams (this process is the file's only writer). */
  private readonly heads = new BoundedMap<string, StreamHead>(HEAD_CACHE_SIZE);
  private readonly subscriptions = new Set<AsyncQueue<SubscriptionMessage>>();
  /** Where subscribers must stop: commits whose log sync is still running are not theirs yet. */
  private readonly durable = new DurableHorizon();
  /** Log syncs under way, each acknowledging its batch when it ends. */
  private readonly syncs = new Set<Promise<void>>();
  private readonly readAheadAfterPages: number | false;
  private readonly readAheadMemoryMb: number;
  private readonly readAheads = new Set<ReadAhead>();
  private closed = false;

  constructor(
    private readonly connection: SqliteConnection,
    options: SqliteEventStoreOptions,
  ) {
    this.sql = new SqliteSqlClient(connection);
    this.path = options.path;
    this.inode = options.path === ':memory:' ? null : statSync(options.path).ino;
    this.limits = { ...DEFAULT_LIMITS, ...options.limits };
    this.clock = options.clock ?? (() => new Date());
    this.pollIntervalMs = options.pollIntervalMs ?? 1000;
    this.pageSize = options.pageSize ?? 1000;
    this.groupCommit = options.groupCommit ?? true;
    this.readAheadAfterPages = options.readAheadAfterPages ?? READ_AHEAD_AFTER_PAGES;
    this.readAheadMemoryMb = options.readAheadMemoryMb ?? 256;
  }

  appendToStream(
    stream: string,
    events: readonly EventData[],
    options?: AppendOptions,
  ): Promise<AppendResult> {
    if (this.closed) return Promise.reject(new StoreClosedError());
    let prepared: PreparedAppend;
    try {
      prepared = prepareAppend(stream, events, options?.expectedRevision, this.limits, () => uuidv7());
    } catch (error) {
      return Promise.reject(error);
    }
    return new Promise((resolve, reject) => {
      this.pending.push({ kind: 'append', prepared, resolve, reject });
      this.scheduleFlush();
    });
  }

  /**
   * The write transaction is the lock: this process is the file's only writer, its appends take
   * turns in one queue, and `BEGIN IMMEDIATE` keeps any other process out until the commit. So a
   * decision made inside it, on events read inside it, is made on the stream as it stands, and is
   * written (and synced) with the batch it travels in.
   */
  appendUnderLock(
    stream: string,
    options: AppendUnderLockOptions,
    decide: LockedDecision,
  ): Promise<AppendResult | null> {
    if (this.closed) return Promise.reject(new StoreClosedError());
    let work: { stream: string; knownRevision: number | null };
    try {
      work = {
        stream: validateStreamName(stream),
        knownRevision: validateKnownRevision(options?.knownRevision),
      };
    } catch (error) {
      return Promise.reject(error);
    }
    return new Promise((resolve, reject) => {
      this.pending.push({ kind: 'locked', ...work, decide, resolve, reject });
      this.scheduleFlush();
    });
  }

  /**
   * Group commit: appends that arrive while a transaction is being written wait for the next
   * one, and all of them share its single fsync. Each keeps its own checks and outcome.
   */
  private scheduleFlush(): void {
    if (this.flushScheduled || this.flushing) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.flushing = this.flush().finally(() => {
        this.flushing = null;
        if (this.pending.length > 0) this.scheduleFlush();
      });
    });
  }

  private async flush(): Promise<void> {
    const lock = this.connection.lock;
    if (!lock.tryAcquire()) await lock.acquire();
    const batch = this.groupCommit ? this.pending.splice(0) : this.pending.splice(0, 1);
    const outcomes: Outcome[] = [];
    // Stream heads written by this transaction; they reach the cache only once it commits.
    const written = new Map<string, StreamHead>();
    let deferred = false;
    try {
      if (this.connection.isClosed) throw new StoreClosedError();
      if (this.connection.syncFailure) throw this.connection.syncFailure;
      const recordedAt = this.clock().toISOString();
      const db = this.connection.db;
      // Without group commit (the benchmark's baseline) every append keeps its own fsync, inline.
      deferred = this.groupCommit && this.connection.skipCommitSync();
      try {
        this.connection.prepare('BEGIN IMMEDIATE').run();
        try {
          for (const append of batch) {
            try {
              const result =
                append.kind === 'append'
                  ? this.write(append.prepared, recordedAt, written)
                  : this.decideAndWrite(append, recordedAt, written);
              outcomes.push({ ok: true, result });
            } catch (error) {
              if (error instanceof Refusal) outcomes.push({ ok: false, error: error.error });
              else if (isStorageFailure(error)) throw error;
              else outcomes.push({ ok: false, error: mapSqliteError(error) });
            }
          }
          this.connection.prepare('COMMIT').run();
        } catch (error) {
          if (db.inTransaction) this.connection.prepare('ROLLBACK').run();
          throw error;
        }
      } finally {
        if (deferred) this.connection.restoreCommitSync();
      }
    } catch (error) {
      lock.release();
      const mapped = mapSqliteError(error);
      for (const append of batch) append.reject(mapped);
      return;
    }
    lock.release();
    for (const [stream, head] of written) this.heads.remember(stream, head);
    const settle = (failure?: unknown) => {
      batch.forEach((append, i) => {
        const outcome = outcomes[i];
        if (failure !== undefined) append.reject(failure);
        else if (!outcome?.ok) append.reject(outcome?.error);
        else if (append.kind === 'locked') append.resolve(outcome.result);
        else append.resolve(outcome.result as AppendResult);
      });
    };
    if (!deferred) {
      settle();
      this.wakeLive();
      return;
    }
    // The commit skipped its fsync; the log is synced on the thread pool while the next batch is
    // written, and this batch is acknowledged (and shown to subscribers) only once it is durable.
    const range = positionRange(outcomes);
    if (range) this.durable.committed(range.first, range.last);
    const synced = this.connection.syncLog().then(
      () => {
        if (range) this.durable.synced(range.last);
        settle();
        this.wakeLive();
      },
      (error) => settle(mapSqliteError(error)),
    );
    this.syncs.add(synced);
    void synced.finally(() => this.syncs.delete(synced));
  }

  /**
   * Writes one append inside the batch transaction. Checks run before any write, so a refused
   * append leaves nothing behind; a multi-event append writes under a savepoint so that a
   * failure half-way (an id already used elsewhere) undoes its own rows and nobody else's.
   */
  private write(
    append: PreparedAppend,
    recordedAt: string,
    written: Map<string, StreamHead>,
    retried = false,
  ): AppendResult {
    const { stream, expectedRevision, events } = append;
    const head = written.get(stream) ?? this.headOf(stream);
    const current = head?.revision ?? null;
    const firstId = events[0]?.id as string;
    try {
      checkExpectedRevision(stream, expectedRevision, current);
    } catch (error) {
      const replay = this.findReplay(append, current);
      if (replay) return replay;
      throw error;
    }
    const sealed = sealEvents({
      stream,
      startRevision: current === null ? 0 : current + 1,
      previousHash: head?.hash ?? null,
      recordedAt,
      events,
    });
    const insert = this.connection.prepare(
      'INSERT INTO events (id, stream, revision, type, data, metadata, recorded_at, hash, previous_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)',
    );
    const guarded = sealed.length > 1;
    if (guarded) this.connection.prepare('SAVEPOINT append').run();
    let recorded: RecordedEvent[];
    try {
      recorded = sealed.map((s): RecordedEvent => {
        const info = insert.run(
          args(
            s.id,
            s.stream,
            s.revision,
            s.type,
            s.dataJson,
            s.metadataJson,
            s.recordedAt,
            s.hash,
            s.previousHash,
          ),
        );
        return {
          id: s.id,
          stream: s.stream,
          revision: s.revision,
          position: sequencePosition(info.lastInsertRowid),
          type: s.type,
          data: JSON.parse(s.dataJson),
          metadata: JSON.parse(s.metadataJson),
          recordedAt: s.recordedAt,
          hash: s.hash,
          previousHash: s.previousHash,
        };
      });
      if (guarded) this.connection.prepare('RELEASE append').run();
    } catch (error) {
      if (guarded) {
        this.connection.prepare('ROLLBACK TO append').run();
        this.connection.prepare('RELEASE append').run();
      }
      if (uniqueViolationOn(error, 'events.id')) {
        const replay = this.findReplay(append, current);
        if (replay) return replay;
        const taken = events.find((e) =>
          this.connection.prepare('SELECT 1 FROM events WHERE id = $1').get(args(e.id)),
        );
        throw new EventIdConflictError(
          taken?.id ?? firstId,
          'by another append (this one is not its replay)',
        );
      }
      if (uniqueViolationOn(error, 'events.stream') && !retried) {
        // Another process wrote to this stream behind our cache: forget it and decide again.
        this.heads.delete(stream);
        written.delete(stream);
        return this.write(append, recordedAt, written, true);
      }
      throw error;
    }
    const last = recorded[recorded.length - 1] as RecordedEvent;
    written.set(stream, { revision: last.revision, hash: last.hash });
    return {
      nextExpectedRevision: last.revision,
      position: last.position,
      events: recorded,
      idempotent: false,
    };
  }

  /**
   * A decision under the lock, inside the batch transaction: on the stream's head as the file has
   * it (the cache could miss another process's write) and as the earlier appends of this batch
   * left it, which commit or roll back together with it.
   */
  private decideAndWrite(
    work: Extract<PendingAppend, { kind: 'locked' }>,
    recordedAt: string,
    written: Map<string, StreamHead>,
  ): AppendResult | null {
    const { stream, knownRevision, decide } = work;
    if (!written.has(stream)) this.heads.delete(stream);
    const revision = (written.get(stream) ?? this.headOf(stream))?.revision ?? null;
    let events: RecordedEvent[] = [];
    if (revision !== null && revision > (knownRevision ?? -1)) {
      const statement = this.connection
        .prepare(`SELECT ${ROW_JSON} FROM events WHERE stream = $1 AND revision > $2 ORDER BY revision`)
        .pluck(true);
      try {
        events = parseRows(statement.all(args(stream, knownRevision ?? -1)) as string[]).map(toRecorded);
      } catch (error) {
        throw error instanceof UnreadablePage ? this.corrupt(error) : error;
      }
    }
    let decided: readonly EventData[];
    try {
      decided = decide({ revision, events });
    } catch (error) {
      throw new Refusal(error);
    }
    if (Array.isArray(decided) && decided.length === 0) return null;
    const prepared = prepareAppend(stream, decided, revision ?? 'no_stream', this.limits, () => uuidv7());
    return this.write(prepared, recordedAt, written);
  }

  /**
   * The recorded events when this append's ids are already in the log where it would have put
   * them (an idempotent retry); null when its first id is new. Any other reuse of an id is a
   * conflict, and a retry at another revision a revision mismatch.
   */
  private findReplay(append: PreparedAppend, current: number | null): AppendResult | null {
    const { stream, expectedRevision, events } = append;
    const found = this.connection
      .prepare('SELECT stream, revision FROM events WHERE id = $1')
      .get(args(events[0]?.id)) as { stream: string; revision: number } | undefined;
    if (!found) return null;
    const statement = this.connection
      .prepare(
        `SELECT ${ROW_JSON} FROM events WHERE stream = $1 AND revision >= $2 ORDER BY revision LIMIT $3`,
      )
      .pluck(true);
    let rows: EventRow[];
    try {
      rows = parseRows(statement.all(args(found.stream, found.revision, events.length)) as string[]);
    } catch (error) {
      throw error instanceof UnreadablePage ? this.corrupt(error) : error;
    }
    assertIdempotentReplay(
      stream,
      expectedRevision,
      events.map((e) => e.id),
      { ...found, ids: rows.map((r) => r[2]) },
      current,
    );
    const recorded = rows.map(toRecorded);
    const last = recorded[recorded.length - 1] as RecordedEvent;
    return {
      nextExpectedRevision: last.revision,
      position: last.position,
      events: recorded,
      idempotent: true,
    };
  }

  private headOf(stream: string): StreamHead | null {
    const cached = this.heads.get(stream);
    if (cached) return cached;
    const row = this.connection
      .prepare('SELECT revision, hash FROM events WHERE stream = $1 ORDER BY revision DESC LIMIT 1')
      .get(args(stream)) as StreamHead | undefined;
    return row ?? null;
  }

  readStream(stream: string, options?: ReadStreamOptions): AsyncIterable<RecordedEvent> {
    return this.paged(() => {
      this.assertOpen();
      const { direction, fromRevision, maxCount } = validateReadStreamOptions(options);
      const forwards = direction === 'forwards';
      const exists = this.connection
        .prepare('SELECT 1 FROM events WHERE stream = $1 LIMIT 1')
        .get(args(stream));
      if (!exists) throw new StreamNotFoundError(stream);
      if (forwards && fromRevision === 'end') return null;
      return {
        sql: forwards
          ? `SELECT ${ROW_JSON} FROM events WHERE stream = $1 AND revision >= $2 ORDER BY revision ASC LIMIT $3`
          : `SELECT ${ROW_JSON} FROM events WHERE stream = $1 AND revision <= $2 ORDER BY revision DESC LIMIT $3`,
        before: [stream],
        after: [],
        cursor:
          fromRevision === 'start' ? 0 : fromRevision === 'end' ? Number.MAX_SAFE_INTEGER : fromRevision,
        remaining: maxCount,
        pageSize: this.pageSize,
        forwards,
        cursorIndex: 1,
        stopBelowZero: true,
      };
    });
  }

  readAll(options?: ReadAllOptions): AsyncIterable<RecordedEvent> {
    return this.paged(() => {
      this.assertOpen();
      const { direction, fromPosition, maxCount, filter } = validateReadAllOptions(options);
      const forwards = direction === 'forwards';
      if (forwards && fromPosition === 'end') return null;
      if (!forwards && fromPosition === 'start') return null;
      const where = filterSql(filter, 2);
      return {
        sql: forwards
          ? `SELECT ${ROW_JSON} FROM events WHERE position >= $1${where.sql} ORDER BY position ASC LIMIT $${where.next}`
          : `SELECT ${ROW_JSON} FROM events WHERE position <= $1${where.sql} ORDER BY position DESC LIMIT $${where.next}`,
        before: [],
        after: where.params,
        cursor:
          fromPosition === 'start'
            ? 0
            : fromPosition === 'end'
              ? Number.MAX_SAFE_INTEGER
              : parsePosition(fromPosition),
        remaining: maxCount,
        pageSize: this.pageSize,
        forwards,
        cursorIndex: 0,
        stopBelowZero: false,
      };
    });
  }

  /**
   * A paged read: the first pages in this thread, the rest (a long read) continued on a read-ahead
   * thread when the file allows it. `open` runs at the first `next()`, so that bad options, a
   * missing stream and a closed store reject there, as a generator's body would; null: nothing to read.
   */
  private paged(open: () => PageJob | null): AsyncIterable<RecordedEvent> {
    return {
      [Symbol.asyncIterator]: () => {
        let statement: Database.Statement | null = null;
        return new EventPages(
          open,
          (job) => {
            this.assertOpen();
            statement ??= this.connection.prepare(job.sql).pluck(true);
            const rows = statement.all(pageParams(job)) as string[];
            advance(job, rows);
            return rows;
          },
          (job) => this.readAhead(job),
          this.readAheadAfterPages === false || this.path === ':memory:' ? null : this.readAheadAfterPages,
          (page) => this.corrupt(page),
        );
      },
    };
  }

  /**
   * The error for a page's unreadable text, naming its event: the position leads the text (it is
   * the row id, always an integer), and the row it names gives the stream, revision and id as
   * stored, which the broken text may not.
   */
  private corrupt(page: UnreadablePage): CorruptEventError {
    const position = leadingInteger(page.text, 0);
    let row: { id: unknown; stream: unknown; revision: unknown } | undefined;
    try {
      if (Number.isSafeInteger(position) && !this.closed) {
        row = this.connection
          .prepare('SELECT id, stream, revision FROM events WHERE position = $1')
          .get(args(position)) as typeof row;
      }
    } catch {
      // Then the error names what the text itself gives.
    }
    const revision = row ? row.revision : leadingInteger(page.text, 1);
    return new CorruptEventError(
      {
        stream: typeof row?.stream === 'string' ? row.stream : null,
        revision: Number.isSafeInteger(revision) ? (revision as number) : null,
        position: Number.isSafeInteger(position) ? sequencePosition(position) : page.text.slice(1, 21),
        eventId: typeof row?.id === 'string' ? row.id : null,
      },
      { cause: page.cause },
    );
  }

  /** A read-ahead thread for the rest of a long read, or null to go on in this thread. */
  private readAhead(job: PageJob): ReadAhead | null {
    if (this.closed || this.readAheads.size >= MAX_READ_AHEADS) return null;
    let ahead: ReadAhead;
    try {
      ahead = new ReadAhead(
        this.path,
        { ...job },
        (closed) => this.readAheads.delete(closed),
        this.readAheadMemoryMb,
      );
    } catch {
      // No thread to be had (resources exhausted): the read goes on in this thread.
      return null;
    }
    this.readAheads.add(ahead);
    return ahead;
  }

  subscribeToAll(options?: SubscribeToAllOptions): Subscription {
    this.assertOpen();
    const queue = new AsyncQueue<SubscriptionMessage>(options?.batchSize ?? this.pageSize);
    this.subscriptions.add(queue);
    const from = options?.fromPosition ?? 'start';
    const batchSize = options?.batchSize ?? this.pageSize;
    const where = filterSql(options?.filter, 3);
    const pageStatement = this.connection
      .prepare(
        `SELECT ${ROW_JSON} FROM events WHERE position > $1 AND position <= $2${where.sql} ORDER BY position ASC LIMIT $${where.next}`,
      )
      .pluck(true);
    const run = async () => {
      validateBatchSize(options?.batchSize, this.pageSize);
      let after = from === 'start' ? 0 : from === 'end' ? this.head() : parsePosition(from);
      let caughtUp = false;
      while (!queue.closed) {
        const head = this.durable.cap(this.head());
        let rows: EventRow[];
        try {
          rows = parseRows(pageStatement.all(args(after, head, ...where.params, batchSize)) as string[]);
        } catch (error) {
          if (!(error instanceof UnreadablePage)) throw error;
          // The events before it are delivered; the subscription then fails with the one it cannot read.
          for (const row of error.rows) queue.push({ kind: 'event', event: toRecorded(row) });
          throw this.corrupt(error);
        }
        for (const row of rows) queue.push({ kind: 'event', event: toRecorded(row) });
        if (rows.length === batchSize) {
          after = (rows[rows.length - 1] as EventRow)[0];
          // Reads are synchronous and the consumer's SQL too: without a turn of the event loop
          // between pages, a long catch-up (a rebuild: a minute) runs as one chain of promise
          // callbacks, and no timer, socket or request is served until it ends.
          await new Promise<void>((resolve) => setImmediate(resolve));
        } else {
          const lastRow = rows[rows.length - 1];
          // Events the filter dropped still count as progress: report it so the caller can checkpoint.
          if (head > after && (!lastRow || lastRow[0] < head))
            queue.push({ kind: 'checkpoint', position: sequencePosition(head) });
          after = Math.max(after, head);
          if (!caughtUp) {
            caughtUp = true;
            queue.push({ kind: 'caught-up', position: after > 0 ? sequencePosition(after) : null });
          }
          await this.waitForAppend();
        }
        await queue.waitForDemand();
      }
    };
    run()
      .catch((error) => queue.fail(mapSqliteError(error)))
      .finally(() => this.subscriptions.delete(queue));
    return {
      [Symbol.asyncIterator]: () => queue,
      takeBuffered: (max) => queue.takeBuffered(max),
      close: async () => {
        queue.cancel();
        this.wakeLive();
      },
    };
  }

  private head(): number {
    const row = this.connection.prepare('SELECT max(position) AS head FROM events').get() as {
      head: number | null;
    };
    return row.head ?? 0;
  }

  private waitForAppend(): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.liveWaiters.delete(wake);
        resolve();
      };
      // Appends by another process on the same file are only seen by polling.
      const timer = setTimeout(wake, this.pollIntervalMs);
      this.liveWaiters.add(wake);
    });
  }

  private wakeLive(): void {
    for (const wake of [...this.liveWaiters]) wake();
  }

  async streamRevision(stream: string): Promise<number | null> {
    this.assertOpen();
    const row = this.connection
      .prepare('SELECT revision FROM events WHERE stream = $1 ORDER BY revision DESC LIMIT 1')
      .get(args(stream)) as { revision: number } | undefined;
    return row?.revision ?? null;
  }

  async headPosition(): Promise<Position | null> {
    this.assertOpen();
    const head = this.head();
    return head > 0 ? sequencePosition(head) : null;
  }

  canonicalPosition(position: string): Position {
    return sequencePosition(parsePosition(position));
  }

  async ping(): Promise<void> {
    this.assertOpen();
    // `SELECT 1` never touches the file: a database moved or deleted under the process answered
    // it, while appends went to a file no restart would find.
    if (this.inode !== null) {
      let found: number | null = null;
      try {
        found = statSync(this.path).ino;
      } catch {
        found = null;
      }
      if (found !== this.inode) {
        throw new StoreUnavailableError(
          `The database file at ${this.path} is ${found === null ? 'gone' : 'another file'}; restart once it is back`,
        );
      }
    }
    try {
      this.connection.prepare('PRAGMA schema_version').get();
    } catch (error) {
      throw mapSqliteError(error);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    while (this.flushing || this.flushScheduled || this.pending.length > 0) {
      await (this.flushing ?? new Promise((resolve) => setImmediate(resolve)));
    }
    await Promise.all(this.syncs);
    for (const ahead of [...this.readAheads]) ahead.close();
    for (const queue of this.subscriptions) queue.end();
    this.wakeLive();
    await this.connection.lock.acquire();
    this.connection.close();
    this.connection.lock.release();
  }

  private assertOpen(): void {
    if (this.closed) throw new StoreClosedError();
  }
}

/** Iterators abandoned without `return()`: their read-ahead thread ends with them. */
const abandoned = new FinalizationRegistry<ReadAhead>((ahead) => ahead.close());

/**
 * Hands events out of pages with no generator suspension per event, so that a full read spends
 * its time in SQLite and JSON.parse (measured: 289-299k instead of 264-275k events/s for `readAll`
 * of 1M events, before read-ahead). Pages are read synchronously in this thread; after
 * `readAheadAfterPages` of them, a read with more to come goes on from a read-ahead thread.
 */
class EventPages implements AsyncIterator<RecordedEvent> {
  /** When this read last let the event loop run (see `next`). */
  private lastTurn = performance.now();
  private job: PageJob | null = null;
  private opened = false;
  private finished = false;
  private rows: EventRow[] = [];
  private index = 0;
  private pagesRead = 0;
  private ahead: ReadAhead | null = null;
  private fetching: Promise<IteratorResult<RecordedEvent>> | null = null;
  /** What ends the read once `rows` (the events before an unreadable one) are handed out. */
  private failure: Error | null = null;

  constructor(
    private readonly open: () => PageJob | null,
    private readonly readPage: (job: PageJob) => string[],
    private readonly startReadAhead: (job: PageJob) => ReadAhead | null,
    /** Pages read here before a read-ahead thread may take over; null: never (or no more). */
    private readAheadAfterPages: number | null,
    private readonly corrupt: (page: UnreadablePage) => Error,
  ) {}

  next(): Promise<IteratorResult<RecordedEvent>> {
    // Calls made while a page is on its way (allowed: nobody has to await one before the next)
    // take their turn after it, in order.
    if (this.fetching) return this.fetching.then(this.nextInTurn, this.nextInTurn);
    if (this.index < this.rows.length) {
      return Promise.resolve({ done: false, value: toRecorded(this.rows[this.index++] as EventRow) });
    }
    if (this.failure) {
      const failure = this.failure;
      this.finish();
      return Promise.reject(failure);
    }
    if (this.finished) return done();
    // Pages read here and pages the read-ahead thread has buffered are handed out on promises
    // alone, which never let timers or sockets run: a consumer of 100,000 events (an audit) held
    // the service's event loop for half a second at a time. Between pages, once this read has
    // run that long since its last turn, it takes one.
    if (performance.now() - this.lastTurn >= TURN_EVERY_MS) return this.takeTurn();
    if (this.ahead) return this.fetch(this.ahead);
    return this.readInThread();
  }

  private takeTurn(): Promise<IteratorResult<RecordedEvent>> {
    const turn = new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
      this.lastTurn = performance.now();
      if (this.fetching === turn) this.fetching = null;
      return this.next();
    });
    this.fetching = turn;
    return turn;
  }

  private readInThread(): Promise<IteratorResult<RecordedEvent>> {
    try {
      if (!this.opened) {
        this.opened = true;
        this.job = this.open();
      }
      const job = this.job;
      while (job && hasMore(job)) {
        const page = this.readPage(job);
        this.take(page);
        this.pagesRead++;
        if (this.failure) {
          if (this.rows.length === 0) throw this.failure;
          return Promise.resolve({ done: false, value: toRecorded(this.rows[this.index++] as EventRow) });
        }
        if (this.readAheadAfterPages !== null && this.pagesRead >= this.readAheadAfterPages && hasMore(job)) {
          this.ahead = this.startReadAhead(job);
          if (this.ahead) abandoned.register(this, this.ahead, this);
        }
        if (this.rows.length > 0) {
          return Promise.resolve({ done: false, value: toRecorded(this.rows[this.index++] as EventRow) });
        }
        if (this.ahead) return this.fetch(this.ahead);
      }
      this.finish();
      return done();
    } catch (error) {
      this.finish();
      return Promise.reject(error);
    }
  }

  return(): Promise<IteratorResult<RecordedEvent>> {
    this.finish();
    return done();
  }

  /** A page's events; up to an unreadable one, which then ends the read. */
  private take(texts: readonly string[]): void {
    this.index = 0;
    try {
      this.rows = parseRows(texts);
    } catch (error) {
      if (!(error instanceof UnreadablePage)) throw error;
      this.rows = error.rows;
      this.failure = this.corrupt(error);
    }
  }

  private readonly nextInTurn = () => this.next();

  private fetch(ahead: ReadAhead): Promise<IteratorResult<RecordedEvent>> {
    const fetching = this.nextAhead(ahead);
    this.fetching = fetching;
    const clear = () => {
      if (this.fetching === fetching) this.fetching = null;
    };
    fetching.then(clear, clear);
    return fetching;
  }

  private async nextAhead(ahead: ReadAhead): Promise<IteratorResult<RecordedEvent>> {
    try {
      for (;;) {
        const texts = await ahead.next();
        if (texts === null) {
          this.finish();
          return { done: true, value: undefined };
        }
        // Kept in step with the thread, so that this thread can take over where it stopped.
        if (this.job) advance(this.job, texts);
        this.take(texts);
        if (this.rows.length > 0)
          return { done: false, value: toRecorded(this.rows[this.index++] as EventRow) };
        if (this.failure) throw this.failure;
      }
    } catch (error) {
      if (error instanceof ReadAheadThreadError && !this.finished) {
        // The thread itself failed (it could not start, or a page did not fit in its memory): the
        // read goes on here, from the last page it delivered. Failures of SQLite are the read's.
        this.dropReadAhead();
        this.readAheadAfterPages = null;
        return this.readInThread();
      }
      this.finish();
      throw error;
    }
  }

  private dropReadAhead(): void {
    if (!this.ahead) return;
    abandoned.unregister(this);
    this.ahead.close();
    this.ahead = null;
  }

  private finish(): void {
    this.finished = true;
    this.rows = [];
    this.index = 0;
    this.failure = null;
    this.dropReadAhead();
  }
}

function done(): Promise<IteratorResult<RecordedEvent>> {
  return Promise.resolve({ done: true, value: undefined });
}

/** Parses one text built by {@link ROW_JSON}. */
function parseRow(text: string): EventRow {
  const row = JSON.parse(text) as EventRow;
  // Ten elements, each column one value: a data or metadata text that is several JSON values
  // (or part of one) would otherwise shift the columns after it instead of failing to parse.
  if (row.length !== 10) {
    throw new SyntaxError('A stored event has data or metadata that is not one JSON value');
  }
  return row;
}

/** A page whose text at `rows.length` is not an event's: the events before it, that text, and why. */
class UnreadablePage {
  constructor(
    readonly rows: EventRow[],
    readonly text: string,
    readonly cause: unknown,
  ) {}
}

function parseRows(texts: readonly string[]): EventRow[] {
  const rows = new Array<EventRow>(texts.length);
  let i = 0;
  // Only the failure pays for finding out where: this loop is the hot path of every read.
  try {
    for (; i < texts.length; i++) rows[i] = parseRow(texts[i] as string);
  } catch (error) {
    throw new UnreadablePage(rows.slice(0, i), texts[i] as string, error);
  }
  return rows;
}

function toRecorded(row: EventRow): RecordedEvent {
  return {
    id: row[2],
    stream: row[3],
    revision: row[1],
    position: sequencePosition(row[0]),
    type: row[4],
    data: row[5],
    metadata: row[6] as RecordedEvent['metadata'],
    recordedAt: row[7],
    hash: row[8],
    previousHash: row[9],
  };
}

/**
 * The last position known durable while commits wait for their log sync. Syncs end in the order
 * of their commits (one runs at a time and each covers everything written before it), so one
 * number suffices: below the first unsynced commit until its sync ends, then up to that commit.
 */
class DurableHorizon {
  /** Null: everything committed is durable. */
  private limit: number | null = null;
  private lastCommitted = 0;

  committed(first: number, last: number): void {
    if (this.limit === null) this.limit = first - 1;
    this.lastCommitted = last;
  }

  synced(last: number): void {
    if (this.limit === null) return;
    this.limit = last >= this.lastCommitted ? null : Math.max(this.limit, last);
  }

  cap(head: number): number {
    return this.limit === null ? head : Math.min(head, this.limit);
  }
}

function positionRange(outcomes: readonly Outcome[]): { first: number; last: number } | null {
  let first = Number.POSITIVE_INFINITY;
  let last = 0;
  for (const outcome of outcomes) {
    if (!outcome.ok || outcome.result === null || outcome.result.idempotent) continue;
    for (const event of outcome.result.events) {
      const position = Number(event.position);
      if (position < first) first = position;
      if (position > last) last = position;
    }
  }
  return last > 0 ? { first, last } : null;
}

function parsePosition(position: string): number {
  if (!/^\d{1,20}$/.test(position))
    throw new InvalidReadOptionsError(`'${position.slice(0, 40)}' is not a position of this store`);
  const value = Number(position);
  if (!Number.isSafeInteger(value)) throw new InvalidReadOptionsError('position out of range');
  return value;
}

function filterSql(
  filter: EventFilter | undefined,
  firstParam: number,
): { sql: string; params: string[]; next: number } {
  const clauses: string[] = [];
  const params: string[] = [];
  let n = firstParam;
  const streamPrefixes = filter?.streamPrefixes ?? [];
  if (streamPrefixes.length > 0) {
    clauses.push(`(${streamPrefixes.map(() => `instr(stream, $${n++}) = 1`).join(' OR ')})`);
    params.push(...streamPrefixes);
  }
  const types = filter?.eventTypes ?? [];
  const typePrefixes = filter?.eventTypePrefixes ?? [];
  if (types.length + typePrefixes.length > 0) {
    const alternatives = [
      ...types.map(() => `type = $${n++}`),
      ...typePrefixes.map(() => `instr(type, $${n++}) = 1`),
    ];
    clauses.push(`(${alternatives.join(' OR ')})`);
    params.push(...types, ...typePrefixes);
  }
  return { sql: clauses.map((c) => ` AND ${c}`).join(''), params, next: n };
}

function uniqueViolationOn(error: unknown, column: string): boolean {
  return (
    (error as { code?: unknown })?.code === 'SQLITE_CONSTRAINT_UNIQUE' &&
    String((error as Error).message).includes(column)
  );
}

/** Failures of the database itself end the whole batch; rule violations end only their append. */
function isStorageFailure(error: unknown): boolean {
  const code = (error as { code?: unknown })?.code;
  return typeof code === 'string' && code.startsWith('SQLITE_') && !code.startsWith('SQLITE_CONSTRAINT');
}
