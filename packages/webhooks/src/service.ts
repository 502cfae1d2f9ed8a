import { randomBytes } from 'node:crypto';
import { migrate, type SqlClient, type SqlRow } from '@muster/event-store';
import { type ChangeKind, changeFeedMigrations, readChangeFeed } from '@muster/projections';
import {
  type Clock,
  chunks,
  iso,
  messageId,
  num,
  numOrNull,
  placeholders,
  silentLogger,
  systemClock,
  timeId,
  type WebhookContext,
  type WebhookLogger,
} from './context.js';
import { Dispatcher } from './dispatcher.js';
import { validationError, WebhookError } from './errors.js';
import { testBody } from './payload.js';
import { matches, Planner, parseFilter } from './planner.js';
import { insertDeliveries, type NewDelivery } from './queues.js';
import { DEFAULT_RETRY_SCHEDULE_MS } from './retry.js';
import { webhookMigrations } from './schema.js';
import { ThreadedSender } from './send-thread.js';
import { type Transport, WebhookSender } from './sender.js';
import { generateSecret, secretBox } from './signing.js';
import { egressPolicy, type Resolver, validateWebhookUrl } from './ssrf.js';
import type {
  Attempt,
  Delivery,
  DeliveryStatus,
  DeliveryTrigger,
  DeliveryWithPayload,
  DisabledReason,
  ErrorClass,
  OperationalEvent,
  OperationalEventType,
  Page,
  ReplayResult,
  Subscription,
  SubscriptionWithSecret,
} from './types.js';
import {
  parseCreate,
  parseDeliveryQuery,
  parsePageQuery,
  parseReplay,
  parseRotate,
  parseUpdate,
  type ReplaySelection,
} from './validation.js';

export const MAX_PAYLOAD_BYTES = 64 * 1024;
export const MAX_LIVE_SECRETS = 3;
/**
 * Subscriptions one agency may hold. Each change is planned, stored and sent once per matching
 * subscription: without a bound, one key could multiply every change into thousands of rows and
 * requests, and aim them all at one third-party URL.
 */
export const DEFAULT_MAX_SUBSCRIPTIONS_PER_AGENCY = 100;
export const DEFAULT_MAX_IN_FLIGHT = 256;
/** Deliveries one replay call creates at most; call again from `resumeAfter` for more. */
export const REPLAY_CAP = 10_000;

export interface WebhookServiceOptions {
  /** Where the subscriptions and the outbox live: the SQLite file of the store, or PostgreSQL. */
  sql: SqlClient;
  /** Base URL of the API, for `links.readiness` in payloads (e.g. `https://muster.example.org`). */
  publicUrl: string;
  /** Allow `http://` endpoints (tests, demos). */
  allowHttp?: boolean;
  /** Ranges webhooks may reach although private (e.g. `127.0.0.0/8` for loopback receivers). */
  allowCidrs?: readonly string[];
  clock?: Clock;
  /**
   * The event store's `canonicalPosition`: a replay's `fromEventPosition` is compared with the
   * change feed's positions as a string, which orders only the form the store emits. Without it,
   * the position is used as given.
   */
  canonicalPosition?: (position: string) => string;
  /**
   * The missions an agency may read now (`*`: all). A subscription is sent the changes of the
   * missions both it and its agency's rights name, so `missions: "*"` means every mission the
   * agency may read, and a change the agency could not read over the API is never sent to it.
   * Without it, a subscription's own list alone decides (for a service that has no scopes).
   */
  missionScope?: (agencyId: string) => '*' | readonly string[];
  logger?: WebhookLogger;
  /** Base64 of 32 random bytes: signing secrets are kept AES-256-GCM encrypted. Without it, in clear. */
  secretKey?: string | Buffer;
  /** Name resolution for the SSRF guard (checked at creation and at every connection). */
  resolve?: Resolver;
  /** Extra CAs to trust for https endpoints (self-signed test receivers). */
  ca?: string | Buffer | Array<string | Buffer>;
  /** Total budget of one attempt; default 15 s. */
  requestTimeoutMs?: number;
  /** Default 5 s. */
  connectTimeoutMs?: number;
  /** Delays after the 1st, 2nd, ... failure; default the Standard Webhooks schedule. */
  retryScheduleMs?: readonly number[];
  /** [0, 1) source for the jitter; default Math.random. */
  random?: () => number;
  /** A subscription whose attempts have all failed for this long is disabled; default 5 days. */
  disableAfterMs?: number;
  /** Claim lease, and the SQLite dispatcher role; default 60 s (must exceed the request timeout). */
  leaseMs?: number;
  pollIntervalMs?: number;
  /**
   * Requests in flight at once per process; default 256. A slot is taken from the claim until the
   * outcome reaches the dispatcher, so the throughput is at most this many per that round trip:
   * 2,000 deliveries/s with 30 ms round trips (a busy SQLite process, loopback receivers) already
   * need 60, and receivers 100 ms away need 200.
   */
  maxInFlight?: number;
  /** Changes planned per transaction; default 50 on SQLite with the dispatcher in the process, else 500. */
  plannerBatchSize?: number;
  /** Run the planner in this process (default true). */
  plan?: boolean;
  /** Run the dispatcher in this process (default true). */
  dispatch?: boolean;
  /** In-process wake-ups from the change feed writer, e.g. the projections runner. */
  changeSignal?: { onChanges(listener: () => void): unknown };
  dispatcherId?: string;
  /** Messages, deliveries, attempts and operational events are kept this long; default 30 days. */
  retentionMs?: number;
  /** Subscriptions one agency may hold; default {@link DEFAULT_MAX_SUBSCRIPTIONS_PER_AGENCY}. */
  maxSubscriptionsPerAgency?: number;
  /**
   * Send from the process's sender thread (default true), so that the HTTP work runs beside the
   * database work; false sends from the calling thread. Either way with the same guard and limits.
   */
  senderThread?: boolean;
}

