import { randomUUID } from 'node:crypto';
import {
  type AppendOptions,
  type AppendResult,
  type AppendUnderLockOptions,
  AsyncQueue,
  DEFAULT_LIMITS,
  type EventData,
  type EventFilter,
  type EventStore,
  type EventStoreLimits,
  type LockedDecision,
  type Position,
  type PreparedAppend,
  prepareAppend,
  type ReadAllOptions,
  type ReadStreamOptions,
  type RecordedEvent,
  type SqlClient,
  StoreClosedError,
  StreamNotFoundError,
  type SubscribeToAllOptions,
  type Subscription,
  type SubscriptionMessage,
  validateBatchSize,
  validateKnownRevision,
  validateReadAllOptions,
  validateReadStreamOptions,
  validateStreamName,
} from '@muster/event-store';
import type pg from 'pg';
import { type AppendRow, buildBatchCall, interpretAppend, splitRows } from './append.js';
import {
  boundedBegin,
  clientConfig,
  createPool,
  PgConnector,
  PgSqlClient,
  queryTimeoutOf,
} from './connection.js';
import {
  type ConnectionTarget,
  InvalidConnectionStringError,
  isConnectionError,
  mapOpenError,
  mapPgError,
  parseConnectionString,
} from './errors.js';
import { EventChannel } from './event-channel.js';
import { type Cursor, formatPosition, justAfter, justBefore, ORIGIN, parsePosition } from './positions.js';
import { migrateSchema, STREAM_LOCK_SQL } from './schema.js';

export interface PostgresEventStoreOptions {
  /** `postgres://user:password@host:port/database` */
  connectionString: string;
  /** Pooled connections for appends, reads and the SQL port (default 10); one more listens. */
  poolSize?: number;
  limits?: Partial<EventStoreLimits>;
  /** Source of `recordedAt`; tests pass a controlled clock. */
  clock?: () => Date;
  /** Polling fallback of live subscriptions, for when a notification is lost (default 1000). */
  pollIntervalMs?: number;
  /** Rows per page when reading, and events per page of a catching-up subscription (default 2500). */
  pageSize?: number;
  /**
   * How long `readAll`, `headPosition` and a subscription about to report `caught-up` wait for
   * transactions older than the newest committed event to finish, so that a caller reads its own
   * appends (default 1000). Past it they return what is safe to deliver; nothing is ever skipped.
   */
  visibilityWaitMs?: number;
  /** How long to wait for a new connection (default 5000). */
  connectTimeoutMs?: number;
  /**
   * How long a statement may go unanswered before its connection is given up and replaced
   * (StoreUnavailableError; default 30,000, 0: no limit). Migrations are never cut off.
   */
  queryTimeoutMs?: number;
  /**
   * Group commit (default true): appends that arrive while others are being written are sent
   * together, in one call and one transaction. Off, every append is its own transaction: only
   * useful as a benchmark baseline.
   */
  groupCommit?: boolean;
  /**
   * Batches written at once, each on its own pooled connection (default 2, at most `poolSize`).
   * A stream is never in two batches at once, so its appends still apply in issue order.
   */
  maxBatchesInFlight?: number;
  /**
   * For a writer that pipelines (default false): an append whose exact expected revision is the
   * one an earlier, still unsettled append to the same stream through this instance would produce
   * is chained to it, and is written only on top of that append's last event. Without this, when
   * the earlier append fails because another process wrote, the later one can pass its revision
   * check on the other process's event, on a state it was never decided on. Leave it off when
   * independent writers in one process each read a stream and append with what they read: one of
   * them could be taken for a pipelined successor and refused.
   */
  chainPipelinedAppends?: boolean;
}

export interface PostgresEventStore extends EventStore {
  readonly kind: 'postgres';
  /** The SQL port on the same pool: read models live in the same database as the events. */
  readonly sql: SqlClient;
  /** Offered: the stream's advisory lock, held in a transaction of its own (see the guide). */
  appendUnderLock(
    stream: string,
    options: AppendUnderLockOptions,
    decide: LockedDecision,
  ): Promise<AppendResult | null>;
}

interface PendingAppend {
  prepared: PreparedAppend;
  /** The last event id of the unsettled append this one was issued behind, or null. */
  afterId: string | null;
  /** Issue order through this instance (see `EndWatcher`). */
  seq: number;
  resolve: (result: AppendResult) => void;
  reject: (error: unknown) => void;
}

/**
 * A decision under a stream's lock (`appendUnderLock`), in line with this instance's appends to the
 * stream: it starts once those issued before it are written, and those issued after it wait.
 */
interface LockedTurn {
  stream: string;
  seq: number;
  started: boolean;
  start: () => void;
  cancel: (error: unknown) => void;
}

/** What `decide` threw: the caller's own refusal, handed back as it is. */
class Refusal {
  constructor(readonly error: unknown) {}
}

/** Bounds of one batch: a call's arguments are held in memory and sent as one message. */
const BATCH_MAX_EVENTS = 2000;
const BATCH_MAX_BYTES = 4 * 1024 * 1024;

