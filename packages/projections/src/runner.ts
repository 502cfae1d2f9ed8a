import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import {
  type EventStore,
  migrate,
  type Position,
  type RecordedEvent,
  type SqlClient,
  type Subscription,
  type SubscriptionMessage,
} from '@muster/event-store';
import type { ReadinessChange } from './change-feed.js';
import { isProjectionError, ProjectionError } from './errors.js';
import { fenceLease, type Lease, readLeases, releaseLease, tryAcquireLease } from './lease.js';
import { type Logger, silentLogger } from './logger.js';
import { lagInEvents } from './positions.js';
import {
  createTables,
  dropTables,
  generationSuffix,
  type Projection,
  type ProjectionContext,
  type ProjectionMode,
  physicalName,
} from './projection.js';
import {
  type CheckpointRow,
  type RebuildRow,
  readCheckpoint,
  readCheckpoints,
  readRebuild,
  rebuildRowOf,
  runnerMigrations,
  sameAs,
} from './runner-schema.js';
import { Wakeups } from './wakeups.js';

export interface StartProjectionsOptions {
  store: EventStore;
  /** Where read models, checkpoints and leases live. */
  sql: SqlClient;
  projections: readonly Projection[];
  logger?: Logger;
  /** Source of "now" for leases and time-driven changes; tests pass a controlled clock. */
  clock?: () => Date;
  /** Names this process in lease rows; default `<host>:<pid>:<random>`. */
  instanceId?: string;
  /** How long a lease lasts without renewal (default 15 s); renewed every third of it. */
  leaseTtlMs?: number;
  /** Events per batch, each batch one transaction (default 500). */
  batchSize?: number;
  /**
   * Events per batch until the live runner has caught up with the log (default 2,000, or
   * `batchSize` when only that is given; never less than it). A catch-up (a start after
   * downtime, a new projection) pays a commit, the projection's per-batch rows and a log sync
   * per batch. Measured on 1M events: 27-31k events/s in batches of 500, 35.7-36k in batches of
   * 2,000, no better at 5,000 (33-38k), whose transactions would hold SQLite's one connection
   * from appends for about 150 ms each rather than 55.
   */
  catchUpBatchSize?: number;
  /** Restart delays after a failure: exponential from `initialMs` to `maxMs`, with full jitter. */
  backoff?: { initialMs?: number; maxMs?: number };
  /**
   * Time-driven changes are recorded once they are this far in the past (default 1 s), so that an
   * event stamped just before such an instant but committed just after it is still seen first.
   */
  timeGraceMs?: number;
  /** Longest sleep between two looks at the clock, the lease and pending swaps (default 1 s). */
  tickMs?: number;
  /** Checkpoint polling for waitForPosition when another process leads (default 25 ms). */
  pollMs?: number;
  /** [0, 1) for jitter; default Math.random. */
  random?: () => number;
}

export interface ProjectionStatus {
  name: string;
  version: number;
  /** The table generation serving reads. */
  generation: number;
  /** Everything up to here is in the read model (null: nothing yet). */
  position: Position | null;
  headPosition: Position | null;
  /** Events between position and head, where the store's positions allow counting them. */
  lagEvents: number | null;
  behind: boolean;
  /** This process has processed up to the head at least once since it took the lease. */
  caughtUp: boolean;
  isLeader: boolean;
  leader: { owner: string; expiresAt: string } | null;
  /** Time-driven changes are recorded up to this instant. */
  watermark: string | null;
  lastError: { message: string; code: string | null; at: string } | null;
  restarts: number;
  rebuild: {
    generation: number;
    /**
     * `building` while its builder holds the rebuild lease; `interrupted` once that lease has
     * expired with the shadow unfinished (its builder died or stalled: the lease holder of the
     * projection resumes it); `ready` once built, waiting for the lease holder to swap it in.
     */
    status: 'building' | 'ready' | 'interrupted';
    position: Position | null;
    events: number;
    /**
     * The process that holds, or last held, the rebuild lease, and when the shadow last moved (its
     * last committed batch): for an interrupted rebuild, when its builder was last seen. Null once
     * ready (the builder has let go) or when no lease was ever recorded.
     */
    builder: { owner: string; lastSeenAt: string } | null;
  } | null;
}

export interface RebuildProgress {
  name: string;
  generation: number;
  events: number;
  position: Position | null;
  headPosition: Position | null;
  phase: 'building' | 'swapping' | 'done';
}

export interface RebuildResult {
  name: string;
  generation: number;
  events: number;
  durationMs: number;
}

export interface ProjectionsHandle {
  status(): Promise<ProjectionStatus[]>;
  /** True once every projection has processed the log up to `position`; false after the timeout. */
  waitForPosition(position: Position, timeoutMs: number): Promise<boolean>;
  /** Called with the change-feed rows of each committed batch; returns the unsubscribe function. */
  onChanges(listener: (changes: readonly ReadinessChange[]) => void): () => void;
  /**
   * Builds a fresh generation of the projection's tables from position zero while the live one
   * keeps serving, then swaps it in atomically; resolves once swapped.
   */
  rebuild(
    name: string,
    options?: { onProgress?: (progress: RebuildProgress) => void },
  ): Promise<RebuildResult>;
  /** Look at the clock, the lease and pending swaps now rather than at the next tick. */
  poke(): void;
  /** Stops every projection, snapshots what memory holds, and lets the leases go. */
  close(): Promise<void>;
}

interface Settings {
  store: EventStore;
  sql: SqlClient;
  logger: Logger;
  clock: () => Date;
  owner: string;
  ttl: number;
  batchSize: number;
  catchUpBatchSize: number;
  backoffInitial: number;
  backoffMax: number;
  grace: number;
  tickMs: number;
  pollMs: number;
  random: () => number;
}