interface SubscriptionRow extends SqlRow {
  id: string;
  agency_id: string;
  url: string;
  missions: string;
  event_types: string;
  description: string;
  status: 'enabled' | 'disabled';
  disabled_reason: DisabledReason | null;
  disabled_at: number | null;
  failing_since: number | null;
  created_at: number;
  updated_at: number;
}

const SUBSCRIPTION_COLUMNS =
  'id, agency_id, url, missions, event_types, description, status, disabled_reason, disabled_at, failing_since, starts_after_seq, created_at, updated_at';

const DELIVERY_SELECT = `SELECT d.id, d.message_id, d.subscription_id, d.trigger, d.status, d.attempts, d.next_attempt_at, d.head,
  d.last_attempt_at, d.last_status_code, d.last_error_class, d.delivered_at, d.created_at,
  m.event_type, m.mission_id, m.version
  FROM webhook_deliveries d JOIN webhook_messages m ON m.id = d.message_id`;

function toDelivery(row: SqlRow): Delivery {
  const status = String(row.status) as DeliveryStatus;
  return {
    id: String(row.id),
    messageId: String(row.message_id),
    subscriptionId: String(row.subscription_id),
    eventType: String(row.event_type),
    missionId: row.mission_id === null ? null : String(row.mission_id),
    version: numOrNull(row.version),
    trigger: String(row.trigger) as DeliveryTrigger,
    status,
    attempts: num(row.attempts),
    // Only a queue's head has a next attempt: the rest wait for the deliveries before them, and the
    // time stored on them (when they were queued) would read as overdue.
    nextAttemptAt: status === 'pending' && num(row.head) === 1 ? iso(numOrNull(row.next_attempt_at)) : null,
    waitingBehindEarlier: status === 'pending' && num(row.head) !== 1,
    lastAttemptAt: iso(numOrNull(row.last_attempt_at)),
    lastStatusCode: numOrNull(row.last_status_code),
    lastErrorClass: (row.last_error_class as ErrorClass | null) ?? null,
    deliveredAt: iso(numOrNull(row.delivered_at)),
    createdAt: iso(num(row.created_at)) as string,
  };
}

/**
 * The webhooks of one service process: subscription management for the routes (every method
 * takes the caller's agency id and sees only that agency's subscriptions), the planner that turns
 * readiness changes into outbox rows, and the dispatcher that sends them.
 */
export class WebhookService {
  readonly planner: Planner;
  readonly dispatcher: Dispatcher;
  private readonly ctx: WebhookContext;
  private readonly sender: Transport;
  private migrated: Promise<void> | null = null;
  private started = false;
  private stopping = false;
  private unsubscribe: (() => void) | null = null;
  private purgeTimer: NodeJS.Timeout | null = null;
  private readonly retentionMs: number;
  private readonly maxSubscriptionsPerAgency: number;
  private readonly canonicalPosition: ((position: string) => string) | undefined;