/** What a subscriber may see now. */
interface Horizon {
  /** pg_snapshot_xmin: every transaction below it has finished. */
  xmin: bigint;
  /** The last event below xmin: everything up to it is final, in order, with no hole. */
  head: Position | null;
  /** The newest committed transaction with events (may be at or above xmin: held back). */
  top: bigint | null;
}

/**
 * Re-check cadence while committed events wait behind an open transaction. Its end may notify no
 * one (a rollback, a raw transaction, any other transaction holding the horizon), so subscribers
 * look again on their own, backing off from 10 ms to this.
 */
const HELD_BACK_MAX_DELAY_MS = 250;

/**
 * The columns of an event, read in array mode (no object per row from pg). The server sends them
 * as they are stored; building JSON there (json_build_object, row_to_json, or one concat() per row
 * parsed once per page) saved the client a little and cost the shared server one and a half to
 * twice as much per event.
 */
const COLUMNS = `e.transaction_id::text, e.global_position::text, e.id::text, e.stream, e.revision, e.type,
  e.data, e.metadata, e.recorded_at, e.hash, e.previous_hash`;

type EventRow = [
  xid: string,
  pos: string,
  id: string,
  stream: string,
  revision: number,
  type: string,
  data: unknown,
  metadata: RecordedEvent['metadata'],
  recordedAt: string,
  hash: string,
  previousHash: string | null,
];

function pageSql(where: string, orderBy: string, limit: string): string {
  return `SELECT ${COLUMNS} FROM muster_events e WHERE ${where} ORDER BY ${orderBy} LIMIT ${limit}`;
}

const READ_STREAM_FORWARDS = pageSql('e.stream = $1 AND e.revision >= $2', 'e.revision ASC', '$3');
const READ_STREAM_BACKWARDS = pageSql('e.stream = $1 AND e.revision <= $2', 'e.revision DESC', '$3');
/** Read under the stream's lock in one go: `decide` is handed the whole tail at once anyway. */
const READ_TAIL = pageSql('e.stream = $1 AND e.revision > $2', 'e.revision ASC', 'ALL');
const STREAM_REVISION = 'SELECT revision FROM muster_events WHERE stream = $1 ORDER BY revision DESC LIMIT 1';

const HORIZON_SQL = `
SELECT s.xmin::text AS xmin, h.transaction_id::text AS head_xid, h.global_position::text AS head_pos,
       t.transaction_id::text AS top_xid
  FROM (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin) s
  LEFT JOIN LATERAL (
    SELECT e.transaction_id, e.global_position FROM muster_events e
     WHERE e.transaction_id < s.xmin
     ORDER BY e.transaction_id DESC, e.global_position DESC LIMIT 1) h ON true
  LEFT JOIN LATERAL (
    SELECT e.transaction_id FROM muster_events e ORDER BY e.transaction_id DESC LIMIT 1) t ON true`;

export async function openPostgresEventStore(
  options: PostgresEventStoreOptions,
): Promise<PostgresEventStore> {
  const target = parseConnectionString(options?.connectionString);
  const pool = createPool(target, options);
  try {
    const client = await pool.connect();
    try {
      await checkServer(client, target);
      await migrateSchema(client);
    } finally {
      client.release();
    }
  } catch (error) {
    await pool.end().catch(() => {});
    throw mapOpenError(error, target);
  }
  return new PostgresStore(pool, clientConfig(target, options), options);
}

/** xid8 and pg_current_snapshot need PostgreSQL 13; hashing text needs a UTF-8 database. */
async function checkServer(client: pg.ClientBase, target: ConnectionTarget): Promise<void> {
  const { rows } = await client.query<{ version: string; encoding: string }>(
    "SELECT current_setting('server_version_num') AS version, current_setting('server_encoding') AS encoding",
  );
  const row = rows[0];
  if (!row || Number(row.version) < 130000) {
    throw new InvalidConnectionStringError(
      `PostgreSQL at ${target.description} is version ${row?.version}; 13 or later is required`,
    );
  }
  if (row.encoding !== 'UTF8') {
    throw new InvalidConnectionStringError(
      `PostgreSQL database at ${target.description} uses ${row.encoding} encoding; UTF8 is required`,
    );
  }
}