export async function startProjections(options: StartProjectionsOptions): Promise<ProjectionsHandle> {
  const names = new Set<string>();
  for (const p of options.projections) {
    if (names.has(p.name)) throw new TypeError(`two projections are named ${p.name}`);
    names.add(p.name);
  }
  const batchSize = options.batchSize ?? 500;
  // An explicit batchSize alone sets both: a caller that sized its batches keeps them.
  const catchUpBatchSize = options.catchUpBatchSize ?? options.batchSize ?? 2000;
  const settings: Settings = {
    store: options.store,
    sql: options.sql,
    logger: options.logger ?? silentLogger,
    clock: options.clock ?? (() => new Date()),
    owner: options.instanceId ?? `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`,
    ttl: options.leaseTtlMs ?? 15_000,
    batchSize,
    catchUpBatchSize: Math.max(batchSize, catchUpBatchSize),
    backoffInitial: options.backoff?.initialMs ?? 200,
    backoffMax: options.backoff?.maxMs ?? 30_000,
    grace: options.timeGraceMs ?? 1000,
    tickMs: options.tickMs ?? 1000,
    pollMs: options.pollMs ?? 25,
    random: options.random ?? Math.random,
  };
  await migrate(settings.sql, [
    ...runnerMigrations,
    ...options.projections.flatMap((p) => p.migrations ?? []),
  ]);
  for (const projection of options.projections) await ensureInstalled(settings, projection);
  const runner = new Runner(settings, options.projections);
  runner.start();
  return runner;
}

/**
 * Creates the live tables and the checkpoint row of a projection the database has never seen, and
 * the tables a later version of its code added to a projection it has seen (each table is created
 * only if missing, so this is a no-op once they exist).
 */
async function ensureInstalled(s: Settings, projection: Projection): Promise<void> {
  await s.sql.transaction(async (tx) => {
    if (tx.dialect === 'postgres') {
      await tx.execute('SELECT pg_advisory_xact_lock(hashtext($1))', [`projection:${projection.name}`]);
    }
    const installed = await readCheckpoint(tx, projection.name);
    if (installed) {
      await tx.script(createTables(projection, tx.dialect, installed.generation, 'live'));
      return;
    }
    // Tables without a checkpoint row are leftovers nobody can vouch for.
    await tx.script(dropTables(projection, 0, 'live'));
    await tx.script(createTables(projection, tx.dialect, 0, 'live'));
    await tx.execute(
      'INSERT INTO projection_checkpoints (name, position, version, generation, watermark, updated_at) VALUES ($1, NULL, $2, 0, NULL, $3)',
      [projection.name, projection.version, Date.now()],
    );
  });
}

/** What a process that runs the projection knows better than its tables. */
interface LocalStatus {
  generation?: number;
  position?: Position | null;
  watermark?: number | null;
  caughtUp: boolean;
  isLeader: boolean;
  lastError: ProjectionStatus['lastError'];
  restarts: number;
}

/** A rebuild row with its `updated_at` and what the `<name>#rebuild` lease says of its builder. */
interface RecordedRebuild extends RebuildRow {
  updatedAt: number;
  builder: { owner: string; expiresAt: number } | null;
}

/**
 * The rebuild row and its builder's lease in one query: this is what the lease holder reads at
 * every swap check, so noticing a builder that is gone costs no query of its own.
 */
async function readRecordedRebuild(sql: SqlClient, name: string): Promise<RecordedRebuild | null> {
  const [row] = await sql.query<Record<string, unknown>>(
    `SELECT r.generation, r.version, r.status, r.position, r.events, r.started_at, r.updated_at,
            l.owner AS builder, l.expires_at AS builder_expires_at
       FROM projection_rebuilds r LEFT JOIN projection_leases l ON l.name = $2
      WHERE r.name = $1`,
    [name, `${name}#rebuild`],
  );
  if (!row) return null;
  return {
    ...rebuildRowOf(name, row),
    updatedAt: Number(row.updated_at),
    builder:
      row.builder === null || row.builder === undefined
        ? null
        : { owner: String(row.builder), expiresAt: Number(row.builder_expires_at) },
  };
}

/** Unfinished, and nobody holds its lease: whoever builds it next resumes it. */
function isOrphaned(rebuild: RecordedRebuild, now: number): boolean {
  return rebuild.status === 'building' && !(rebuild.builder && rebuild.builder.expiresAt > now);
}

function rebuildStatus(rebuild: RecordedRebuild, now: number): NonNullable<ProjectionStatus['rebuild']> {
  const status = rebuild.status === 'ready' ? 'ready' : isOrphaned(rebuild, now) ? 'interrupted' : 'building';
  return {
    generation: rebuild.generation,
    status,
    position: rebuild.position,
    events: rebuild.events,
    builder:
      status !== 'ready' && rebuild.builder
        ? { owner: rebuild.builder.owner, lastSeenAt: new Date(rebuild.updatedAt).toISOString() }
        : null,
  };
}

function statusRow(
  projection: Projection,
  checkpoint: CheckpointRow | null,
  lease: { owner: string; expiresAt: number } | null,
  head: Position | null,
  rebuild: RecordedRebuild | null,
  now: number,
  local: LocalStatus,
): ProjectionStatus {
  const position = local.position !== undefined ? local.position : (checkpoint?.position ?? null);
  const watermark = local.watermark !== undefined ? local.watermark : (checkpoint?.watermark ?? null);
  return {
    name: projection.name,
    version: projection.version,
    generation: local.generation ?? checkpoint?.generation ?? 0,
    position,
    headPosition: head,
    lagEvents: lagInEvents(position, head),
    behind: head !== null && (position === null || position < head),
    caughtUp: local.caughtUp,
    isLeader: local.isLeader,
    leader:
      lease && lease.expiresAt > now
        ? { owner: lease.owner, expiresAt: new Date(lease.expiresAt).toISOString() }
        : null,
    watermark: watermark === null ? null : new Date(watermark).toISOString(),
    lastError: local.lastError,
    restarts: local.restarts,
    rebuild: rebuild ? rebuildStatus(rebuild, now) : null,
  };
}