  constructor(private readonly options: WebhookServiceOptions) {
    let publicUrl: URL;
    try {
      publicUrl = new URL(options.publicUrl);
    } catch {
      throw new WebhookError(
        'webhook-invalid-config',
        `publicUrl is not an absolute URL: ${options.publicUrl}`,
      );
    }
    const requestTimeoutMs = options.requestTimeoutMs ?? 15_000;
    const leaseMs = options.leaseMs ?? 60_000;
    if (leaseMs <= requestTimeoutMs) {
      throw new WebhookError(
        'webhook-invalid-config',
        `leaseMs (${leaseMs}) must be longer than requestTimeoutMs (${requestTimeoutMs})`,
      );
    }
    const policy = egressPolicy(options);
    this.ctx = {
      sql: options.sql,
      clock: options.clock ?? systemClock,
      logger: options.logger ?? silentLogger,
      random: options.random ?? Math.random,
      publicUrl: publicUrl.toString().replace(/\/+$/, ''),
      policy,
      secrets: secretBox(options.secretKey),
      retryScheduleMs: options.retryScheduleMs ?? DEFAULT_RETRY_SCHEDULE_MS,
      disableAfterMs: options.disableAfterMs ?? 5 * 24 * 3600 * 1000,
      failureStreakGapMs: 48 * 3600 * 1000,
      maxPayloadBytes: MAX_PAYLOAD_BYTES,
      missionScope: options.missionScope ?? (() => '*'),
    };
    this.retentionMs = options.retentionMs ?? 30 * 24 * 3600 * 1000;
    this.maxSubscriptionsPerAgency =
      options.maxSubscriptionsPerAgency ?? DEFAULT_MAX_SUBSCRIPTIONS_PER_AGENCY;
    this.canonicalPosition = options.canonicalPosition;
    const senderOptions = {
      policy,
      requestTimeoutMs,
      connectTimeoutMs: Math.min(options.connectTimeoutMs ?? 5_000, requestTimeoutMs),
      ...(options.ca === undefined ? {} : { ca: options.ca }),
      userAgent: 'Muster-Webhooks/1',
    };
    this.sender =
      options.senderThread === false
        ? new WebhookSender(senderOptions)
        : new ThreadedSender(
            { ...senderOptions, customResolver: options.resolve !== undefined },
            this.ctx.logger,
          );
    this.dispatcher = new Dispatcher(this.ctx, this.sender, {
      dispatcherId: options.dispatcherId ?? `dsp_${randomBytes(8).toString('hex')}`,
      leaseMs,
      pollIntervalMs: options.pollIntervalMs ?? 1_000,
      maxInFlight: options.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT,
    });
    // On SQLite every commit is an fsync, and the SQL work itself holds the process: batches ride
    // along with the dispatcher's transaction, sharing its fsync, and it claims what they planned.
    // (On PostgreSQL commits do not block, and separate transactions keep the planner's and the
    // dispatcher's queue locks from ever waiting on each other.)
    const ride = options.dispatch !== false && options.sql.dialect === 'sqlite';
    this.planner = new Planner(this.ctx, {
      // A batch that rides in the dispatcher's transaction delays that transaction's sends and
      // the whole process (SQLite work is synchronous): after a pause, 500 changes to 10
      // subscriptions would be one stall of several hundred milliseconds; 50 keep it to tens.
      batchSize: options.plannerBatchSize ?? (ride ? 50 : 500),
      pollIntervalMs: options.pollIntervalMs ?? 1_000,
      onPlanned: () => this.dispatcher.wake(),
      ...(ride ? { commit: (work) => this.dispatcher.commitWith(work) } : {}),
    });
  }

  /** Creates the tables once (idempotent; safe with several replicas starting at once). */
  migrate(): Promise<void> {
    this.migrated ??= migrate(this.ctx.sql, [...changeFeedMigrations, ...webhookMigrations]).catch(
      (error) => {
        this.migrated = null;
        throw error;
      },
    );
    return this.migrated;
  }

  /** Migrates, then runs the planner and the dispatcher (as configured) until `stop`. */
  async start(): Promise<void> {
    await this.migrate();
    if (this.started) return;
    this.started = true;
    // The sender thread boots now rather than under the first deliveries, which would otherwise
    // all wait for it (a second or more when running from the TypeScript sources).
    if (this.options.dispatch !== false) await this.sender.warm?.();
    if (this.stopping) return;
    if (this.options.plan !== false) {
      const off = this.options.changeSignal?.onChanges(() => this.planner.wake());
      if (typeof off === 'function') this.unsubscribe = off as () => void;
      this.planner.start();
    }
    if (this.options.dispatch !== false) {
      this.dispatcher.start();
      this.purgeTimer = setInterval(() => {
        this.purgeExpired().catch((error) =>
          this.ctx.logger.warn({ err: error }, 'webhook retention: purge failed; will retry'),
        );
      }, 3600_000);
      this.purgeTimer.unref?.();
    }
    this.ctx.logger.info(
      {
        plan: this.options.plan !== false,
        dispatch: this.options.dispatch !== false,
        secretsEncrypted: this.ctx.secrets.encrypting,
      },
      'webhooks started',
    );
  }

  /** Wake the planner now (the change feed has new rows); polling covers missed calls. */
  notifyChanges(): void {
    this.planner.wake();
  }

  /**
   * Graceful shutdown: stops planning and claiming, waits up to `timeoutMs` for requests in
   * flight, gives the rest back (sent again later with the same `webhook-id`), closes the client.
   */
  async stop(options: { timeoutMs?: number } = {}): Promise<void> {
    this.stopping = true;
    this.unsubscribe?.();
    this.unsubscribe = null;
    if (this.purgeTimer) clearInterval(this.purgeTimer);
    await this.planner.stop();
    await this.dispatcher.stop(options.timeoutMs ?? 15_000);
    await this.sender.close();
    this.started = false;
  }

  // ---- subscriptions ----

