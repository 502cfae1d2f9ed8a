import type { SqlClient } from '@muster/event-store';
import { chunks, inList, num, numOrNull, timeId, valuesList, type WebhookContext } from './context.js';
import { recordOperationalEvent } from './planner.js';
import { lockQueues, promoteHeads, type QueueKey } from './queues.js';
import { nextRetryDelay, parseRetryAfter } from './retry.js';
import { DISPATCHER_LEASE } from './schema.js';
import { AttemptControl, type SendOutcome, type Transport } from './sender.js';
import { secretBytes } from './signing.js';
import type { DeliveryTrigger } from './types.js';

export interface DispatcherOptions {
  /** Identifies this dispatcher's leases; unique per process. */
  dispatcherId: string;
  /** How long a claim (and, on SQLite, the dispatcher role) lasts; longer than the request timeout. */
  leaseMs: number;
  pollIntervalMs: number;
  maxInFlight: number;
}

interface Claimed {
  id: string;
  queue: string;
  messageId: string;
  subscriptionId: string;
  agencyId: string;
  url: string;
  attempt: number;
  trigger: DeliveryTrigger;
  eventType: string;
  body: string;
  exhaustedAt: number | null;
}

type Outcome =
  | { kind: 'sent'; claimed: Claimed; result: SendOutcome; startedAt: number; finishedAt: number }
  /** Not sent (shutdown, an unreadable secret): the claim is given back without spending an attempt. */
  | { kind: 'released'; claimed: Claimed; retryAt: number | null };

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Claims due deliveries under a lease, in order per (subscription, mission): only the lowest
 * pending version of a queue can be claimed, and it stays pending (blocking the next) until its
 * outcome is committed. Sends them, then records outcomes in group-committed transactions. On
 * PostgreSQL claims use FOR UPDATE SKIP LOCKED so several dispatchers share the work; on SQLite
 * a lease row makes one process the only dispatcher. A crash leaves claims to expire, and the
 * delivery is sent again later with the same `webhook-id`.
 *
 * One loop (the pump) does all the database work, one cycle at a time: a cycle records the
 * outcomes that arrived, runs the planner batches waiting to share the commit, and claims the
 * next due heads (those just promoted and just planned included) in the same transaction; what
 * it claimed is sent once it committed. So a commit, which on SQLite is an fsync that blocks the
 * process, refills every free slot, and a planned change goes out one commit after it is read.
 */
export class Dispatcher {
  private running = false;
  /** The poll loop: renews the SQLite role and asks for a claim now and then. */
  private loop: Promise<void> | null = null;
  private wakeUp: (() => void) | null = null;
  /** A claim is wanted (woken, polled, or the last claim filled every slot it had). */
  private claimWanted = false;
  private readonly inFlight = new Map<string, { control: AttemptControl; done: Promise<void> }>();
  private readonly outcomes: Outcome[] = [];
  /** Work that commits together with the next outcomes (the planner's batches). */
  private readonly piggyback: Array<{
    run: (tx: SqlClient) => Promise<unknown>;
    resolve: (value: unknown) => void;
    reject: (error: unknown) => void;
  }> = [];
  /** Claimed and not yet recorded: on SQLite, what the next claim must not return again. */
  private readonly unsettled = new Set<string>();
  private pumping: Promise<void> | null = null;
  private leaseHeldUntil = 0;
  private leader = false;
  private readonly secretCache = new Map<string, Buffer>();

  constructor(
    private readonly ctx: WebhookContext,
    private readonly sender: Transport,
    private readonly options: DispatcherOptions,
  ) {}

  /** True while this process holds the dispatcher role (always on PostgreSQL). */
  get isLeader(): boolean {
    return this.ctx.sql.dialect === 'postgres' || this.leader;
  }

  get inFlightCount(): number {
    return this.inFlight.size;
  }

  /** Something may be due now (planned, replayed, re-enabled): claim soon. */
  wake(): void {
    this.claimWanted = true;
    this.schedulePump();
  }

