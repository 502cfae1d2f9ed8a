import { randomUUID } from 'node:crypto';
import {
  type AppendOptions,
  type AppendResult,
  AsyncQueue,
  DEFAULT_LIMITS,
  type EventData,
  type EventFilter,
  type EventStore,
  type EventStoreLimits,
  InvalidReadOptionsError,
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
  validateReadAllOptions,
  validateReadStreamOptions,
} from '@muster/event-store';
import type pg from 'pg';
import { type AppendRow, buildAppendCall, interpretAppend, mapAppendError } from './append.js';
import { clientConfig, createPool, PgConnector, PgSqlClient } from './connection.js';
import {
  type ConnectionTarget,
  InvalidConnectionStringError,
  mapOpenError,
  mapPgError,
  parseConnectionString,
} from './errors.js';
import { EventChannel } from './event-channel.js';
import { type Cursor, formatPosition, justAfter, justBefore, ORIGIN, parsePosition } from './positions.js';
import { migrateSchema } from './schema.js';

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
  /** Rows per page when reading (default 1000). */
  pageSize?: number;
  /**
   * How long `readAll`, `headPosition` and a subscription about to report `caught-up` wait for
   * transactions older than the newest committed event to finish, so that a caller reads its own
   * appends (default 1000). Past it they return what is safe to deliver; nothing is ever skipped.
   */
  visibilityWaitMs?: number;
  /** How long to wait for a new connection (default 5000). */
  connectTimeoutMs?: number;
}

export interface PostgresEventStore extends EventStore {
  readonly kind: 'postgres';
  /** The SQL port on the same pool: read models live in the same database as the events. */
  readonly sql: SqlClient;
}

interface EventRow {
  xid: string;
  pos: string;
  id: string;
  stream: string;
  revision: number;
  type: string;
  data: unknown;
  metadata: RecordedEvent['metadata'];
  recorded_at: string;
  hash: string;
  previous_hash: string | null;
}

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