class PostgresStore implements PostgresEventStore {
  readonly kind = 'postgres' as const;
  readonly sql: SqlClient;
  private readonly connector: PgConnector;
  private readonly channel: EventChannel;
  private readonly limits: EventStoreLimits;
  private readonly clock: () => Date;
  private readonly pollIntervalMs: number;
  private readonly pageSize: number;
  private readonly visibilityWaitMs: number;
  private readonly liveWaiters = new Set<() => void>();
  private readonly subscriptions = new Set<AsyncQueue<SubscriptionMessage>>();
  private closed = false;
  private readonly groupCommit: boolean;
  private readonly maxBatchesInFlight: number;
  /** Appends not yet sent, in issue order. */
  private pending: PendingAppend[] = [];
  /** Streams of the batches being written: their later appends wait, so that order holds. */
  private readonly busyStreams = new Set<string>();
  private readonly inFlight = new Set<Promise<void>>();
  /**
   * Per stream, the last append issued and not yet settled: the revision it would bring the stream
   * to (when its expected revision is exact) and its last event id. An append issued behind it that
   * expects that revision is chained to it: written only on top of that very event.
   */
  private readonly unsettled = new Map<string, { end: number | null; lastId: string }>();
  private readonly chainPipelinedAppends: boolean;
  private launchScheduled = false;
  /** Appends issued through this instance so far. */
  private issued = 0;
  /** Subscriptions from 'end' still finding out where the end is. */
  private readonly endWatchers = new Set<EndWatcher>();
  /** Per stream, the decisions under its lock waiting or running, in issue order. */
  private readonly lockedTurns = new Map<string, LockedTurn[]>();
  private readonly lockedRunning = new Set<Promise<unknown>>();
  /** How a decision under a stream's lock begins: see `boundedBegin`. */
  private readonly lockedBegin: string;

  constructor(
    private readonly pool: pg.Pool,
    channelConfig: pg.ClientConfig,
    options: PostgresEventStoreOptions,
  ) {
    this.connector = new PgConnector(pool);
    this.sql = new PgSqlClient(this.connector, queryTimeoutOf(options));
    this.limits = { ...DEFAULT_LIMITS, ...options.limits };
    this.clock = options.clock ?? (() => new Date());
    this.pollIntervalMs = options.pollIntervalMs ?? 1000;
    this.pageSize = options.pageSize ?? 2500;
    this.visibilityWaitMs = options.visibilityWaitMs ?? 1000;
    this.groupCommit = options.groupCommit ?? true;
    this.chainPipelinedAppends = options.chainPipelinedAppends ?? false;
    this.lockedBegin = boundedBegin('BEGIN', queryTimeoutOf(options));
    const poolSize = options.poolSize ?? 10;
    this.maxBatchesInFlight = this.groupCommit
      ? Math.max(1, Math.min(options.maxBatchesInFlight ?? 2, poolSize))
      : poolSize;
    this.channel = new EventChannel(channelConfig, () => this.wakeLive(), randomUUID());
    this.channel.start();
  }

  appendToStream(
    stream: string,
    events: readonly EventData[],
    options?: AppendOptions,
  ): Promise<AppendResult> {
    if (this.closed) return Promise.reject(new StoreClosedError());
    let prepared: PreparedAppend;
    try {
      prepared = prepareAppend(stream, events, options?.expectedRevision, this.limits, randomUUID);
    } catch (error) {
      return Promise.reject(error);
    }
    if (!this.chainPipelinedAppends) {
      return new Promise((resolve, reject) => {
        this.pending.push({ prepared, afterId: null, seq: ++this.issued, resolve, reject });
        this.scheduleLaunch();
      });
    }
    const { stream: name, expectedRevision: expected, events: sealed } = prepared;
    const previous = this.unsettled.get(name);
    const afterId =
      previous && previous.end !== null && typeof expected === 'number' && expected === previous.end
        ? previous.lastId
        : null;
    const start = expected === 'no_stream' ? -1 : typeof expected === 'number' ? expected : null;
    const mine = {
      end: start === null ? null : start + sealed.length,
      lastId: (sealed[sealed.length - 1] as PreparedAppend['events'][number]).id,
    };
    this.unsettled.set(name, mine);
    const settled = () => {
      if (this.unsettled.get(name) === mine) this.unsettled.delete(name);
    };
    return new Promise((resolve, reject) => {
      this.pending.push({
        prepared,
        afterId,
        seq: ++this.issued,
        resolve: (result) => {
          settled();
          resolve(result);
        },
        reject: (error) => {
          settled();
          reject(error);
        },
      });
      this.scheduleLaunch();
    });
  }

  /**
   * Group commit: appends issued in the same turn of the event loop, or while a batch is being
   * written, go together in the next batch. Waiting one turn (setImmediate) is what lets
   * concurrent callers meet; under load the batches fill up while the previous ones commit.
   */
  private scheduleLaunch(): void {
    if (this.launchScheduled || this.inFlight.size >= this.maxBatchesInFlight) return;
    this.launchScheduled = true;
    setImmediate(() => {
      this.launchScheduled = false;
      this.launch();
    });
  }

  private launch(): void {
    while (this.pending.length > 0 && this.inFlight.size < this.maxBatchesInFlight) {
      // Everything that waits goes in one batch: on a busy server fewer, larger transactions
      // cost less per append than several small ones at once. A second batch leaves at once
      // with what arrives while the first is being written.
      const batch = this.takeBatch(this.groupCommit ? Number.POSITIVE_INFINITY : 1);
      if (batch.length === 0) return;
      const streams = new Set(batch.map((p) => p.prepared.stream));
      for (const stream of streams) this.busyStreams.add(stream);
      const running: Promise<void> = this.writeBatch(batch).finally(() => {
        for (const stream of streams) this.busyStreams.delete(stream);
        this.inFlight.delete(running);
        this.admitLockedTurns();
        if (this.pending.length > 0) this.scheduleLaunch();
      });
      this.inFlight.add(running);
    }
  }