  async createSubscription(agencyId: string, input: unknown): Promise<SubscriptionWithSecret> {
    this.assertOpen(agencyId);
    await this.migrate();
    const parsed = parseCreate(input);
    const url = await validateWebhookUrl(parsed.url, this.ctx.policy);
    const now = this.ctx.clock.now();
    const id = timeId('wh', now);
    const secret = generateSecret();
    await this.ctx.sql.transaction(async (tx) => {
      const [held] = await tx.query<{ n: number | string }>(
        'SELECT COUNT(*) AS n FROM webhook_subscriptions WHERE agency_id = $1',
        [agencyId],
      );
      if (num(held?.n ?? 0) >= this.maxSubscriptionsPerAgency) {
        throw new WebhookError(
          'webhook-subscription-limit',
          `Agency '${agencyId}' holds ${this.maxSubscriptionsPerAgency} subscriptions already; delete one first`,
          { limit: this.maxSubscriptionsPerAgency },
        );
      }
      const [head] = await tx.query<{ head: number | string | null }>(
        'SELECT COALESCE(MAX(seq), 0) AS head FROM readiness_changes',
      );
      await tx.execute(
        `INSERT INTO webhook_subscriptions (id, agency_id, url, missions, event_types, description, status, starts_after_seq, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, 'enabled', $7, $8, $8)`,
        [
          id,
          agencyId,
          url,
          JSON.stringify(parsed.missions),
          JSON.stringify(parsed.eventTypes),
          parsed.description,
          num(head?.head ?? 0),
          now,
        ],
      );
      await tx.execute(
        'INSERT INTO webhook_secrets (subscription_id, n, secret, created_at, expires_at) VALUES ($1, 1, $2, $3, NULL)',
        [id, this.ctx.secrets.seal(secret, id), now],
      );
    });
    this.ctx.logger.info({ subscriptionId: id, agencyId }, 'webhook subscription created');
    return { ...(await this.getSubscription(agencyId, id)), secret };
  }

  async listSubscriptions(agencyId: string, query: unknown = {}): Promise<Page<Subscription>> {
    this.assertAgency(agencyId);
    await this.migrate();
    const { after, limit } = parsePageQuery(query, 'wh');
    const rows = await this.ctx.sql.query<SubscriptionRow>(
      `SELECT ${SUBSCRIPTION_COLUMNS} FROM webhook_subscriptions WHERE agency_id = $1 AND id > $2 ORDER BY id LIMIT $3`,
      [agencyId, after ?? '', limit + 1],
    );
    const page = rows.slice(0, limit);
    const items = await this.toSubscriptions(page);
    return { items, next: rows.length > limit ? (page[page.length - 1]?.id ?? null) : null };
  }

  async getSubscription(agencyId: string, id: string): Promise<Subscription> {
    this.assertAgency(agencyId);
    await this.migrate();
    const row = await this.ownedRow(this.ctx.sql, agencyId, id);
    const [subscription] = await this.toSubscriptions([row]);
    return subscription as Subscription;
  }

  async updateSubscription(agencyId: string, id: string, input: unknown): Promise<Subscription> {
    this.assertOpen(agencyId);
    await this.migrate();
    const patch = parseUpdate(input);
    await this.ownedRow(this.ctx.sql, agencyId, id);
    const url = patch.url === undefined ? undefined : await validateWebhookUrl(patch.url, this.ctx.policy);
    let reenabled = false;
    await this.ctx.sql.transaction(async (tx) => {
      const row = await this.ownedRow(tx, agencyId, id);
      const now = this.ctx.clock.now();
      const sets: string[] = ['updated_at = $1'];
      const params: unknown[] = [now];
      const set = (column: string, value: unknown) => {
        params.push(value);
        sets.push(`${column} = $${params.length}`);
      };
      if (url !== undefined) set('url', url);
      if (patch.missions !== undefined) set('missions', JSON.stringify(patch.missions));
      if (patch.eventTypes !== undefined) set('event_types', JSON.stringify(patch.eventTypes));
      if (patch.description !== undefined) set('description', patch.description);
      if (patch.enabled === true && row.status === 'disabled') {
        set('status', 'enabled');
        set('disabled_reason', null);
        set('disabled_at', null);
        set('failing_since', null);
        set('last_failure_at', null);
        reenabled = true;
      } else if (patch.enabled === false && row.status === 'enabled') {
        set('status', 'disabled');
        set('disabled_reason', 'manual');
        set('disabled_at', now);
      }
      params.push(id);
      await tx.execute(
        `UPDATE webhook_subscriptions SET ${sets.join(', ')} WHERE id = $${params.length}`,
        params,
      );
      if (reenabled) {
        // What waited while disabled is due now, in order.
        await tx.execute(
          `UPDATE webhook_deliveries SET next_attempt_at = $1, updated_at = $1 WHERE subscription_id = $2 AND status = 'pending' AND next_attempt_at > $1`,
          [now, id],
        );
      }
    });
    if (reenabled) this.dispatcher.wake();
    return this.getSubscription(agencyId, id);
  }

  /** Deletes the subscription with its secrets, outbox rows, attempt log and operational events. */
  async deleteSubscription(agencyId: string, id: string): Promise<void> {
    this.assertOpen(agencyId);
    await this.migrate();
    await this.ctx.sql.transaction(async (tx) => {
      await this.ownedRow(tx, agencyId, id);
      for (const table of [
        'webhook_attempts',
        'webhook_deliveries',
        'webhook_messages',
        'webhook_versions',
        'webhook_secrets',
        'webhook_operational_events',
      ]) {
        await tx.execute(`DELETE FROM ${table} WHERE subscription_id = $1`, [id]);
      }
      await tx.execute('DELETE FROM webhook_subscriptions WHERE id = $1', [id]);
    });
    this.ctx.logger.info({ subscriptionId: id, agencyId }, 'webhook subscription deleted');
  }