/**
 * The projections' status as the database records it, for a process that runs none of them (the
 * CLI's `projections status`): reads only, so it neither creates tables, takes a lease, projects,
 * nor resumes an interrupted rebuild, as starting a runner would. A database the runner has never
 * started on reports each projection at generation 0 with nothing projected.
 */
export async function readProjectionStatus(options: {
  store: EventStore;
  sql: SqlClient;
  projections: readonly Projection[];
  clock?: () => Date;
}): Promise<ProjectionStatus[]> {
  const { sql } = options;
  const installed = await hasTable(sql, 'projection_checkpoints');
  const [checkpoints, leases, head] = await Promise.all([
    installed ? readCheckpoints(sql) : new Map<string, CheckpointRow>(),
    installed ? readLeases(sql) : new Map<string, { owner: string; expiresAt: number }>(),
    options.store.headPosition(),
  ]);
  const now = (options.clock ?? (() => new Date()))().getTime();
  const out: ProjectionStatus[] = [];
  for (const projection of options.projections) {
    const rebuild = installed ? await readRecordedRebuild(sql, projection.name) : null;
    out.push(
      statusRow(
        projection,
        checkpoints.get(projection.name) ?? null,
        leases.get(projection.name) ?? null,
        head,
        rebuild,
        now,
        { caughtUp: false, isLeader: false, lastError: null, restarts: 0 },
      ),
    );
  }
  return out;
}

async function hasTable(sql: SqlClient, table: string): Promise<boolean> {
  const rows =
    sql.dialect === 'postgres'
      ? await sql.query(
          'SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = current_schema() AND tablename = $1',
          [table],
        )
      : await sql.query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = $1", [table]);
  return rows.length > 0;
}

type ChangeListener = (changes: readonly ReadinessChange[]) => void;

/** Another process builds, or took over, the shadow: not a failure of this one. */
function isRebuildContention(error: unknown): boolean {
  return (
    isProjectionError(error) &&
    (error.code === 'rebuild-in-progress' ||
      error.code === 'lease-lost' ||
      error.code === 'rebuild-failed' ||
      error.code === 'projections-closed')
  );
}

class Runner implements ProjectionsHandle {
  private readonly workers = new Map<string, Worker>();
  private readonly listeners = new Set<ChangeListener>();
  private closed = false;
  private readonly progressWaiters = new Set<() => void>();

  constructor(
    private readonly s: Settings,
    projections: readonly Projection[],
  ) {
    for (const projection of projections) {
      this.workers.set(projection.name, new Worker(s, projection, this));
    }
  }

  start(): void {
    for (const worker of this.workers.values()) worker.start();
  }

  emitChanges(changes: readonly ReadinessChange[]): void {
    if (changes.length === 0) return;
    for (const listener of this.listeners) {
      try {
        listener(changes);
      } catch (error) {
        this.s.logger.error({ err: error }, 'change listener failed');
      }
    }
  }

  progressed(): void {
    for (const wake of [...this.progressWaiters]) wake();
  }

  onChanges(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  poke(): void {
    for (const worker of this.workers.values()) worker.wake();
  }

  async status(): Promise<ProjectionStatus[]> {
    const [checkpoints, leases, head] = await Promise.all([
      readCheckpoints(this.s.sql),
      readLeases(this.s.sql),
      this.s.store.headPosition().catch(() => null),
    ]);
    const out: ProjectionStatus[] = [];
    for (const worker of this.workers.values()) {
      out.push(
        await worker.status(checkpoints.get(worker.name) ?? null, leases.get(worker.name) ?? null, head),
      );
    }
    return out;
  }

  async waitForPosition(position: Position, timeoutMs: number): Promise<boolean> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      if (this.closed) throw new ProjectionError('projections-closed');
      let reached = true;
      let local = true;
      for (const worker of this.workers.values()) {
        const known = worker.localPosition();
        if (known === undefined) local = false;
        else if (known === null || known < position) reached = false;
      }
      if (reached && local) return true;
      if (!local) {
        const checkpoints = await readCheckpoints(this.s.sql);
        reached = [...this.workers.values()].every((w) => {
          const known = w.localPosition() ?? checkpoints.get(w.name)?.position ?? null;
          return known !== null && known >= position;
        });
        if (reached) return true;
      }
      const left = deadline - performance.now();
      if (left <= 0) return false;
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          this.progressWaiters.delete(done);
          resolve();
        };
        const timer = setTimeout(done, local ? left : Math.min(left, this.s.pollMs));
        this.progressWaiters.add(done);
      });
    }
  }

  rebuild(
    name: string,
    options?: { onProgress?: (progress: RebuildProgress) => void },
  ): Promise<RebuildResult> {
    if (this.closed) return Promise.reject(new ProjectionError('projections-closed'));
    const worker = this.workers.get(name);
    if (!worker) return Promise.reject(new ProjectionError('projection-not-found', { name }));
    return worker.rebuild(options?.onProgress);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.progressed();
    await Promise.all([...this.workers.values()].map((w) => w.stop()));
  }
}

/** A pending `next()` kept across waits, so that a timeout never loses a message. */
class Pump {
  private pending: Promise<IteratorResult<SubscriptionMessage>> | null = null;
  private settled: { value: IteratorResult<SubscriptionMessage> } | { error: unknown } | null = null;
  private readonly iterator: AsyncIterator<SubscriptionMessage>;

  constructor(private readonly subscription: Subscription) {
    this.iterator = subscription[Symbol.asyncIterator]();
  }

  /** Whoever waits in `next`; told once the pending message has settled. */
  private waiter: ((arrived: boolean) => void) | null = null;

  private arm(): void {
    if (this.pending) return;
    const pending = this.iterator.next();
    this.pending = pending;
    // The only reaction on `pending`: waits in `next` come and go through `waiter`, so an idle
    // subscription does not collect one reaction per wake-up while it has nothing to deliver.
    pending.then(
      (value) => {
        if (this.pending !== pending) return;
        this.settled = { value };
        this.waiter?.(true);
      },
      (error: unknown) => {
        if (this.pending !== pending) return;
        this.settled = { error };
        this.waiter?.(true);
      },
    );
  }