  /**
   * The next batch, in issue order: appends to a stream that is being written stay behind, and so
   * do all later appends to that stream. Several appends to one stream may share a batch: the
   * function applies them in order.
   */
  private takeBatch(maxAppends: number): PendingAppend[] {
    const batch: PendingAppend[] = [];
    const rest: PendingAppend[] = [];
    let events = 0;
    let bytes = 0;
    let full = false;
    for (const append of this.pending) {
      if (full || this.busyStreams.has(append.prepared.stream) || this.behindLockedTurn(append)) {
        rest.push(append);
        continue;
      }
      const size = append.prepared.events.reduce((sum, e) => sum + e.dataJson.length, 0);
      const count = append.prepared.events.length;
      if (batch.length > 0 && (events + count > BATCH_MAX_EVENTS || bytes + size > BATCH_MAX_BYTES)) {
        full = true;
        rest.push(append);
        continue;
      }
      batch.push(append);
      events += count;
      bytes += size;
      if (batch.length >= maxAppends) full = true;
    }
    this.pending = rest;
    return batch;
  }

  /** Writes one batch and settles each of its appends with its own outcome. Never rejects. */
  private async writeBatch(batch: PendingAppend[]): Promise<void> {
    let groups: AppendRow[][];
    let sealed: ReturnType<typeof buildBatchCall>;
    try {
      if (this.closed) throw new StoreClosedError();
      sealed = buildBatchCall(
        batch.map((p) => p.prepared),
        this.clock().toISOString(),
        batch.map((p) => p.afterId),
      );
      const call = sealed.call;
      // Safe to repeat on a fresh connection: the event ids are fixed, so a first attempt that did
      // commit makes the second an idempotent replay of every append of the batch.
      const rows = await this.connector.withClient(
        async (client) => (await client.query<AppendRow>(call)).rows,
        true,
      );
      groups = splitRows(batch.length, rows);
    } catch (error) {
      // The batch was refused as a whole and rolled back (a deadlock, a statement timeout, an
      // unexpected error of one append): write the appends one by one, so that each gets its own
      // outcome. A lost connection is different: the batch may have committed, and every append
      // of it gets the same retryable error (retrying with the same ids writes each once).
      if (
        batch.length > 1 &&
        !this.closed &&
        !isConnectionError(error) &&
        !(error instanceof StoreClosedError)
      ) {
        for (const append of batch) await this.writeBatch([append]);
        return;
      }
      const mapped = mapPgError(error);
      for (const append of batch) append.reject(mapped);
      return;
    }
    let wrote = false;
    batch.forEach((append, i) => {
      try {
        const result = interpretAppend(
          append.prepared,
          sealed.metadataJson[i] as string[],
          sealed.recordedAt,
          groups[i] as AppendRow[],
        );
        wrote ||= !result.idempotent;
        if (!result.idempotent) this.noteEnd(append.seq, result);
        append.resolve(result);
      } catch (error) {
        append.reject(error);
      }
    });
    if (wrote) {
      this.wakeLive();
      this.channel.notify();
    }
  }

  /** An append issued after a subscription from 'end' was asked for is past that end. */
  private noteEnd(seq: number, result: AppendResult): void {
    if (this.endWatchers.size === 0) return;
    const first = (result.events[0] as RecordedEvent).position;
    for (const watcher of this.endWatchers) {
      if (seq > watcher.since && (watcher.floor === null || first < watcher.floor)) watcher.floor = first;
    }
  }

  /**
   * A transaction of its own, on its own pooled connection beside the batches: the stream's lock
   * (the key the append function takes), the events past `knownRevision`, `decide`, and the append
   * through the same function, which takes the lock again at once (re-entrant in the session).
   * Nothing else appends to the stream from the lock to the commit, so the decision is made on the
   * stream as it stands and the append cannot conflict.
   */
  async appendUnderLock(
    stream: string,
    options: AppendUnderLockOptions,
    decide: LockedDecision,
  ): Promise<AppendResult | null> {
    this.assertOpen();
    const name = validateStreamName(stream);
    const known = validateKnownRevision(options?.knownRevision);
    const seq = ++this.issued;
    const running = (async () => {
      await this.lockedTurn(name, seq);
      try {
        return await this.decideUnderLock(name, known, decide, seq);
      } finally {
        this.endLockedTurn(name);
      }
    })();
    this.lockedRunning.add(running);
    const settled = () => this.lockedRunning.delete(running);
    running.then(settled, settled);
    return running;
  }