  /**
   * A new signing secret, returned once. The previous ones keep signing beside it until
   * `overlapSeconds` (default 24 h, at most 7 days) have passed; 0 revokes them at once (a leak).
   * At most 3 secrets are live: a rotation that would make a 4th is refused.
   */
  async rotateSecret(agencyId: string, id: string, input: unknown = {}): Promise<SubscriptionWithSecret> {
    this.assertOpen(agencyId);
    await this.migrate();
    const { overlapSeconds } = parseRotate(input);
    const secret = generateSecret();
    await this.ctx.sql.transaction(async (tx) => {
      await this.ownedRow(tx, agencyId, id);
      const now = this.ctx.clock.now();
      const [top] = await tx.query<{ n: number | null }>(
        'SELECT MAX(n) AS n FROM webhook_secrets WHERE subscription_id = $1',
        [id],
      );
      const n = num(top?.n ?? 0) + 1;
      const live = await tx.query<{ n: number; expires_at: number | null }>(
        'SELECT n, expires_at FROM webhook_secrets WHERE subscription_id = $1 AND (expires_at IS NULL OR expires_at > $2) ORDER BY n',
        [id, now],
      );
      if (overlapSeconds === 0) {
        await tx.execute(
          'UPDATE webhook_secrets SET expires_at = $1 WHERE subscription_id = $2 AND (expires_at IS NULL OR expires_at > $1)',
          [now, id],
        );
      } else {
        if (live.length >= MAX_LIVE_SECRETS) {
          const ends = live.map((s) => numOrNull(s.expires_at)).filter((t): t is number => t !== null);
          throw new WebhookError(
            'webhook-secret-limit',
            `${live.length} secrets are live already; rotate with overlapSeconds 0, or after ${iso(Math.min(...ends))}`,
            { liveSecrets: live.length, limit: MAX_LIVE_SECRETS, nextExpiry: iso(Math.min(...ends)) },
          );
        }
        await tx.execute(
          'UPDATE webhook_secrets SET expires_at = $1 WHERE subscription_id = $2 AND expires_at IS NULL',
          [now + overlapSeconds * 1000, id],
        );
      }
      // Secrets that no longer sign are not kept.
      await tx.execute('DELETE FROM webhook_secrets WHERE subscription_id = $1 AND expires_at <= $2', [
        id,
        now,
      ]);
      await tx.execute(
        'INSERT INTO webhook_secrets (subscription_id, n, secret, created_at, expires_at) VALUES ($1, $2, $3, $4, NULL)',
        [id, n, this.ctx.secrets.seal(secret, id), now],
      );
      await tx.execute('UPDATE webhook_subscriptions SET updated_at = $1 WHERE id = $2', [now, id]);
    });
    this.ctx.logger.info({ subscriptionId: id, agencyId, overlapSeconds }, 'webhook secret rotated');
    return { ...(await this.getSubscription(agencyId, id)), secret };
  }

  /** Queues a `webhook.test` message through the same outbox and dispatcher (tried once, no retries). */
  async sendTest(agencyId: string, id: string): Promise<Delivery> {
    this.assertOpen(agencyId);
    await this.migrate();
    const now = this.ctx.clock.now();
    const msgId = `msg_${randomBytes(16).toString('hex')}`;
    const deliveryId = timeId('dlv', now);
    await this.ctx.sql.transaction(async (tx) => {
      await this.ownedRow(tx, agencyId, id);
      await tx.execute(
        `INSERT INTO webhook_messages (id, subscription_id, event_type, mission_id, version, change_id, change_seq, cause_position, body, rejected_bytes, exhausted_at, created_at)
         VALUES ($1, $2, 'webhook.test', NULL, NULL, NULL, NULL, NULL, $3, NULL, NULL, $4)`,
        [msgId, id, testBody(id, now), now],
      );
      await insertDeliveries(
        tx,
        [
          {
            id: deliveryId,
            messageId: msgId,
            subscriptionId: id,
            queue: '',
            version: 0,
            trigger: 'test',
            nextAttemptAt: now,
          },
        ],
        now,
      );
    });
    this.dispatcher.wake();
    return this.getDelivery(agencyId, deliveryId);
  }

  // ---- deliveries, attempts, replay ----

  /** Newest first; `after` is the `next` of the previous page. */
  async listDeliveries(
    agencyId: string,
    subscriptionId: string,
    query: unknown = {},
  ): Promise<Page<Delivery>> {
    this.assertAgency(agencyId);
    await this.migrate();
    const { status, after, limit } = parseDeliveryQuery(query);
    await this.ownedRow(this.ctx.sql, agencyId, subscriptionId);
    const params: unknown[] = [subscriptionId];
    let where = 'd.subscription_id = $1';
    if (status) {
      params.push(status);
      where += ` AND d.status = $${params.length}`;
    }
    if (after) {
      params.push(after);
      where += ` AND d.id < $${params.length}`;
    }
    params.push(limit + 1);
    const rows = await this.ctx.sql.query(
      `${DELIVERY_SELECT} WHERE ${where} ORDER BY d.id DESC LIMIT $${params.length}`,
      params,
    );
    const items = rows.slice(0, limit).map(toDelivery);
    return { items, next: rows.length > limit ? (items[items.length - 1]?.id ?? null) : null };
  }