  private take(): IteratorResult<SubscriptionMessage> {
    const settled = this.settled;
    this.pending = null;
    this.settled = null;
    if (settled === null) throw new Error('nothing to take');
    if ('error' in settled) throw settled.error;
    return settled.value;
  }

  /** The next message, or null when `interrupt` resolves first. */
  async next(interrupt: Promise<unknown>): Promise<IteratorResult<SubscriptionMessage> | null> {
    this.arm();
    if (this.settled === null) {
      const arrived = await new Promise<boolean>((resolve) => {
        this.waiter = resolve;
        void interrupt.then(() => resolve(false));
      });
      this.waiter = null;
      if (!arrived && this.settled === null) return null;
    }
    return this.take();
  }

  /** Messages already delivered, without waiting for more. */
  async drain(max: number): Promise<SubscriptionMessage[]> {
    const out: SubscriptionMessage[] = [];
    while (out.length < max) {
      // What the subscription holds comes at once where it can hand it over (no next() pending):
      // one message at a time costs a promise, its reactions and two microtask turns each.
      if (this.pending === null && this.subscription.takeBuffered) {
        const held = this.subscription.takeBuffered(max - out.length);
        for (const message of held) out.push(message);
        if (held.length > 0) continue;
      }
      this.arm();
      await null;
      await null;
      if (this.settled === null) break;
      if ('value' in this.settled && this.settled.value.done) break;
      out.push(this.take().value as SubscriptionMessage);
    }
    return out;
  }
}

interface ContextBuffer {
  ctx: ProjectionContext;
  published: ReadinessChange[];
  /** What `ctx.liveWatermark` answers (rebuild contexts only). */
  liveWatermark: number | null;
}

class Worker {
  readonly name: string;
  private lease: Lease | null = null;
  private position: Position | null = null;
  private generation = 0;
  private watermark: number | null = null;
  private caughtUp = false;
  private lastError: ProjectionStatus['lastError'] = null;
  private restarts = 0;
  private lastRenew = 0;
  private stopping = false;
  private loop: Promise<void> | null = null;
  private readonly wakeups = new Wakeups();
  private live: ContextBuffer | null = null;
  private rebuildTask: Promise<RebuildResult> | null = null;
  private lastSwapCheck = 0;
  /** Rebuilds in this process that failed in a row: after one, an orphaned shadow is started again from zero. */
  private rebuildFailures = 0;
  /** `performance.now()` before which no orphaned rebuild is taken up again (backoff after a failure). */
  private rebuildRetryAt = 0;
  /** What a rebuild in this process learnt, handed to the live generation when it is swapped in. */
  private shadowMemory: { generation: number; memory: Map<string, unknown> } | null = null;
  /** A rebuild started: the live generation's memory goes at the lead loop's next turn (see `runRebuild`). */
  private dropLiveMemory = false;
  private nextDue: number | null | undefined;
  private activeSubscription: Subscription | null = null;

  constructor(
    private readonly s: Settings,
    private readonly projection: Projection,
    private readonly runner: Runner,
  ) {
    this.name = projection.name;
  }

  wake(): void {
    this.wakeups.wake();
  }

  start(): void {
    this.loop = this.supervise();
  }

  /** The checkpoint as this process knows it: undefined when another process leads. */
  localPosition(): Position | null | undefined {
    return this.lease && this.live ? this.position : undefined;
  }

  private now(): number {
    return this.s.clock().getTime();
  }

  private context(
    mode: ProjectionMode,
    generation: number,
    memory = new Map<string, unknown>(),
  ): ContextBuffer {
    const buffer: ContextBuffer = {
      published: [],
      liveWatermark: null,
      ctx: {
        projection: this.name,
        mode,
        generation,
        table: (table) => physicalName(table, generation, mode),
        memory,
        logger: this.s.logger,
        clock: this.s.clock,
        liveWatermark: () => (mode === 'rebuild' ? buffer.liveWatermark : null),
        publish: (changes) => {
          buffer.published.push(...changes);
        },
      },
    };
    return buffer;
  }

  private backoff(failures: number): number {
    const cap = Math.min(this.s.backoffMax, this.s.backoffInitial * 2 ** Math.min(failures - 1, 20));
    return Math.round(cap / 2 + (this.s.random() * cap) / 2);
  }

  private fail(error: unknown): void {
    this.lastError = {
      message: error instanceof Error ? error.message : String(error),
      code: isProjectionError(error) ? error.code : ((error as { code?: string })?.code ?? null),
      at: this.s.clock().toISOString(),
    };
  }

  /** Takes the lease when it can, leads until it loses it or fails, and starts again after a backoff. */
  private async supervise(): Promise<void> {
    let failures = 0;
    while (!this.stopping) {
      try {
        if (!this.lease) {
          this.lease = await tryAcquireLease(this.s.sql, this.name, this.s.owner, this.now(), this.s.ttl);
          if (!this.lease) {
            const pause = this.s.ttl / 3;
            await this.wakeups.sleep(pause / 2 + (this.s.random() * pause) / 2).promise;
            continue;
          }
          this.lastRenew = this.now();
          this.s.logger.info({ projection: this.name, owner: this.s.owner }, 'projection lease acquired');
        }
        // The count of failures resets only once the leader has run well for the longest delay:
        // a fault that strikes after the first good batch of every restart (the scheduler, a swap)
        // would otherwise be retried at the shortest delay for ever.
        const ledAt = performance.now();
        await this.lead(() => {
          if (performance.now() - ledAt >= this.s.backoffMax) failures = 0;
        });
      } catch (error) {
        this.live = null;
        this.projection.attach?.(null);
        this.caughtUp = false;
        if (this.stopping) break;
        this.fail(error);
        if (isProjectionError(error) && error.code === 'lease-lost') {
          this.lease = null;
          this.s.logger.warn({ projection: this.name }, 'projection lease lost to another process');
          continue;
        }
        failures++;
        this.restarts++;
        const delay = this.backoff(failures);
        this.s.logger.error(
          { projection: this.name, err: error, restartInMs: delay },
          'projection failed; restarting from its checkpoint',
        );
        await this.wakeups.sleep(delay).promise;
      }
    }
    await this.letGo();
  }