  /** Resolves when the turn may start: see LockedTurn. */
  private lockedTurn(stream: string, seq: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const turn: LockedTurn = { stream, seq, started: false, start: resolve, cancel: reject };
      const queue = this.lockedTurns.get(stream);
      if (queue) queue.push(turn);
      else this.lockedTurns.set(stream, [turn]);
      this.admitLockedTurns();
    });
  }

  private endLockedTurn(stream: string): void {
    const queue = this.lockedTurns.get(stream);
    queue?.shift();
    if (queue?.length === 0) this.lockedTurns.delete(stream);
    this.busyStreams.delete(stream);
    this.admitLockedTurns();
    if (this.pending.length > 0) this.scheduleLaunch();
  }

  /** Whether an append waits for a decision under its stream's lock issued before it. */
  private behindLockedTurn(append: PendingAppend): boolean {
    const first = this.lockedTurns.get(append.prepared.stream)?.[0];
    return first !== undefined && first.seq < append.seq;
  }

  /**
   * Starts each stream's first waiting turn once no batch is writing the stream and no append
   * issued before it is still queued. The stream is then busy: no batch takes it until the turn ends.
   */
  private admitLockedTurns(): void {
    for (const [stream, queue] of this.lockedTurns) {
      const turn = queue[0];
      if (!turn || turn.started || this.busyStreams.has(stream)) continue;
      if (this.pending.some((p) => p.prepared.stream === stream && p.seq < turn.seq)) continue;
      turn.started = true;
      this.busyStreams.add(stream);
      turn.start();
    }
  }

  private async decideUnderLock(
    stream: string,
    known: number | null,
    decide: LockedDecision,
    seq: number,
  ): Promise<AppendResult | null> {
    let refusal: Refusal | null = null;
    // The append an attempt sent before its connection was lost: it may have committed.
    let sent: PreparedAppend | null = null;
    try {
      // Safe to run again on a fresh connection when a reused one turns out to be dead: what was
      // sent is sent again first, with its fixed ids, and is then either found (it committed: an
      // idempotent replay) or written (the stream is still where it was decided); only when the
      // stream has moved on meanwhile is the decision made again, on the stream as it is then.
      return await this.connector.withClient(async (client) => {
        // The stream's lock is held across statements: a client gone without a word must not keep
        // it (and with it every replica's appends to the stream) until the server finds out.
        await client.query(this.lockedBegin);
        try {
          await client.query({ name: 'muster_stream_lock', text: STREAM_LOCK_SQL, values: [stream] });
          // Stamped with the lock held: no other append to the stream can commit before this one
          // from here on, so the stamp precedes the commit by this transaction's last round trips
          // only, not by a wait for the lock as a batch's stamp may.
          const recordedAt = this.clock().toISOString();
          let result: AppendResult | null | undefined;
          if (sent !== null) result = await this.appendOn(client, sent, recordedAt, true);
          if (result === undefined) {
            let events = await this.eventsOn(client, 'locked_tail', READ_TAIL, [stream, known ?? -1]);
            let revision = events.length > 0 ? (events[events.length - 1] as RecordedEvent).revision : null;
            if (revision === null) {
              const { rows } = await client.query<{ revision: number }>({
                name: 'muster_stream_revision',
                text: STREAM_REVISION,
                values: [stream],
              });
              revision = rows[0]?.revision ?? null;
              events = [];
            }
            let decided: readonly EventData[];
            try {
              decided = decide({ revision, events });
            } catch (error) {
              refusal = new Refusal(error);
              throw refusal;
            }
            if (Array.isArray(decided) && decided.length === 0) {
              result = null;
            } else {
              const prepared = prepareAppend(
                stream,
                decided,
                revision ?? 'no_stream',
                this.limits,
                randomUUID,
              );
              sent = prepared;
              result = (await this.appendOn(client, prepared, recordedAt, false)) as AppendResult;
            }
          }
          if (result === null || result.idempotent) {
            await client.query('ROLLBACK');
            return result;
          }
          await client.query('COMMIT');
          // At once, as for a batch: a subscription from 'end' must not take this for before its end.
          this.noteEnd(seq, result);
          this.wakeLive();
          this.channel.notify();
          return result;
        } catch (error) {
          if (!isConnectionError(error)) await client.query('ROLLBACK').catch(() => {});
          throw error;
        }
      }, true);
    } catch (error) {
      if (refusal !== null && error === refusal) throw (refusal as Refusal).error;
      throw error;
    }
  }

  /**
   * One append through the batch function, in the caller's transaction. Resent after a lost
   * connection, a revision mismatch means the first attempt did not commit and the stream moved
   * on: undefined, decide again.
   */
  private async appendOn(
    client: pg.PoolClient,
    prepared: PreparedAppend,
    recordedAt: string,
    resent: boolean,
  ): Promise<AppendResult | undefined> {
    const sealed = buildBatchCall([prepared], recordedAt, [null]);
    const [rows] = splitRows(1, (await client.query<AppendRow>(sealed.call)).rows) as [AppendRow[]];
    if (resent && rows[0]?.o_outcome === 'wrong-expected-revision') return undefined;
    return interpretAppend(prepared, sealed.metadataJson[0] as string[], recordedAt, rows);
  }

  private async eventsOn(
    client: pg.PoolClient,
    name: string,
    text: string,
    values: unknown[],
  ): Promise<RecordedEvent[]> {
    const { rows } = await client.query<EventRow>({ name: `muster_${name}`, text, values, rowMode: 'array' });
    return rows.map(toRecorded);
  }

  async *readStream(stream: string, options?: ReadStreamOptions): AsyncGenerator<RecordedEvent> {
    this.assertOpen();
    const { direction, fromRevision, maxCount } = validateReadStreamOptions(options);
    const forwards = direction === 'forwards';
    const text = forwards ? READ_STREAM_FORWARDS : READ_STREAM_BACKWARDS;
    let cursor =
      fromRevision === 'start' ? 0 : fromRevision === 'end' ? Number.MAX_SAFE_INTEGER : fromRevision;
    let remaining = forwards && fromRevision === 'end' ? 0 : maxCount;
    let first = true;
    for (;;) {
      const events =
        remaining > 0
          ? await this.events(forwards ? 'read_stream_fw' : 'read_stream_bw', text, [
              stream,
              cursor,
              Math.min(this.pageSize, remaining),
            ])
          : [];
      if (first && events.length === 0 && !(await this.streamExists(stream))) {
        throw new StreamNotFoundError(stream);
      }
      first = false;
      yield* events;
      remaining -= events.length;
      if (remaining <= 0 || events.length < this.pageSize) return;
      const last = events[events.length - 1] as RecordedEvent;
      cursor = forwards ? last.revision + 1 : last.revision - 1;
      if (cursor < 0) return;
      this.assertOpen();
    }
  }

  async *readAll(options?: ReadAllOptions): AsyncGenerator<RecordedEvent> {
    this.assertOpen();
    const { direction, fromPosition, maxCount, filter } = validateReadAllOptions(options);
    const forwards = direction === 'forwards';
    if (forwards && fromPosition === 'end') return;
    if (!forwards && fromPosition === 'start') return;
    const from = fromPosition === 'start' || fromPosition === 'end' ? null : parsePosition(fromPosition);
    if (maxCount === 0) return;
    const head = (await this.settledHorizon()).head;
    if (head === null) return;
    const headCursor = parsePosition(head);
    let remaining = maxCount;
    if (forwards) {
      // fromPosition is inclusive: start just below it.
      let after: Cursor = from ? justBefore(from) : ORIGIN;
      while (remaining > 0) {
        const events = await this.page(
          after,
          headCursor,
          filter,
          Math.min(this.pageSize, remaining),
          'forwards',
        );
        yield* events;
        remaining -= events.length;
        if (events.length < this.pageSize) return;
        after = parsePosition((events[events.length - 1] as RecordedEvent).position);
        this.assertOpen();
      }
    } else {
      let before: Cursor = from === null || positionOf(from) > head ? justAfter(headCursor) : justAfter(from);
      while (remaining > 0) {
        const events = await this.page(
          before,
          ORIGIN,
          filter,
          Math.min(this.pageSize, remaining),
          'backwards',
        );
        yield* events;
        remaining -= events.length;
        if (events.length < this.pageSize) return;
        before = parsePosition((events[events.length - 1] as RecordedEvent).position);
        this.assertOpen();
      }
    }
  }

  subscribeToAll(options?: SubscribeToAllOptions): Subscription {
    this.assertOpen();
    const batchSize = options?.batchSize ?? this.pageSize;
    const queue = new AsyncQueue<SubscriptionMessage>(batchSize);
    this.subscriptions.add(queue);
    const from = options?.fromPosition ?? 'start';
    const filter = options?.filter;
    // Taken now, not when the end is read: an append issued after this call must be delivered.
    const watcher: EndWatcher | null = from === 'end' ? { since: this.issued, floor: null } : null;
    if (watcher) this.endWatchers.add(watcher);
    const run = async () => {
      validateBatchSize(options?.batchSize, this.pageSize);
      let after: Position | null =
        from === 'start'
          ? null
          : from === 'end'
            ? endBelow((await this.settledHorizon()).head, watcher?.floor ?? null)
            : positionOf(parsePosition(from));
      if (watcher) this.endWatchers.delete(watcher);
      let caughtUp = false;
      let settleTarget: bigint | null = null;
      let settleDeadline = 0;
      let heldBackPolls = 0;
      let horizon: Horizon | null = null;
      let morePages = false;
      // While catching up, the next page is fetched as soon as the current one arrives, so that the
      // database works while the subscriber consumes; it is used only for the same (after, head).
      let prefetched: { after: Position; head: Position; events: Promise<RecordedEvent[]> } | null = null;
      while (!queue.closed) {
        // While catching up below a known head, the head stays valid: no need to ask again.
        if (!morePages || horizon === null) horizon = await this.horizon();
        morePages = false;
        const head = horizon.head;
        if (head !== null && (after === null || head > after)) {
          const events: RecordedEvent[] =
            prefetched !== null && prefetched.after === after && prefetched.head === head
              ? await prefetched.events
              : await this.page(
                  after === null ? ORIGIN : parsePosition(after),
                  parsePosition(head),
                  filter,
                  batchSize,
                  'forwards',
                );
          prefetched = null;
          if (queue.closed) return;
          const last = events[events.length - 1];
          if (events.length === batchSize && last && last.position < head) {
            const next = this.page(
              parsePosition(last.position),
              parsePosition(head),
              filter,
              batchSize,
              'forwards',
            );
            // A failure surfaces when the page is awaited; unawaited (the subscription closed), it is moot.
            next.catch(() => {});
            prefetched = { after: last.position, head, events: next };
          }
          for (const event of events) queue.push({ kind: 'event', event });
          heldBackPolls = 0;
          if (events.length === batchSize && last) {
            after = last.position;
            morePages = last.position < head;
            await queue.waitForDemand();
            continue;
          }
          // Events the filter dropped still count as progress: report it so the caller can checkpoint.
          if (!last || last.position < head) {
            queue.push({ kind: 'checkpoint', position: head });
          }
          after = head;
        }
        // Committed events wait behind an older transaction that is still open (or that rolled
        // back, which notifies no one): look again soon rather than at the next poll.
        const heldBack = horizon.top !== null && horizon.top >= horizon.xmin;
        if (!caughtUp) {
          if (heldBack && this.visibilityWaitMs > 0) {
            if (settleTarget === null) {
              settleTarget = horizon.top;
              settleDeadline = Date.now() + this.visibilityWaitMs;
            }
            if (settleTarget !== null && horizon.xmin <= settleTarget && Date.now() < settleDeadline) {
              await this.waitForAppend(5);
              continue;
            }
          }
          caughtUp = true;
          queue.push({ kind: 'caught-up', position: after });
        }
        if (!heldBack) heldBackPolls = 0;
        const delay = heldBack
          ? Math.min(this.pollIntervalMs, HELD_BACK_MAX_DELAY_MS, 10 * 2 ** Math.min(heldBackPolls++, 8))
          : this.pollIntervalMs;
        await this.waitForAppend(delay);
        await queue.waitForDemand();
      }
    };
    run()
      .catch((error) => queue.fail(mapPgError(error)))
      .finally(() => {
        this.subscriptions.delete(queue);
        if (watcher) this.endWatchers.delete(watcher);
      });
    return {
      [Symbol.asyncIterator]: () => queue,
      takeBuffered: (max) => queue.takeBuffered(max),
      close: async () => {
        queue.cancel();
        this.wakeLive();
      },
    };
  }

  async streamRevision(stream: string): Promise<number | null> {
    this.assertOpen();
    const rows = await this.query<{ revision: number }>('stream_revision', STREAM_REVISION, [stream]);
    return rows[0]?.revision ?? null;
  }

  async headPosition(): Promise<Position | null> {
    this.assertOpen();
    return (await this.settledHorizon()).head;
  }

  canonicalPosition(position: string): Position {
    const { xid, pos } = parsePosition(position);
    return formatPosition(xid, pos);
  }

  async ping(): Promise<void> {
    this.assertOpen();
    await this.query('ping', 'SELECT 1', []);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Appends not yet sent are refused; those being written finish with their own outcome.
    const unsent = this.pending;
    this.pending = [];
    for (const append of unsent) append.reject(new StoreClosedError());
    // So are decisions under a lock still waiting for their turn; those under way finish.
    for (const queue of this.lockedTurns.values()) {
      for (const turn of queue.filter((t) => !t.started)) turn.cancel(new StoreClosedError());
      queue.splice(0, queue.length, ...queue.filter((t) => t.started));
    }
    for (const queue of this.subscriptions) queue.end();
    this.wakeLive();
    await Promise.all([...this.inFlight]);
    await Promise.allSettled([...this.lockedRunning]);
    await this.channel.close();
    await this.pool.end().catch(() => {});
  }

  private async horizon(): Promise<Horizon> {
    const rows = await this.query<{
      xmin: string;
      head_xid: string | null;
      head_pos: string | null;
      top_xid: string | null;
    }>('horizon', HORIZON_SQL, []);
    const row = rows[0];
    if (!row) throw new Error('horizon query returned no row');
    return {
      xmin: BigInt(row.xmin),
      head:
        row.head_xid !== null && row.head_pos !== null ? formatPosition(row.head_xid, row.head_pos) : null,
      top: row.top_xid !== null ? BigInt(row.top_xid) : null,
    };
  }

  /**
   * The horizon once the transactions that were open below the newest committed event have
   * finished, or once visibilityWaitMs has passed: read-your-writes for readAll and headPosition.
   */
  private async settledHorizon(): Promise<Horizon> {
    let horizon = await this.horizon();
    if (horizon.top === null || horizon.top < horizon.xmin || this.visibilityWaitMs <= 0) return horizon;
    const target = horizon.top;
    const deadline = Date.now() + this.visibilityWaitMs;
    let delay = 1;
    while (Date.now() < deadline) {
      await sleep(delay);
      delay = Math.min(delay * 2, 50);
      this.assertOpen();
      horizon = await this.horizon();
      if (horizon.xmin > target) break;
    }
    return horizon;
  }

  /**
   * Events strictly past `from` and up to `to` inclusive in delivery order (forwards), or strictly
   * before `from` and after `to` (backwards). Bounded by a head below the horizon, every row of the
   * range is committed and final: later reads of the same range return the same rows.
   */
  private page(
    from: Cursor,
    to: Cursor,
    filter: EventFilter | undefined,
    limit: number,
    direction: 'forwards' | 'backwards',
  ): Promise<RecordedEvent[]> {
    const where = filterSql(filter, 6);
    const forwards = direction === 'forwards';
    const text = forwards
      ? pageSql(
          `(e.transaction_id, e.global_position) > ($1::xid8, $2::bigint)
            AND (e.transaction_id, e.global_position) <= ($3::xid8, $4::bigint)${where.sql}`,
          'e.transaction_id ASC, e.global_position ASC',
          '$5',
        )
      : pageSql(
          `(e.transaction_id, e.global_position) < ($1::xid8, $2::bigint)
            AND (e.transaction_id, e.global_position) > ($3::xid8, $4::bigint)${where.sql}`,
          'e.transaction_id DESC, e.global_position DESC',
          '$5',
        );
    return this.events(`page_${direction}_${where.shape}`, text, [
      from.xid,
      from.pos,
      to.xid,
      to.pos,
      limit,
      ...where.params,
    ]);
  }

  private async streamExists(stream: string): Promise<boolean> {
    const rows = await this.query('stream_exists', 'SELECT 1 FROM muster_events WHERE stream = $1 LIMIT 1', [
      stream,
    ]);
    return rows.length > 0;
  }

  private events(name: string, text: string, values: unknown[]): Promise<RecordedEvent[]> {
    return this.connector.withClient((client) => this.eventsOn(client, name, text, values), true);
  }

  /** Reads are safe to repeat on a fresh connection when a pooled one turns out to be dead. */
  private query<T extends pg.QueryResultRow>(name: string, text: string, values: unknown[]): Promise<T[]> {
    return this.connector.withClient(
      async (client) => (await client.query<T>({ name: `muster_${name}`, text, values })).rows,
      true,
    );
  }

  private waitForAppend(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.liveWaiters.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.liveWaiters.add(wake);
    });
  }

  private wakeLive(): void {
    for (const wake of [...this.liveWaiters]) wake();
  }

  private assertOpen(): void {
    if (this.closed) throw new StoreClosedError();
  }
}