  async getDelivery(agencyId: string, deliveryId: string): Promise<DeliveryWithPayload> {
    this.assertAgency(agencyId);
    await this.migrate();
    const [row] = await this.ctx.sql.query(
      `${DELIVERY_SELECT.replace('m.version', 'm.version, m.body')} JOIN webhook_subscriptions s ON s.id = d.subscription_id WHERE d.id = $1 AND s.agency_id = $2`,
      [deliveryId, agencyId],
    );
    if (!row) throw new WebhookError('webhook-delivery-not-found', `No webhook delivery ${deliveryId}`);
    return { ...toDelivery(row), payload: JSON.parse(String(row.body)) };
  }

  /** The attempt log of one delivery, oldest first. */
  async listAttempts(agencyId: string, deliveryId: string): Promise<Attempt[]> {
    await this.getDelivery(agencyId, deliveryId);
    const rows = await this.ctx.sql.query(
      `SELECT id, delivery_id, attempt, trigger, started_at, latency_ms, outcome, status_code, error_class, error_message, response_body
       FROM webhook_attempts WHERE delivery_id = $1 ORDER BY started_at, id`,
      [deliveryId],
    );
    return rows.map((row) => ({
      id: String(row.id),
      deliveryId: String(row.delivery_id),
      attempt: num(row.attempt),
      trigger: String(row.trigger) as DeliveryTrigger,
      startedAt: iso(num(row.started_at)) as string,
      latencyMs: num(row.latency_ms),
      outcome: String(row.outcome) as Attempt['outcome'],
      statusCode: numOrNull(row.status_code),
      errorClass: (row.error_class as ErrorClass | null) ?? null,
      errorMessage: (row.error_message as string | null) ?? null,
      responseBody: (row.response_body as string | null) ?? null,
    }));
  }

  /**
   * Sends a delivery's message again, with the same `webhook-id`. When the message still waits
   * for a retry, that retry is moved to now instead; otherwise a manual delivery is queued (in
   * its mission's order), tried once, and not rescheduled when it fails.
   */
  async replayDelivery(agencyId: string, deliveryId: string): Promise<Delivery> {
    this.assertOpen(agencyId);
    const original = await this.getDelivery(agencyId, deliveryId);
    const result = await this.ctx.sql.transaction((tx) =>
      this.replayMessages(tx, original.subscriptionId, [original.messageId]),
    );
    this.dispatcher.wake();
    return this.getDelivery(agencyId, result.deliveryIds[0] ?? deliveryId);
  }

  /**
   * Sends messages of a subscription again: those planned in a time range (`since`, `until`,
   * `onlyFailed`), or those of the change feed after a position (`afterChangeSeq`), or from an
   * event store position on (`fromEventPosition`). Same message ids, so receivers deduplicate.
   */
  async replay(agencyId: string, subscriptionId: string, input: unknown): Promise<ReplayResult> {
    this.assertOpen(agencyId);
    await this.migrate();
    const selection = parseReplay(input, this.canonicalPosition);
    const row = await this.ownedRow(this.ctx.sql, agencyId, subscriptionId);
    const result = await this.selectForReplay(row, selection);
    let replayed = 0;
    let alreadyPending = 0;
    for (const part of chunks(result.messageIds, 500)) {
      const r = await this.ctx.sql.transaction((tx) => this.replayMessages(tx, subscriptionId, part));
      replayed += r.created;
      alreadyPending += r.moved;
    }
    if (replayed + alreadyPending > 0) this.dispatcher.wake();
    this.ctx.logger.info(
      { subscriptionId, agencyId, selection, replayed, alreadyPending },
      'webhook replay requested',
    );
    return {
      replayed,
      alreadyPending,
      notPlanned: result.notPlanned,
      truncated: result.resumeAfter !== null,
      resumeAfter: result.resumeAfter,
    };
  }