  private async letGo(): Promise<void> {
    const lease = this.lease;
    const live = this.live;
    this.lease = null;
    this.live = null;
    this.projection.attach?.(null);
    if (!lease) return;
    try {
      if (live && this.projection.flush) {
        await this.s.sql.transaction(async (tx) => {
          await fenceLease(tx, lease, this.now(), this.s.ttl);
          await this.projection.flush?.(tx, live.ctx);
        });
      }
    } catch (error) {
      this.s.logger.warn({ projection: this.name, err: error }, 'snapshots on shutdown failed');
    }
    await releaseLease(this.s.sql, lease).catch(() => {});
  }

  private async lead(healthy: () => void): Promise<void> {
    const checkpoint = await readCheckpoint(this.s.sql, this.name);
    if (!checkpoint) throw new ProjectionError('projection-not-found', { name: this.name });
    this.position = checkpoint.position;
    this.generation = checkpoint.generation;
    this.watermark = checkpoint.watermark;
    this.live = this.context('live', checkpoint.generation);
    this.projection.attach?.(this.live.ctx);
    this.nextDue = undefined;
    this.caughtUp = false;
    await this.resumeInterruptedRebuild(checkpoint);
    const subscription = this.s.store.subscribeToAll({
      fromPosition: checkpoint.position ?? 'start',
      ...(this.projection.filter ? { filter: this.projection.filter } : {}),
      batchSize: this.s.catchUpBatchSize,
    });
    this.activeSubscription = subscription;
    const pump = new Pump(subscription);
    try {
      while (!this.stopping) {
        const interrupt = this.wakeups.sleep(this.untilHousekeeping());
        const first = await pump.next(interrupt.promise);
        interrupt.cancel();
        if (first !== null) {
          if (first.done) {
            if (this.stopping) return;
            throw new ProjectionError('subscription-ended', { name: this.name });
          }
          const messages = [first.value, ...(await pump.drain(this.batchLimit() * 2))];
          await this.process(messages);
          healthy();
        }
        await this.housekeeping();
        if (this.dropLiveMemory) {
          this.dropLiveMemory = false;
          this.live?.ctx.memory.clear();
        }
      }
    } finally {
      this.activeSubscription = null;
      await subscription.close().catch(() => {});
    }
  }

  /** Events per transaction: larger until the runner has caught up (see `catchUpBatchSize`). */
  private batchLimit(): number {
    return this.caughtUp ? this.s.batchSize : this.s.catchUpBatchSize;
  }

  private untilHousekeeping(): number {
    const now = this.now();
    let wait = Math.min(this.s.tickMs, this.lastRenew + this.s.ttl / 3 - now);
    if (this.nextDue !== undefined && this.nextDue !== null && this.caughtUp) {
      wait = Math.min(wait, this.nextDue + this.s.grace - now);
    }
    return Math.max(0, wait);
  }

  private async process(messages: SubscriptionMessage[]): Promise<void> {
    let batch: RecordedEvent[] = [];
    const flush = async () => {
      if (batch.length > 0) await this.commit(batch);
      batch = [];
    };
    for (const message of messages) {
      switch (message.kind) {
        case 'event':
          if (this.position !== null && message.event.position <= this.position) break;
          batch.push(message.event);
          if (batch.length >= this.batchLimit()) await flush();
          break;
        case 'checkpoint':
          await flush();
          await this.saveCheckpoint(message.position);
          break;
        case 'caught-up':
          await flush();
          if (message.position !== null) await this.saveCheckpoint(message.position);
          this.caughtUp = true;
          break;
        default: {
          const unreachable: never = message;
          throw new TypeError(`unknown subscription message ${(unreachable as { kind: string }).kind}`);
        }
      }
    }
    await flush();
  }

  private async commit(events: RecordedEvent[]): Promise<void> {
    const lease = this.lease;
    const live = this.live;
    if (!lease || !live) throw new ProjectionError('lease-lost', { name: this.name });
    const last = (events[events.length - 1] as RecordedEvent).position;
    const previous = this.position;
    live.published = [];
    // The log is synced off the event loop where the store can: the batch is acknowledged (and its
    // changes published) only once durable; a reader may see it a moment earlier, which is harmless
    // for a read model folded again from the log after a crash.
    await this.s.sql.transaction(
      async (tx) => {
        const now = this.now();
        await fenceLease(tx, lease, now, this.s.ttl);
        await this.projection.handle(events, tx, live.ctx);
        await this.moveCheckpoint(tx, previous, last, now);
      },
      { syncInBackground: true },
    );
    this.lastRenew = this.now();
    this.position = last;
    this.nextDue = undefined;
    const published = live.published;
    live.published = [];
    this.runner.emitChanges(published);
    this.runner.progressed();
  }

  private async moveCheckpoint(tx: SqlClient, previous: Position | null, next: Position, now: number) {
    const moved = await tx.execute(
      `UPDATE projection_checkpoints SET position = $1, updated_at = $2 WHERE name = $3 AND ${sameAs(tx.dialect, 'position', '$4')}`,
      [next, now, this.name, previous],
    );
    // The lease makes this impossible; the compare-and-set makes it harmless if it ever happens.
    if (moved !== 1) throw new ProjectionError('lease-lost', { name: this.name, detail: 'checkpoint moved' });
  }