/**
 * A subscription from 'end' learns the end from the database a moment after it was asked for;
 * waiting for older transactions to settle makes that moment up to `visibilityWaitMs`. Appends
 * this instance issued after the call and wrote in that moment are past the end the caller meant.
 */
interface EndWatcher {
  /** `issued` when the subscription was asked for: later appends are after its end. */
  since: number;
  /** The first position written by such an append, or null while there is none. */
  floor: Position | null;
}

/** The exclusive start of a subscription from 'end': the head, or just below the first later append. */
function endBelow(head: Position | null, floor: Position | null): Position | null {
  if (floor === null || (head !== null && floor > head)) return head;
  return positionOf(justBefore(parsePosition(floor)));
}

function positionOf(cursor: Cursor): Position {
  return formatPosition(cursor.xid, cursor.pos);
}

function toRecorded(row: EventRow): RecordedEvent {
  const [xid, pos, id, stream, revision, type, data, metadata, recordedAt, hash, previousHash] = row;
  return {
    id,
    stream,
    revision,
    position: formatPosition(xid, pos),
    type,
    data,
    metadata,
    recordedAt,
    hash,
    previousHash,
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Filter conditions as SQL with numbered parameters. `shape` names the statement's form (how many
 * prefixes of each kind), so each form is prepared once per connection.
 */
function filterSql(
  filter: EventFilter | undefined,
  firstParam: number,
): { sql: string; params: string[]; shape: string } {
  const clauses: string[] = [];
  const params: string[] = [];
  let n = firstParam;
  const streamPrefixes = filter?.streamPrefixes ?? [];
  if (streamPrefixes.length > 0) {
    clauses.push(`(${streamPrefixes.map(() => `starts_with(stream, $${n++})`).join(' OR ')})`);
    params.push(...streamPrefixes);
  }
  const types = filter?.eventTypes ?? [];
  const typePrefixes = filter?.eventTypePrefixes ?? [];
  if (types.length + typePrefixes.length > 0) {
    const alternatives = [
      ...types.map(() => `type = $${n++}`),
      ...typePrefixes.map(() => `starts_with(type, $${n++})`),
    ];
    clauses.push(`(${alternatives.join(' OR ')})`);
    params.push(...types, ...typePrefixes);
  }
  return {
    sql: clauses.map((c) => ` AND ${c}`).join(''),
    params,
    shape: `${streamPrefixes.length}_${types.length}_${typePrefixes.length}`,
  };
}