const COLUMNS = `transaction_id::text AS xid, global_position::text AS pos, id::text AS id, stream, revision,
  type, data, metadata, recorded_at, hash, previous_hash`;

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
  private readonly streamTails = new Map<string, Promise<void>>();

  constructor(
    private readonly pool: pg.Pool,
    channelConfig: pg.ClientConfig,
    options: PostgresEventStoreOptions,
  ) {
    this.connector = new PgConnector(pool);
    this.sql = new PgSqlClient(this.connector);
    this.limits = { ...DEFAULT_LIMITS, ...options.limits };
    this.clock = options.clock ?? (() => new Date());
    this.pollIntervalMs = options.pollIntervalMs ?? 1000;
    this.pageSize = options.pageSize ?? 1000;
    this.visibilityWaitMs = options.visibilityWaitMs ?? 1000;
    this.channel = new EventChannel(channelConfig, () => this.wakeLive(), randomUUID());
    this.channel.start();
  }

  async appendToStream(
    stream: string,
    events: readonly EventData[],
    options?: AppendOptions,
  ): Promise<AppendResult> {
    if (this.closed) throw new StoreClosedError();
    const prepared: PreparedAppend = prepareAppend(
      stream,
      events,
      options?.expectedRevision,
      this.limits,
      randomUUID,
    );
    // Appends to one stream leave in the order they were issued (the port promises it: a writer
    // may send revision r + 1 before r has committed).
    const previous = this.streamTails.get(prepared.stream) ?? Promise.resolve();
    const turn = previous.then(() => this.appendNow(prepared));
    const tail = turn.then(
      () => {},
      () => {},
    );
    this.streamTails.set(prepared.stream, tail);
    void tail.then(() => {
      if (this.streamTails.get(prepared.stream) === tail) this.streamTails.delete(prepared.stream);
    });
    return turn;
  }

  private async appendNow(prepared: PreparedAppend): Promise<AppendResult> {
    if (this.closed) throw new StoreClosedError();
    const recordedAt = this.clock().toISOString();
    const sealed = buildAppendCall(prepared, recordedAt);
    // Safe to repeat on a fresh connection: the event ids are fixed, so a first attempt that did
    // commit makes the second an idempotent replay.
    const rows = await this.connector
      .withClient(async (client) => (await client.query<AppendRow>(sealed.call)).rows, true)
      .catch((error) => {
        throw mapAppendError(error, prepared);
      });
    const result = interpretAppend(prepared, sealed, recordedAt, rows);
    if (!result.idempotent) {
      this.wakeLive();
      this.channel.notify();
    }
    return result;
  }

  async *readStream(stream: string, options?: ReadStreamOptions): AsyncGenerator<RecordedEvent> {
    this.assertOpen();
    const { direction, fromRevision, maxCount } = validateReadStreamOptions(options);
    const forwards = direction === 'forwards';
    const text = forwards
      ? `SELECT ${COLUMNS} FROM muster_events WHERE stream = $1 AND revision >= $2 ORDER BY revision ASC LIMIT $3`
      : `SELECT ${COLUMNS} FROM muster_events WHERE stream = $1 AND revision <= $2 ORDER BY revision DESC LIMIT $3`;
    let cursor =
      fromRevision === 'start' ? 0 : fromRevision === 'end' ? Number.MAX_SAFE_INTEGER : fromRevision;
    let remaining = forwards && fromRevision === 'end' ? 0 : maxCount;
    let first = true;
    for (;;) {
      const rows =
        remaining > 0
          ? await this.rows(forwards ? 'read_stream_fw' : 'read_stream_bw', text, [
              stream,
              cursor,
              Math.min(this.pageSize, remaining),
            ])
          : [];
      if (first && rows.length === 0 && !(await this.streamExists(stream))) {
        throw new StreamNotFoundError(stream);
      }
      first = false;
      for (const row of rows) yield toRecorded(row);
      remaining -= rows.length;
      if (remaining <= 0 || rows.length < this.pageSize) return;
      const last = rows[rows.length - 1] as EventRow;
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
        const rows = await this.page(
          after,
          headCursor,
          filter,
          Math.min(this.pageSize, remaining),
          'forwards',
        );
        for (const row of rows) yield toRecorded(row);
        remaining -= rows.length;
        if (rows.length < this.pageSize) return;
        const last = rows[rows.length - 1] as EventRow;
        after = { xid: last.xid, pos: last.pos };
        this.assertOpen();
      }
    } else {
      let before: Cursor = from === null || positionOf(from) > head ? justAfter(headCursor) : justAfter(from);
      while (remaining > 0) {
        const rows = await this.page(before, ORIGIN, filter, Math.min(this.pageSize, remaining), 'backwards');
        for (const row of rows) yield toRecorded(row);
        remaining -= rows.length;
        if (rows.length < this.pageSize) return;
        const last = rows[rows.length - 1] as EventRow;
        before = { xid: last.xid, pos: last.pos };
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
    const run = async () => {
      if (!Number.isSafeInteger(batchSize) || batchSize < 1) {
        throw new InvalidReadOptionsError('batchSize must be a positive integer');
      }
      let after: Position | null =
        from === 'start'
          ? null
          : from === 'end'
            ? (await this.settledHorizon()).head
            : positionOf(parsePosition(from));
      let caughtUp = false;
      let settleTarget: bigint | null = null;
      let settleDeadline = 0;
      let heldBackPolls = 0;
      let horizon: Horizon | null = null;
      let morePages = false;
      while (!queue.closed) {
        // While catching up below a known head, the head stays valid: no need to ask again.
        if (!morePages || horizon === null) horizon = await this.horizon();
        morePages = false;
        const head = horizon.head;
        if (head !== null && (after === null || head > after)) {
          const rows = await this.page(
            after === null ? ORIGIN : parsePosition(after),
            parsePosition(head),
            filter,
            batchSize,
            'forwards',
          );
          if (queue.closed) return;
          for (const row of rows) queue.push({ kind: 'event', event: toRecorded(row) });
          heldBackPolls = 0;
          const last = rows[rows.length - 1];
          if (rows.length === batchSize && last) {
            after = formatPosition(last.xid, last.pos);
            morePages = after < head;
            await queue.waitForDemand();
            continue;
          }
          // Events the filter dropped still count as progress: report it so the caller can checkpoint.
          if (!last || formatPosition(last.xid, last.pos) < head) {
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
      .finally(() => this.subscriptions.delete(queue));
    return {
      [Symbol.asyncIterator]: () => queue,
      close: async () => {
        queue.end();
        this.wakeLive();
      },
    };
  }

  async streamRevision(stream: string): Promise<number | null> {
    this.assertOpen();
    const rows = await this.query<{ revision: number }>(
      'stream_revision',
      'SELECT revision FROM muster_events WHERE stream = $1 ORDER BY revision DESC LIMIT 1',
      [stream],
    );
    return rows[0]?.revision ?? null;
  }

  async headPosition(): Promise<Position | null> {
    this.assertOpen();
    return (await this.settledHorizon()).head;
  }

  async ping(): Promise<void> {
    this.assertOpen();
    await this.query('ping', 'SELECT 1', []);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const queue of this.subscriptions) queue.end();
    this.wakeLive();
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
  ): Promise<EventRow[]> {
    const where = filterSql(filter, 6);
    const forwards = direction === 'forwards';
    const text = forwards
      ? `SELECT ${COLUMNS} FROM muster_events
          WHERE (transaction_id, global_position) > ($1::xid8, $2::bigint)
            AND (transaction_id, global_position) <= ($3::xid8, $4::bigint)${where.sql}
          ORDER BY transaction_id ASC, global_position ASC LIMIT $5`
      : `SELECT ${COLUMNS} FROM muster_events
          WHERE (transaction_id, global_position) < ($1::xid8, $2::bigint)
            AND (transaction_id, global_position) > ($3::xid8, $4::bigint)${where.sql}
          ORDER BY transaction_id DESC, global_position DESC LIMIT $5`;
    return this.rows(`page_${direction}_${where.shape}`, text, [
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

  private rows(name: string, text: string, values: unknown[]): Promise<EventRow[]> {
    return this.query<EventRow>(name, text, values);
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

function positionOf(cursor: Cursor): Position {
  return formatPosition(cursor.xid, cursor.pos);
}

function toRecorded(row: EventRow): RecordedEvent {
  return {
    id: row.id,
    stream: row.stream,
    revision: row.revision,
    position: formatPosition(row.xid, row.pos),
    type: row.type,
    data: row.data,
    metadata: row.metadata,
    recordedAt: row.recorded_at,
    hash: row.hash,
    previousHash: row.previous_hash,
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