  private async saveCheckpoint(position: Position): Promise<void> {
    if (this.position !== null && position <= this.position) return;
    const lease = this.lease;
    if (!lease) throw new ProjectionError('lease-lost', { name: this.name });
    const previous = this.position;
    await this.s.sql.transaction(async (tx) => {
      const now = this.now();
      await fenceLease(tx, lease, now, this.s.ttl);
      await this.moveCheckpoint(tx, previous, position, now);
    });
    this.lastRenew = this.now();
    this.position = position;
    this.runner.progressed();
  }

  private async housekeeping(): Promise<void> {
    const lease = this.lease;
    if (!lease || this.stopping) return;
    if (this.now() - this.lastRenew >= this.s.ttl / 3) {
      await this.s.sql.transaction((tx) => fenceLease(tx, lease, this.now(), this.s.ttl));
      this.lastRenew = this.now();
    }
    await this.advanceTime();
    if (performance.now() - this.lastSwapCheck >= Math.min(this.s.tickMs, 500)) {
      this.lastSwapCheck = performance.now();
      const rebuild = await readRecordedRebuild(this.s.sql, this.name);
      if (!rebuild) return;
      // The lease holder is the one process sure to be running: a rebuild whose builder went away
      // (a CLI killed, a replica lost) would otherwise wait for the next change of leader.
      if (isOrphaned(rebuild, this.now())) this.adoptOrphan(rebuild);
      else await this.maybeSwap(rebuild);
    }
  }

  /** Records what time alone changed, once every committed event has been processed. */
  private async advanceTime(): Promise<void> {
    const { projection } = this;
    const live = this.live;
    const lease = this.lease;
    if (!projection.advanceTime || !projection.nextDue || !this.caughtUp || !live || !lease) return;
    if (this.nextDue === undefined) this.nextDue = await projection.nextDue(this.s.sql, live.ctx);
    const until = this.now() - this.s.grace;
    if (this.nextDue === null || this.nextDue > until) return;
    const head = await this.s.store.headPosition();
    // Events first: an event already in the log must never be evaluated after a later instant.
    if (head !== null && (this.position === null || this.position < head)) return;
    live.published = [];
    await this.s.sql.transaction(async (tx) => {
      await fenceLease(tx, lease, this.now(), this.s.ttl);
      await projection.advanceTime?.(until, tx, live.ctx);
      await tx.execute('UPDATE projection_checkpoints SET watermark = $1 WHERE name = $2', [
        until,
        this.name,
      ]);
    });
    this.lastRenew = this.now();
    this.watermark = until;
    this.nextDue = undefined;
    const published = live.published;
    live.published = [];
    this.runner.emitChanges(published);
  }

  async status(
    checkpoint: CheckpointRow | null,
    lease: { owner: string; expiresAt: number } | null,
    head: Position | null,
  ): Promise<ProjectionStatus> {
    // Until this process has read its checkpoint after taking the lease, the table knows better.
    const local = this.lease !== null && this.live !== null;
    const rebuild = await readRecordedRebuild(this.s.sql, this.name).catch(() => null);
    return statusRow(this.projection, checkpoint, lease, head, rebuild, this.now(), {
      ...(local ? { generation: this.generation, position: this.position, watermark: this.watermark } : {}),
      caughtUp: this.lease !== null && this.caughtUp,
      isLeader: this.lease !== null,
      lastError: this.lastError,
      restarts: this.restarts,
    });
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.wake();
    await this.activeSubscription?.close().catch(() => {});
    await this.loop;
    await this.rebuildTask?.catch(() => {});
  }

  // --- Rebuilds -------------------------------------------------------------------------------

  /** `restart`: an unfinished shadow is dropped and built again from zero rather than resumed. */
  rebuild(onProgress?: (progress: RebuildProgress) => void, restart = false): Promise<RebuildResult> {
    if (!this.rebuildTask) {
      this.rebuildTask = this.runRebuild(onProgress, restart)
        .then(
          (result) => {
            this.rebuildFailures = 0;
            return result;
          },
          (error: unknown) => {
            if (!isRebuildContention(error)) {
              this.rebuildFailures++;
              this.rebuildRetryAt = performance.now() + this.backoff(this.rebuildFailures);
            }
            throw error;
          },
        )
        .finally(() => {
          this.rebuildTask = null;
        });
    }
    return this.rebuildTask;
  }

  /** A rebuild left behind by a process that died, or a version this code no longer writes. */
  private async resumeInterruptedRebuild(checkpoint: CheckpointRow): Promise<void> {
    if (this.rebuildTask) return;
    const pending = await readRecordedRebuild(this.s.sql, this.name);
    if (pending) {
      if (isOrphaned(pending, this.now())) this.adoptOrphan(pending);
      return;
    }
    if (checkpoint.version !== this.projection.version) this.rebuildInBackground('new version', false);
  }

  /**
   * Takes up a shadow whose builder let its lease expire, through the rebuild lease like any
   * builder (so that two processes never fill it together): resumed from its own checkpoint, or,
   * after a rebuild in this process failed, dropped and started again from zero.
   */
  private adoptOrphan(rebuild: RecordedRebuild): void {
    if (this.rebuildTask || this.stopping || performance.now() < this.rebuildRetryAt) return;
    const restart = this.rebuildFailures > 0;
    this.s.logger.warn(
      {
        projection: this.name,
        generation: rebuild.generation,
        position: rebuild.position,
        events: rebuild.events,
        builder: rebuild.builder?.owner ?? null,
        lastSeenAt: new Date(rebuild.updatedAt).toISOString(),
        restart,
      },
      'projection rebuild interrupted: its builder let its lease expire',
    );
    this.rebuildInBackground('interrupted', restart);
  }

  private rebuildInBackground(reason: 'interrupted' | 'new version', restart: boolean): void {
    this.s.logger.info(
      { projection: this.name, reason, from: restart ? 'zero' : 'its checkpoint' },
      'projection rebuild started in the background',
    );
    this.rebuild(undefined, restart).catch((error: unknown) => {
      if (isRebuildContention(error)) {
        this.s.logger.info(
          { projection: this.name, err: error },
          'background rebuild left to the process that holds it',
        );
      } else {
        this.s.logger.error({ projection: this.name, err: error }, 'background rebuild failed');
      }
    });
  }