  private async selectForReplay(
    row: SubscriptionRow,
    selection: ReplaySelection,
  ): Promise<{ messageIds: string[]; notPlanned: number; resumeAfter: string | null }> {
    const sql = this.ctx.sql;
    if (selection.kind === 'time') {
      const params: unknown[] = [
        row.id,
        selection.since,
        selection.until ?? Number.MAX_SAFE_INTEGER,
        REPLAY_CAP + 1,
      ];
      const failedOnly = selection.onlyFailed
        ? `AND EXISTS (SELECT 1 FROM webhook_deliveries f WHERE f.message_id = m.id AND f.status = 'failed')
           AND NOT EXISTS (SELECT 1 FROM webhook_deliveries g WHERE g.message_id = m.id AND g.status = 'delivered')`
        : '';
      const rows = await sql.query<{ id: string; created_at: number }>(
        `SELECT m.id, m.created_at FROM webhook_messages m
         WHERE m.subscription_id = $1 AND m.mission_id IS NOT NULL AND m.rejected_bytes IS NULL AND m.created_at >= $2 AND m.created_at < $3 ${failedOnly}
         ORDER BY m.created_at, m.id LIMIT $4`,
        params,
      );
      const page = rows.slice(0, REPLAY_CAP);
      const last = page[page.length - 1];
      return {
        messageIds: page.map((r) => r.id),
        notPlanned: 0,
        resumeAfter: rows.length > REPLAY_CAP && last ? (iso(num(last.created_at)) as string) : null,
      };
    }
    let afterSeq: number;
    if (selection.kind === 'event-position') {
      // `seq + 0`: a plain MIN(seq) is planned as a walk of the feed in seq order until a row
      // qualifies, which for a recent position reads nearly all of it (4 s for 400k changes on
      // SQLite); this reads the rows from that position on, in the index on cause_position.
      const [first] = await sql.query<{ seq: number | string | null }>(
        sql.dialect === 'postgres'
          ? 'SELECT MIN(seq + 0) AS seq FROM readiness_changes WHERE cause_position COLLATE "C" >= $1'
          : 'SELECT MIN(seq + 0) AS seq FROM readiness_changes WHERE cause_position >= $1',
        [selection.fromPosition],
      );
      if (first?.seq === null || first?.seq === undefined)
        return { messageIds: [], notPlanned: 0, resumeAfter: null };
      afterSeq = num(first.seq) - 1;
    } else {
      afterSeq = selection.afterSeq;
    }
    // Re-plan the range for this subscription: the same message ids, looked up rather than inserted.
    // Changes from before the subscription match it too, so that they are counted as notPlanned
    // (never sent: they predate it) rather than passed over in silence.
    const filter = { ...parseFilter(row, this.ctx.missionScope), startsAfterSeq: -1 };
    const messageIds: string[] = [];
    let notPlanned = 0;
    let cursor = afterSeq;
    for (;;) {
      const changes = await readChangeFeed(sql, cursor, 500);
      if (changes.length === 0) return { messageIds, notPlanned, resumeAfter: null };
      const wanted = changes.filter((c) => matches(filter, c)).map((c) => messageId(row.id, c.changeId));
      const found = new Set<string>();
      if (wanted.length > 0) {
        const rows = await sql.query<{ id: string }>(
          `SELECT id FROM webhook_messages WHERE rejected_bytes IS NULL AND id IN (${placeholders(wanted.length)})`,
          wanted,
        );
        for (const r of rows) found.add(r.id);
      }
      for (const change of changes) {
        if (!matches(filter, change)) continue;
        const id = messageId(row.id, change.changeId);
        if (!found.has(id)) {
          notPlanned++;
          continue;
        }
        if (messageIds.length >= REPLAY_CAP) {
          return { messageIds, notPlanned, resumeAfter: String(cursor) };
        }
        messageIds.push(id);
        cursor = change.seq;
      }
      cursor = Math.max(cursor, (changes[changes.length - 1] as { seq: number }).seq);
    }
  }

  /** For each message: move its waiting delivery to now, or queue a manual one. */
  private async replayMessages(
    tx: SqlClient,
    subscriptionId: string,
    ids: readonly string[],
  ): Promise<{ created: number; moved: number; deliveryIds: string[] }> {
    if (ids.length === 0) return { created: 0, moved: 0, deliveryIds: [] };
    const now = this.ctx.clock.now();
    const messages = await tx.query<{ id: string; mission_id: string | null; version: number | null }>(
      `SELECT id, mission_id, version FROM webhook_messages WHERE subscription_id = $1 AND rejected_bytes IS NULL AND id IN (${placeholders(ids.length, 1)})`,
      [subscriptionId, ...ids],
    );
    const pending = await tx.query<{ id: string; message_id: string }>(
      `SELECT id, message_id FROM webhook_deliveries WHERE status = 'pending' AND message_id IN (${placeholders(ids.length)})`,
      [...ids],
    );
    const waiting = new Map(pending.map((p) => [p.message_id, p.id]));
    const deliveryIds: string[] = [];
    const rows: NewDelivery[] = [];
    let moved = 0;
    for (const message of messages) {
      const existing = waiting.get(message.id);
      if (existing) {
        await tx.execute(
          `UPDATE webhook_deliveries SET next_attempt_at = $1, updated_at = $1 WHERE id = $2 AND status = 'pending' AND next_attempt_at > $1`,
          [now, existing],
        );
        moved++;
        deliveryIds.push(existing);
        continue;
      }
      const id = timeId('dlv', now);
      deliveryIds.push(id);
      rows.push({
        id,
        messageId: message.id,
        subscriptionId,
        queue: message.mission_id ?? '',
        version: num(message.version ?? 0),
        trigger: 'manual',
        nextAttemptAt: now,
      });
    }
    await insertDeliveries(tx, rows, now);
    return { created: rows.length, moved, deliveryIds };
  }

  // ---- operational events ----