  /** Runs until `stop`; its timers keep the process alive, as a worker's should. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
  }

  /**
   * Stops claiming, waits up to `timeoutMs` for requests in flight, aborts the rest and gives
   * their claims back (they are sent again, with the same `webhook-id`), records every outcome,
   * and releases the dispatcher role.
   */
  async stop(timeoutMs: number): Promise<void> {
    this.running = false;
    this.wakeUp?.();
    await this.loop;
    this.loop = null;
    const pending = [...this.inFlight.values()];
    if (pending.length > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.all(pending.map((p) => p.done)),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, timeoutMs);
        }),
      ]);
      clearTimeout(timer);
      for (const p of this.inFlight.values()) p.control.abort(new Error('the dispatcher is stopping'));
      await Promise.all([...this.inFlight.values()].map((p) => p.done));
    }
    await this.flushNow();
    if (this.ctx.sql.dialect === 'sqlite' && this.leader) {
      await this.ctx.sql
        .execute('DELETE FROM webhook_leases WHERE name = $1 AND owner = $2', [
          DISPATCHER_LEASE,
          this.options.dispatcherId,
        ])
        .catch((error) => this.ctx.logger.warn({ err: error }, 'webhook dispatcher: lease not released'));
      this.leader = false;
    }
  }

  /**
   * Sends everything due now, round after round (the next version of a queue becomes due when the
   * previous one is recorded), and resolves when nothing is due. For tests and tools that drive a
   * controlled clock on a dispatcher that is not started; a started one does this continuously.
   */
  async runOnce(): Promise<number> {
    let attempts = 0;
    for (;;) {
      await this.flushNow();
      if (!(await this.ensureLease())) return attempts;
      const claimed = await this.claim(this.ctx.sql, this.options.maxInFlight);
      if (claimed.length === 0) return attempts;
      this.launch(claimed);
      attempts += claimed.length;
      await Promise.all([...this.inFlight.values()].map((p) => p.done));
    }
  }

  /** Polls: renews the SQLite role and asks for a claim every `pollIntervalMs`. */
  private async run(): Promise<void> {
    while (this.running) {
      try {
        await this.ensureLease();
      } catch (error) {
        this.ctx.logger.error({ err: error }, 'webhook dispatcher: renewing the role failed; will retry');
      }
      if (!this.running) break;
      this.wake();
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.options.pollIntervalMs);
        this.wakeUp = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wakeUp = null;
    }
  }

  /**
   * Runs `plan` in the next transaction that records outcomes (or in one of its own when there are
   * none), so that planning and recording share a commit: on SQLite every commit is an fsync that
   * blocks the process, and under load they are what runs out first.
   */
  commitWith<T>(plan: (tx: SqlClient) => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.piggyback.push({
        run: plan as (tx: SqlClient) => Promise<unknown>,
        resolve: resolve as (value: unknown) => void,
        reject,
      });
      this.schedulePump();
    });
  }

  private wantsCycle(): boolean {
    return (
      this.outcomes.length > 0 ||
      this.piggyback.length > 0 ||
      (this.claimWanted && this.running && this.inFlight.size < this.options.maxInFlight)
    );
  }

  private schedulePump(): void {
    if (this.pumping) return;
    this.pumping = (async () => {
      // Group commit: what finishes in the same turn of the event loop shares one transaction
      // (one fsync), and more gathers while it commits.
      await new Promise<void>((resolve) => setImmediate(resolve));
      let failures = 0;
      while (this.wantsCycle()) {
        const batch = this.outcomes.splice(0, this.outcomes.length);
        const riders = this.piggyback.splice(0, this.piggyback.length);
        try {
          await this.cycle(batch, riders);
          failures = 0;
        } catch (error) {
          // The riders fail alone (their owners retry); the outcomes are tried again without them.
          for (const rider of riders) rider.reject(error);
          failures++;
          if (batch.length === 0) {
            this.ctx.logger.error({ err: error, failures }, 'webhook dispatcher: claim failed; will retry');
            if (riders.length === 0)
              await sleep(Math.min(30_000, this.options.pollIntervalMs * 2 ** failures));
            continue;
          }
          this.outcomes.unshift(...batch);
          this.ctx.logger.error(
            { err: error, outcomes: batch.length, failures },
            'webhook dispatcher: recording outcomes failed; will retry (unrecorded deliveries are sent again)',
          );
          if (!this.running && failures >= 3) {
            for (const outcome of this.outcomes) this.unsettled.delete(outcome.claimed.id);
            this.outcomes.length = 0;
            break;
          }
          if (riders.length === 0) await sleep(Math.min(5_000, 100 * 2 ** failures));
        }
      }
      this.pumping = null;
    })();
  }

  /**
   * One cycle: in one transaction, the planner batches, the outcomes, and (while running) a claim
   * of as many due heads as there are free slots; then the claimed ones are sent. With nothing to
   * record or plan, the claim runs alone (on SQLite a read, no commit).
   */
  private async cycle(
    batch: Outcome[],
    riders: Array<{ run: (tx: SqlClient) => Promise<unknown>; resolve: (value: unknown) => void }>,
  ): Promise<void> {
    let limit = 0;
    if (this.running && (this.claimWanted || batch.length > 0 || riders.length > 0)) {
      limit = this.options.maxInFlight - this.inFlight.size;
      if (limit > 0 && !(await this.ensureLease())) limit = 0;
    }
    let claimed: Array<{ item: Claimed; secrets: Buffer[] | Error | null }> = [];
    if (batch.length === 0 && riders.length === 0) {
      this.claimWanted = false;
      if (limit <= 0) return;
      claimed = await this.claim(this.ctx.sql, limit);
    } else {
      // Sent only once this is on disk; the fsync runs off the event loop meanwhile, which keeps
      // the process's other work (the API, the projections, the sender's answers) moving.
      const results = await this.ctx.sql.transaction(
        async (tx) => {
          const values: unknown[] = [];
          for (const rider of riders) values.push(await rider.run(tx));
          if (batch.length > 0) await this.record(tx, batch);
          if (limit > 0) claimed = await this.claim(tx, limit);
          return values;
        },
        { syncInBackground: true },
      );
      for (const outcome of batch) this.unsettled.delete(outcome.claimed.id);
      riders.forEach((rider, i) => {
        rider.resolve(results[i]);
      });
    }
    // A full claim may have left more due; the next outcomes free the slots to take them.
    if (limit > 0) this.claimWanted = claimed.length === limit;
    this.launch(claimed);
  }

  /** Records everything waiting (no claims once stopped). */
  private async flushNow(): Promise<void> {
    while (this.pumping || this.outcomes.length > 0 || this.piggyback.length > 0) {
      if (!this.pumping) this.schedulePump();
      await this.pumping;
    }
  }

  /** On SQLite, takes or renews the dispatcher role; another live process keeps it until it lapses. */
  private async ensureLease(): Promise<boolean> {
    if (this.ctx.sql.dialect === 'postgres') return true;
    const now = this.ctx.clock.now();
    if (this.leader && this.leaseHeldUntil - now > (this.options.leaseMs * 2) / 3) return true;
    const changed = await this.ctx.sql.execute(
      `INSERT INTO webhook_leases (name, owner, expires_at) VALUES ($1, $2, $3)
       ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
       WHERE webhook_leases.owner = excluded.owner OR webhook_leases.expires_at <= $4`,
      [DISPATCHER_LEASE, this.options.dispatcherId, now + this.options.leaseMs, now],
    );
    const leader = changed > 0;
    if (leader !== this.leader) {
      this.ctx.logger.info(
        { dispatcherId: this.options.dispatcherId, leader },
        leader
          ? 'webhook dispatcher: took the dispatcher role'
          : 'webhook dispatcher: another process dispatches',
      );
    }
    this.leader = leader;
    if (leader) this.leaseHeldUntil = now + this.options.leaseMs;
    return leader;
  }

  private launch(claimed: Array<{ item: Claimed; secrets: Buffer[] | Error | null }>): void {
    for (const { item, secrets } of claimed) {
      this.unsettled.add(item.id);
      const control = new AttemptControl();
      const done = this.attempt(item, secrets, control).then((outcome) => {
        this.inFlight.delete(item.id);
        this.outcomes.push(outcome);
        this.schedulePump();
      });
      this.inFlight.set(item.id, { control, done });
    }
  }

  /**
   * The due heads, oldest due first. On PostgreSQL the claim is a lease written under FOR UPDATE
   * SKIP LOCKED, so competing dispatchers skip each other's rows. On SQLite the dispatcher role
   * (the lease row) already makes this process the only sender, so a claim is a read: requests in
   * flight are kept in memory, and a process that dies leaves its deliveries simply pending for
   * the next holder of the role (no write and no fsync per claim).
   */
  private async claim(
    sql: SqlClient,
    limit: number,
  ): Promise<Array<{ item: Claimed; secrets: Buffer[] | Error | null }>> {
    const now = this.ctx.clock.now();
    let rows: Record<string, unknown>[];
    if (sql.dialect === 'postgres') {
      rows = await sql.query(
        `WITH claimed AS (
           UPDATE webhook_deliveries SET lease_owner = $1, lease_until = $2, updated_at = $3
           WHERE id IN (
             SELECT d.id FROM webhook_deliveries d JOIN webhook_subscriptions s ON s.id = d.subscription_id
             WHERE d.head = 1 AND d.status = 'pending' AND d.next_attempt_at <= $3
               AND (d.lease_until IS NULL OR d.lease_until <= $3)
               AND (s.status = 'enabled' OR d.trigger = 'test')
             ORDER BY d.next_attempt_at
             LIMIT $4 FOR UPDATE OF d SKIP LOCKED)
           RETURNING id, queue, message_id, subscription_id, trigger, attempts)
         SELECT c.id, c.queue, c.message_id, c.subscription_id, c.trigger, c.attempts, s.agency_id, s.url, m.event_type, m.body, m.exhausted_at
         FROM claimed c
         JOIN webhook_messages m ON m.id = c.message_id
         JOIN webhook_subscriptions s ON s.id = c.subscription_id`,
        [this.options.dispatcherId, now + this.options.leaseMs, now, limit],
      );
    } else {
      // The due heads with everything needed to send them, in one read, less those already in
      // flight or waiting to be recorded (passed as one JSON parameter).
      rows = await sql.query(
        `SELECT d.id, d.queue, d.message_id, d.subscription_id, d.trigger, d.attempts, s.agency_id, s.url, m.event_type, m.body, m.exhausted_at
         FROM webhook_deliveries d
         JOIN webhook_subscriptions s ON s.id = d.subscription_id
         JOIN webhook_messages m ON m.id = d.message_id
         WHERE d.head = 1 AND d.status = 'pending' AND d.next_attempt_at <= $1
           AND (s.status = 'enabled' OR d.trigger = 'test')
           AND d.id NOT IN (SELECT value FROM json_each($3))
         ORDER BY d.next_attempt_at LIMIT $2`,
        [now, limit, this.unsettled.size === 0 ? '[]' : JSON.stringify([...this.unsettled])],
      );
    }
    if (rows.length === 0) return [];
    const items: Claimed[] = rows.map((row) => ({
      id: String(row.id),
      queue: String(row.queue),
      messageId: String(row.message_id),
      subscriptionId: String(row.subscription_id),
      agencyId: String(row.agency_id),
      url: String(row.url),
      attempt: num(row.attempts) + 1,
      trigger: row.trigger as DeliveryTrigger,
      eventType: String(row.event_type),
      body: String(row.body),
      exhaustedAt: numOrNull(row.exhausted_at),
    }));
    const secrets = await this.liveSecrets(sql, [...new Set(items.map((c) => c.subscriptionId))]);
    return items.map((item) => ({ item, secrets: secrets.get(item.subscriptionId) ?? null }));
  }

  /** The secrets that sign now, per subscription: the current one and those still in their overlap. */
  private async liveSecrets(
    sql: SqlClient,
    subscriptionIds: string[],
  ): Promise<Map<string, Buffer[] | Error>> {
    const now = this.ctx.clock.now();
    const ids = inList(sql, 2, subscriptionIds);
    const rows = await sql.query<{ subscription_id: string; secret: string }>(
      `SELECT subscription_id, secret FROM webhook_secrets
       WHERE subscription_id ${ids.text} AND (expires_at IS NULL OR expires_at > $1)
       ORDER BY subscription_id, n DESC`,
      [now, ids.param],
    );
    const result = new Map<string, Buffer[] | Error>();
    for (const row of rows) {
      const current = result.get(row.subscription_id);
      if (current instanceof Error) continue;
      try {
        const cacheKey = `${row.subscription_id}\u0000${row.secret}`;
        let bytes = this.secretCache.get(cacheKey);
        if (!bytes) {
          bytes = secretBytes(this.ctx.secrets.open(row.secret, row.subscription_id));
          if (this.secretCache.size > 10_000) this.secretCache.clear();
          this.secretCache.set(cacheKey, bytes);
        }
        result.set(row.subscription_id, [...(current ?? []), bytes]);
      } catch (error) {
        result.set(row.subscription_id, error as Error);
      }
    }
    return result;
  }

  private async attempt(
    item: Claimed,
    secrets: Buffer[] | Error | null,
    control: AttemptControl,
  ): Promise<Outcome> {
    if (secrets === null || secrets instanceof Error || secrets.length === 0) {
      this.ctx.logger.error(
        { err: secrets, subscriptionId: item.subscriptionId, deliveryId: item.id },
        'webhook dispatcher: no usable signing secret; delivery postponed',
      );
      return { kind: 'released', claimed: item, retryAt: this.ctx.clock.now() + 60_000 };
    }
    const startedAt = this.ctx.clock.now();
    const result = await this.sender.send(
      {
        url: item.url,
        messageId: item.messageId,
        timestamp: Math.floor(startedAt / 1000),
        body: item.body,
        secrets,
        eventType: item.eventType,
        attempt: item.attempt,
      },
      control,
    );
    if (control.aborted && result.errorClass !== 'timeout') {
      return { kind: 'released', claimed: item, retryAt: null };
    }
    return { kind: 'sent', claimed: item, result, startedAt, finishedAt: this.ctx.clock.now() };
  }

  /** Records a batch of outcomes in one transaction: attempt rows, delivery states, subscription health. */
  private async record(tx: SqlClient, batch: Outcome[]): Promise<void> {
    const owner = this.options.dispatcherId;
    const queues = batch.map((o) => [o.claimed.subscriptionId, o.claimed.queue] as const);
    await lockQueues(tx, queues);
    // On SQLite, a process that lost the dispatcher role (it stalled past its lease) records what
    // it saw but changes no state: the new holder sends those deliveries again.
    let holdsRole = true;
    if (tx.dialect === 'sqlite') {
      const [role] = await tx.query<{ owner: string }>('SELECT owner FROM webhook_leases WHERE name = $1', [
        DISPATCHER_LEASE,
      ]);
      holdsRole = role?.owner === owner;
    }
    const subscriptionIds = [...new Set(batch.map((o) => o.claimed.subscriptionId))];
    const health = new Map<
      string,
      {
        agencyId: string;
        status: string;
        failingSince: number | null;
        lastFailureAt: number | null;
        changed: boolean;
      }
    >();
    for (const part of chunks(subscriptionIds, 1000)) {
      const ids = inList(tx, 1, part);
      const rows = await tx.query(
        `SELECT id, agency_id, status, failing_since, last_failure_at FROM webhook_subscriptions WHERE id ${ids.text}`,
        [ids.param],
      );
      for (const row of rows) {
        health.set(String(row.id), {
          agencyId: String(row.agency_id),
          status: String(row.status),
          failingSince: numOrNull(row.failing_since),
          lastFailureAt: numOrNull(row.last_failure_at),
          changed: false,
        });
      }
    }
    const disable = async (subscriptionId: string, reason: 'gone' | 'failing', at: number, extra: object) => {
      const sub = health.get(subscriptionId);
      if (!sub || sub.status !== 'enabled') return;
      sub.status = 'disabled';
      await tx.execute(
        `UPDATE webhook_subscriptions SET status = 'disabled', disabled_reason = $1, disabled_at = $2, updated_at = $2 WHERE id = $3 AND status = 'enabled'`,
        [reason, at, subscriptionId],
      );
      await recordOperationalEvent(tx, at, sub.agencyId, subscriptionId, 'endpoint.disabled', {
        reason,
        ...extra,
      });
      this.ctx.logger.warn({ subscriptionId, reason, ...extra }, 'webhook subscription disabled');
    };

    /** Attempts that succeeded (the common case: fewer parameters) and the others. */
    const succeeded: unknown[] = [];
    const others: unknown[] = [];
    const delivered: unknown[] = [];
    /** Queues whose head left `pending` in this batch. */
    const left: QueueKey[] = [];
    for (const outcome of batch) {
      const { claimed } = outcome;
      if (outcome.kind === 'released') {
        if (!holdsRole) continue;
        await tx.execute(
          `UPDATE webhook_deliveries SET lease_owner = NULL, lease_until = NULL,
             next_attempt_at = COALESCE($1, next_attempt_at), updated_at = $2
           WHERE id = $3 AND COALESCE(lease_owner, $4) = $4 AND status = 'pending'`,
          [outcome.retryAt, this.ctx.clock.now(), claimed.id, owner],
        );
        continue;
      }
      const { result, startedAt, finishedAt } = outcome;
      const attemptId = timeId('att', startedAt);
      if (result.ok) {
        succeeded.push(
          attemptId,
          claimed.id,
          claimed.subscriptionId,
          claimed.messageId,
          claimed.attempt,
          claimed.trigger,
          startedAt,
          result.latencyMs,
          result.statusCode,
          result.responseBody,
        );
      } else {
        others.push(
          attemptId,
          claimed.id,
          claimed.subscriptionId,
          claimed.messageId,
          claimed.attempt,
          claimed.trigger,
          startedAt,
          result.latencyMs,
          'failed',
          result.statusCode,
          result.errorClass,
          result.errorMessage?.slice(0, 1000) ?? null,
          result.responseBody,
        );
      }
      if (!holdsRole) continue;
      const sub = health.get(claimed.subscriptionId);
      if (result.ok) {
        delivered.push(claimed.id, claimed.attempt, finishedAt, startedAt, result.statusCode);
        left.push([claimed.subscriptionId, claimed.queue]);
        // A test message that gets through says nothing about the real ones: it neither starts
        // nor ends a run of failures, so an endpoint that answers only tests is still disabled.
        if (sub && claimed.trigger !== 'test' && (sub.failingSince !== null || sub.lastFailureAt !== null)) {
          sub.failingSince = null;
          sub.lastFailureAt = null;
          sub.changed = true;
        }
        if (claimed.exhaustedAt !== null) {
          const cleared = await tx.execute(
            'UPDATE webhook_messages SET exhausted_at = NULL WHERE id = $1 AND exhausted_at IS NOT NULL',
            [claimed.messageId],
          );
          if (cleared > 0) {
            await recordOperationalEvent(
              tx,
              finishedAt,
              claimed.agencyId,
              claimed.subscriptionId,
              'message.attempt.recovered',
              { messageId: claimed.messageId, deliveryId: claimed.id, attempt: claimed.attempt },
            );
          }
        }
        continue;
      }

      // A failure. Manual resends and tests are tried once; scheduled deliveries follow the schedule.
      let nextAt: number | null = null;
      if (claimed.trigger === 'scheduled') {
        const delay = nextRetryDelay(
          {
            attempts: claimed.attempt,
            status: result.statusCode,
            timedOut: result.timedOut,
            retryAfterMs: parseRetryAfter(result.retryAfter, finishedAt),
          },
          this.ctx.retryScheduleMs,
          this.ctx.random,
        );
        nextAt = delay === null ? null : finishedAt + delay;
      }
      await tx.execute(
        `UPDATE webhook_deliveries SET status = $1, head = $9, attempts = $10,
           next_attempt_at = COALESCE($2, next_attempt_at), lease_owner = NULL, lease_until = NULL,
           last_attempt_at = $3, last_status_code = $4, last_error_class = $5, updated_at = $6
         WHERE id = $7 AND COALESCE(lease_owner, $8) = $8 AND status = 'pending'`,
        [
          nextAt === null ? 'failed' : 'pending',
          nextAt,
          startedAt,
          result.statusCode,
          result.errorClass,
          finishedAt,
          claimed.id,
          owner,
          nextAt === null ? 0 : 1,
          claimed.attempt,
        ],
      );
      if (nextAt === null) left.push([claimed.subscriptionId, claimed.queue]);
      if (claimed.trigger === 'scheduled' && nextAt === null) {
        await tx.execute('UPDATE webhook_messages SET exhausted_at = $1 WHERE id = $2', [
          finishedAt,
          claimed.messageId,
        ]);
        await recordOperationalEvent(
          tx,
          finishedAt,
          claimed.agencyId,
          claimed.subscriptionId,
          'message.attempt.exhausted',
          {
            messageId: claimed.messageId,
            deliveryId: claimed.id,
            attempts: claimed.attempt,
            lastStatusCode: result.statusCode,
            lastErrorClass: result.errorClass,
          },
        );
      }
      if (result.statusCode === 410) {
        await disable(claimed.subscriptionId, 'gone', finishedAt, {
          deliveryId: claimed.id,
          statusCode: 410,
        });
      }
      if (sub && claimed.trigger !== 'test') {
        // A run of failures starts again when the endpoint went untried for longer than the gap.
        if (
          sub.failingSince === null ||
          sub.lastFailureAt === null ||
          startedAt - sub.lastFailureAt > this.ctx.failureStreakGapMs
        ) {
          sub.failingSince = startedAt;
        }
        sub.lastFailureAt = startedAt;
        sub.changed = true;
        if (startedAt - sub.failingSince >= this.ctx.disableAfterMs) {
          await disable(claimed.subscriptionId, 'failing', finishedAt, {
            failingSince: new Date(sub.failingSince).toISOString(),
          });
        }
      }
    }
    // Succeeded attempts leave their error columns out (NULL) and name their outcome inline.
    await insertAttempts(
      tx,
      owner,
      succeeded,
      10,
      (p) =>
        `(${p(1)}, ${p(2)}, ${p(3)}, ${p(4)}, ${p(5)}, ${p(6)}, $1, ${p(7)}, ${p(8)}, 'succeeded', ${p(9)}, NULL, NULL, ${p(10)})`,
    );
    await insertAttempts(
      tx,
      owner,
      others,
      13,
      (p) =>
        `(${p(1)}, ${p(2)}, ${p(3)}, ${p(4)}, ${p(5)}, ${p(6)}, $1, ${p(7)}, ${p(8)}, ${p(9)}, ${p(10)}, ${p(11)}, ${p(12)}, ${p(13)})`,
    );
    const DELIVERED = 5;
    for (let i = 0; i < delivered.length; i += DELIVERED * 40) {
      const part = delivered.slice(i, i + DELIVERED * 40);
      await tx.execute(
        `UPDATE webhook_deliveries SET status = 'delivered', head = 0, attempts = CAST(v.column2 AS INTEGER),
           delivered_at = CAST(v.column3 AS BIGINT), last_attempt_at = CAST(v.column4 AS BIGINT),
           last_status_code = CAST(v.column5 AS INTEGER), last_error_class = NULL,
           lease_owner = NULL, lease_until = NULL, updated_at = CAST(v.column3 AS BIGINT)
         FROM (VALUES ${valuesList(part.length / DELIVERED, DELIVERED, 1)}) AS v
         WHERE webhook_deliveries.id = v.column1 AND COALESCE(webhook_deliveries.lease_owner, $1) = $1
           AND webhook_deliveries.status = 'pending'`,
        [owner, ...part],
      );
    }
    await promoteHeads(tx, left);
    for (const [id, sub] of health) {
      if (!sub.changed) continue;
      await tx.execute(
        'UPDATE webhook_subscriptions SET failing_since = $1, last_failure_at = $2 WHERE id = $3',
        [sub.failingSince, sub.lastFailureAt, id],
      );
    }
  }
}

/**
 * Inserts attempt rows, `width` values each (flattened in `values`), 25 rows per statement: SQLite
 * finds each bound parameter by name, a cost that grows with the number of parameters in the
 * statement. `row(p)` writes one row's VALUES tuple, `p(k)` naming its k-th value; `$1` is `owner`.
 */
async function insertAttempts(
  tx: SqlClient,
  owner: string,
  values: readonly unknown[],
  width: number,
  row: (p: (k: number) => string) => string,
): Promise<void> {
  for (let i = 0; i < values.length; i += width * 25) {
    const part = values.slice(i, i + width * 25);
    const rows: string[] = [];
    for (let o = 1; o < part.length + 1; o += width) rows.push(row((k) => `$${o + k}`));
    await tx.execute(
      `INSERT INTO webhook_attempts (id, delivery_id, subscription_id, message_id, attempt, trigger, dispatcher_id, started_at, latency_ms, outcome, status_code, error_class, error_message, response_body)
       VALUES ${rows.join(', ')}`,
      [owner, ...part],
    );
  }
}