  private async runRebuild(
    onProgress: ((progress: RebuildProgress) => void) | undefined,
    restart: boolean,
  ): Promise<RebuildResult> {
    const started = performance.now();
    // The shadow generation needs states of its own; the live ones come back from their snapshots
    // when new events need them, rather than both sets being held for the rebuild's duration. They
    // go once the lead loop has finished what it is doing: a batch or the scheduler's round in
    // flight (at the end of a catch-up, every mission time has moved since) would otherwise load
    // each state it needs from a snapshot, or fold it from zero, the moment after it was dropped.
    this.dropLiveMemory = true;
    this.wake();
    const { generation, events } = await this.buildShadow(onProgress, restart);
    this.wake();
    // The lease holder swaps, wherever it runs; if it is this process, wake it now.
    for (;;) {
      const checkpoint = await readCheckpoint(this.s.sql, this.name);
      if (checkpoint && checkpoint.generation >= generation) break;
      const pending = await readRebuild(this.s.sql, this.name);
      if (!pending || pending.generation !== generation) {
        // The swap records the generation and ends the rebuild row in one transaction, which may
        // have committed between the two reads above: only a checkpoint still short of it means
        // that another rebuild took over.
        const after = await readCheckpoint(this.s.sql, this.name);
        if (after && after.generation >= generation) break;
        throw new ProjectionError('rebuild-failed', {
          name: this.name,
          detail: 'superseded by another rebuild',
        });
      }
      if (this.stopping) throw new ProjectionError('projections-closed');
      await this.wakeups.sleep(Math.min(this.s.tickMs, 100)).promise;
      this.wake();
    }
    onProgress?.({
      name: this.name,
      generation,
      events,
      position: this.position,
      headPosition: null,
      phase: 'done',
    });
    return { name: this.name, generation, events, durationMs: Math.round(performance.now() - started) };
  }

  /** Fills the shadow tables from position zero (or from where an interrupted build stopped). */
  private async buildShadow(
    onProgress: ((progress: RebuildProgress) => void) | undefined,
    restart: boolean,
  ): Promise<{ generation: number; events: number }> {
    const leaseName = `${this.name}#rebuild`;
    const lease = await tryAcquireLease(this.s.sql, leaseName, this.s.owner, this.now(), this.s.ttl);
    if (!lease) throw new ProjectionError('rebuild-in-progress', { name: this.name });
    let renewed = this.now();
    // Renewed while the log is slow to deliver too, not only with each batch: the lease holder of
    // the projection takes over a rebuild whose lease has expired.
    const renewIfDue = async () => {
      if (this.now() - renewed < this.s.ttl / 3) return;
      await this.s.sql.transaction((tx) => fenceLease(tx, lease, this.now(), this.s.ttl));
      renewed = this.now();
    };
    try {
      let row = await readRebuild(this.s.sql, this.name);
      if (row?.status === 'ready' && row.version === this.projection.version) {
        return { generation: row.generation, events: row.events };
      }
      if (!row || row.version !== this.projection.version || restart) {
        const live = await readCheckpoint(this.s.sql, this.name);
        const generation = Math.max(live?.generation ?? 0, row?.generation ?? 0) + 1;
        await this.s.sql.transaction(async (tx) => {
          await fenceLease(tx, lease, this.now(), this.s.ttl);
          if (row) await tx.script(dropTables(this.projection, row.generation, 'rebuild'));
          await tx.script(dropTables(this.projection, generation, 'rebuild'));
          await tx.script(createTables(this.projection, tx.dialect, generation, 'rebuild'));
          await tx.execute('DELETE FROM projection_rebuilds WHERE name = $1', [this.name]);
          await tx.execute(
            `INSERT INTO projection_rebuilds (name, generation, version, status, position, events, started_at, updated_at)
             VALUES ($1, $2, $3, 'building', NULL, 0, $4, $4)`,
            [this.name, generation, this.projection.version, this.now()],
          );
        });
        row = await readRebuild(this.s.sql, this.name);
      } else {
        // Resumed: the tables that code newer than the build's start added are created now.
        const generation = row.generation;
        await this.s.sql.transaction(async (tx) => {
          await fenceLease(tx, lease, this.now(), this.s.ttl);
          await tx.script(createTables(this.projection, tx.dialect, generation, 'rebuild'));
        });
      }
      if (!row)
        throw new ProjectionError('rebuild-failed', { name: this.name, detail: 'rebuild row vanished' });
      const generation = row.generation;
      const head = await this.s.store.headPosition();
      const shadow = this.context('rebuild', generation);
      let position = row.position;
      let events = row.events;
      const subscription = this.s.store.subscribeToAll({
        fromPosition: position ?? 'start',
        ...(this.projection.filter ? { filter: this.projection.filter } : {}),
        batchSize: Math.max(this.s.batchSize, 1000),
      });
      const pump = new Pump(subscription);
      try {
        let done = false;
        while (!done) {
          if (this.stopping) throw new ProjectionError('projections-closed');
          const first = await pump.next(this.stopSignal());
          if (first === null) {
            await renewIfDue();
            continue;
          }
          if (first.done) throw new ProjectionError('subscription-ended', { name: this.name });
          const messages = [first.value, ...(await pump.drain(Math.max(this.s.batchSize, 1000) * 2))];
          const batch: RecordedEvent[] = [];
          let to: Position | null = position;
          for (const message of messages) {
            if (message.kind === 'event') {
              if (position !== null && message.event.position <= position) continue;
              batch.push(message.event);
              to = message.event.position;
            } else if (message.position !== null && (to === null || message.position > to)) {
              to = message.position;
            }
            if (message.kind === 'caught-up') done = true;
          }
          if (to === position && !done) {
            await renewIfDue();
            continue;
          }
          const from = position;
          await this.s.sql.transaction(
            async (tx) => {
              await fenceLease(tx, lease, this.now(), this.s.ttl);
              shadow.liveWatermark = (await readCheckpoint(tx, this.name))?.watermark ?? null;
              if (batch.length > 0) await this.projection.handle(batch, tx, shadow.ctx);
              // A finished generation starts with snapshots as fresh as a clean shutdown leaves them.
              if (done) await this.projection.flush?.(tx, shadow.ctx);
              const moved = await tx.execute(
                `UPDATE projection_rebuilds SET position = $1, events = events + $2, updated_at = $3, status = $4
               WHERE name = $5 AND generation = $6 AND ${sameAs(tx.dialect, 'position', '$7')}`,
                [to, batch.length, this.now(), done ? 'ready' : 'building', this.name, generation, from],
              );
              if (moved !== 1) throw new ProjectionError('lease-lost', { name: leaseName });
              // No wait for the disk per batch: the shadow's rows and its checkpoint commit together,
              // so a crash loses whole batches at most, which the resumed rebuild folds again; the
              // swap, which readers depend on, commits durably.
            },
            { durable: false },
          );
          renewed = this.now();
          position = to;
          events += batch.length;
          if (done) this.shadowMemory = { generation, memory: shadow.ctx.memory };
          onProgress?.({
            name: this.name,
            generation,
            events,
            position,
            headPosition: head,
            phase: done ? 'swapping' : 'building',
          });
        }
      } finally {
        await subscription.close().catch(() => {});
      }
      return { generation, events };
    } finally {
      await releaseLease(this.s.sql, lease).catch(() => {});
    }
  }