  /** `endpoint.disabled`, `message.attempt.exhausted`, `message.attempt.recovered`, `message.rejected`; oldest first. */
  async listOperationalEvents(agencyId: string, query: unknown = {}): Promise<Page<OperationalEvent>> {
    this.assertAgency(agencyId);
    await this.migrate();
    const { after, limit, rest } = parsePageQuery(query, 'op', ['subscriptionId']);
    const params: unknown[] = [agencyId, after ?? ''];
    let where = 'agency_id = $1 AND id > $2';
    if (rest.subscriptionId !== undefined) {
      if (typeof rest.subscriptionId !== 'string') {
        throw validationError([
          { path: 'subscriptionId', message: 'must be a subscription id', code: 'invalid_type', in: 'query' },
        ]);
      }
      await this.ownedRow(this.ctx.sql, agencyId, rest.subscriptionId);
      params.push(rest.subscriptionId);
      where += ` AND subscription_id = $${params.length}`;
    }
    params.push(limit + 1);
    const rows = await this.ctx.sql.query(
      `SELECT id, subscription_id, type, data, created_at FROM webhook_operational_events WHERE ${where} ORDER BY id LIMIT $${params.length}`,
      params,
    );
    const items = rows.slice(0, limit).map((row) => ({
      id: String(row.id),
      type: String(row.type) as OperationalEventType,
      subscriptionId: String(row.subscription_id),
      data: JSON.parse(String(row.data)) as Record<string, unknown>,
      createdAt: iso(num(row.created_at)) as string,
    }));
    return { items, next: rows.length > limit ? (items[items.length - 1]?.id ?? null) : null };
  }

  /** Deletes what is older than the retention period (finished deliveries, attempts, messages). */
  async purgeExpired(): Promise<{ messages: number; deliveries: number; attempts: number }> {
    await this.migrate();
    const cutoff = this.ctx.clock.now() - this.retentionMs;
    return this.ctx.sql.transaction(async (tx) => {
      const attempts = await tx.execute('DELETE FROM webhook_attempts WHERE started_at < $1', [cutoff]);
      const deliveries = await tx.execute(
        `DELETE FROM webhook_deliveries WHERE status <> 'pending' AND updated_at < $1`,
        [cutoff],
      );
      const messages = await tx.execute(
        `DELETE FROM webhook_messages WHERE created_at < $1
         AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.message_id = webhook_messages.id)`,
        [cutoff],
      );
      await tx.execute('DELETE FROM webhook_operational_events WHERE created_at < $1', [cutoff]);
      return { messages, deliveries, attempts };
    });
  }

  // ---- helpers ----

  private assertAgency(agencyId: string): void {
    if (typeof agencyId !== 'string' || agencyId === '') {
      throw new TypeError('an agency id is required to manage webhook subscriptions');
    }
  }

  private assertOpen(agencyId: string): void {
    this.assertAgency(agencyId);
    if (this.stopping) throw new WebhookError('webhook-service-stopped');
  }

  /** The subscription if this agency owns it; another agency's looks exactly like a missing one. */
  private async ownedRow(sql: SqlClient, agencyId: string, id: string): Promise<SubscriptionRow> {
    const [row] =
      typeof id === 'string' && id.length <= 100
        ? await sql.query<SubscriptionRow>(
            `SELECT ${SUBSCRIPTION_COLUMNS} FROM webhook_subscriptions WHERE id = $1 AND agency_id = $2`,
            [id, agencyId],
          )
        : [];
    if (!row)
      throw new WebhookError('webhook-not-found', `No webhook subscription ${String(id).slice(0, 100)}`);
    return row;
  }

  private async toSubscriptions(rows: SubscriptionRow[]): Promise<Subscription[]> {
    if (rows.length === 0) return [];
    const now = this.ctx.clock.now();
    const secrets = await this.ctx.sql.query<{
      subscription_id: string;
      created_at: number;
      expires_at: number | null;
    }>(
      `SELECT subscription_id, created_at, expires_at FROM webhook_secrets
       WHERE subscription_id IN (${placeholders(rows.length)}) AND (expires_at IS NULL OR expires_at > $${rows.length + 1})
       ORDER BY n DESC`,
      [...rows.map((r) => r.id), now],
    );
    return rows.map((row) => ({
      id: row.id,
      url: row.url,
      missions: JSON.parse(row.missions) as string[] | '*',
      eventTypes: JSON.parse(row.event_types) as ChangeKind[],
      description: row.description,
      status: row.status,
      disabledReason: row.disabled_reason ?? null,
      disabledAt: iso(numOrNull(row.disabled_at)),
      failingSince: iso(numOrNull(row.failing_since)),
      secrets: secrets
        .filter((s) => s.subscription_id === row.id)
        .map((s) => ({
          createdAt: iso(num(s.created_at)) as string,
          expiresAt: iso(numOrNull(s.expires_at)),
        })),
      createdAt: iso(num(row.created_at)) as string,
      updatedAt: iso(num(row.updated_at)) as string,
    }));
  }
}

export function createWebhookService(options: WebhookServiceOptions): WebhookService {
  return new WebhookService(options);
}