  /** Resolves at the next tick or wake-up, to look at `stopping` again. */
  private stopSignal(): Promise<void> {
    return this.wakeups.sleep(this.s.tickMs).promise;
  }

  /**
   * Swaps a finished shadow generation in, by the lease holder only: catches the shadow up to
   * exactly the live checkpoint (so that no event's notifications are lost or repeated), brings
   * its time-driven changes to the live watermark, and renames its tables over the live ones in
   * the same transaction that records the new generation.
   */
  private async maybeSwap(row: RebuildRow): Promise<void> {
    const lease = this.lease;
    if (!lease || !this.live) return;
    if (row.status !== 'ready' || row.version !== this.projection.version) return;
    if (row.position !== null && (this.position === null || row.position > this.position)) return;
    const kept = this.shadowMemory?.generation === row.generation ? this.shadowMemory.memory : undefined;
    this.shadowMemory = null;
    const shadow = this.context('rebuild', row.generation, kept);
    let position = row.position;
    if (position !== this.position) {
      const target = this.position;
      const subscription = this.s.store.subscribeToAll({
        fromPosition: position ?? 'start',
        ...(this.projection.filter ? { filter: this.projection.filter } : {}),
        batchSize: this.s.batchSize,
      });
      const pump = new Pump(subscription);
      try {
        let done = false;
        while (!done) {
          const first = await pump.next(this.stopSignal());
          if (this.stopping) return;
          if (first === null) continue;
          if (first.done) throw new ProjectionError('subscription-ended', { name: this.name });
          const messages = [first.value, ...(await pump.drain(this.s.batchSize))];
          const batch: RecordedEvent[] = [];
          for (const message of messages) {
            if (message.kind !== 'event') {
              done = true;
              break;
            }
            if (target === null || message.event.position > target) {
              done = true;
              break;
            }
            if (position === null || message.event.position > position) batch.push(message.event);
          }
          if (batch.length === 0) continue;
          const from = position;
          const to = (batch[batch.length - 1] as RecordedEvent).position;
          await this.s.sql.transaction(async (tx) => {
            await fenceLease(tx, lease, this.now(), this.s.ttl);
            await this.projection.handle(batch, tx, shadow.ctx);
            const moved = await tx.execute(
              `UPDATE projection_rebuilds SET position = $1, events = events + $2, updated_at = $3
               WHERE name = $4 AND ${sameAs(tx.dialect, 'position', '$5')}`,
              [to, batch.length, this.now(), this.name, from],
            );
            if (moved !== 1)
              throw new ProjectionError('rebuild-failed', { name: this.name, detail: 'shadow moved' });
          });
          position = to;
        }
      } finally {
        await subscription.close().catch(() => {});
      }
    }
    const watermark = this.watermark;
    const previousGeneration = this.generation;
    const projection = this.projection;
    await this.s.sql.transaction(async (tx) => {
      await fenceLease(tx, lease, this.now(), this.s.ttl);
      if (watermark !== null) await projection.advanceTime?.(watermark, tx, shadow.ctx);
      for (const table of projection.tables) {
        await tx.script(`DROP TABLE IF EXISTS ${table.name}`);
        await tx.script(
          `ALTER TABLE ${physicalName(table.name, row.generation, 'rebuild')} RENAME TO ${table.name}`,
        );
      }
      const swapped = await tx.execute(
        `UPDATE projection_checkpoints SET generation = $1, version = $2, updated_at = $3
         WHERE name = $4 AND ${sameAs(tx.dialect, 'position', '$5')}`,
        [row.generation, row.version, this.now(), this.name, this.position],
      );
      if (swapped !== 1)
        throw new ProjectionError('lease-lost', { name: this.name, detail: 'checkpoint moved' });
      await tx.execute('DELETE FROM projection_rebuilds WHERE name = $1', [this.name]);
    });
    this.generation = row.generation;
    this.dropLiveMemory = false;
    // The shadow's states are the new live generation's: the same events folded into the same tables.
    this.live = this.context('live', row.generation, shadow.ctx.memory);
    this.projection.attach?.(this.live.ctx);
    this.nextDue = undefined;
    this.s.logger.info(
      {
        projection: this.name,
        from: generationSuffix(previousGeneration),
        to: generationSuffix(row.generation),
        position: this.position,
      },
      'rebuilt projection swapped in',
    );
    this.runner.progressed();
  }
}
