import type { SqlClient } from '@muster/event-store';
import { type ReadinessChange, readChangeFeed } from '@muster/projections';
import { chunks, messageId, num, placeholders, timeId, valuesList, type WebhookContext } from './context.js';
import { changeBodyTemplate } from './payload.js';
import { insertDeliveries, type NewDelivery } from './queues.js';
import { PLANNER_CHECKPOINT } from './schema.js';

export interface SubscriptionFilter {
  id: string;
  agencyId: string;
  missions: ReadonlySet<string> | '*';
  eventTypes: ReadonlySet<string>;
  startsAfterSeq: number;
}

export function parseFilter(row: Record<string, unknown>): SubscriptionFilter {
  const missions = JSON.parse(String(row.missions)) as string[] | '*';
  return {
    id: String(row.id),
    agencyId: String(row.agency_id),
    missions: missions === '*' ? '*' : new Set(missions),
    eventTypes: new Set(JSON.parse(String(row.event_types)) as string[]),
    startsAfterSeq: num(row.starts_after_seq),
  };
}

export function matches(filter: SubscriptionFilter, change: ReadinessChange): boolean {
  return (
    change.seq > filter.startsAfterSeq &&
    filter.eventTypes.has(change.kind) &&
    (filter.missions === '*' || filter.missions.has(change.missionId))
  );
}

export interface PlanResult {
  /** Changes read from the feed (and consumed: the checkpoint moved past them). */
  changes: number;
  /** Deliveries created. */
  planned: number;
  /** Messages over the size cap, recorded as `message.rejected`. */
  rejected: number;
  checkpoint: number;
}

const MESSAGE_COLUMNS = 12;

/**
 * The checkpointed consumer of the readiness change feed. One batch is one transaction: it locks
 * the checkpoint row (so two planners on PostgreSQL take turns, and the second sees the first's
 * checkpoint), reads the changes after it, inserts one message and one delivery per matching
 * subscription with the next version of that (subscription, mission), and moves the checkpoint.
 * A crash before the commit leaves nothing; after it, nothing to redo. A message id that exists
 * already (the same change planned again) is skipped before a version is spent on it, and the
 * unique key with ON CONFLICT DO NOTHING backs that up.
 */
export class Planner {
  private running = false;
  private loop: Promise<void> | null = null;
  private wakeUp: (() => void) | null = null;
  private wakeRequested = false;

  constructor(
    private readonly ctx: WebhookContext,
    private readonly options: {
      batchSize: number;
      pollIntervalMs: number;
      /** Called after a batch that planned deliveries committed. */
      onPlanned: () => void;
      /**
       * How the running planner commits a batch: by default a transaction of its own; the service
       * hands it the dispatcher's, so that a batch shares its commit with recorded outcomes.
       */
      commit?: <T>(work: (tx: SqlClient) => Promise<T>) => Promise<T>;
    },
  ) {}

  /** Plans one batch; resolves with what it did. */
  async runOnce(): Promise<PlanResult> {
    const result = await this.ctx.sql.transaction((tx) => this.planBatch(tx));
    if (result.planned > 0) this.options.onPlanned();
    return result;
  }

  /** Plans until the feed is exhausted. */
  async catchUp(): Promise<PlanResult> {
    const total: PlanResult = { changes: 0, planned: 0, rejected: 0, checkpoint: 0 };
    for (;;) {
      const result = await this.runOnce();
      total.changes += result.changes;
      total.planned += result.planned;
      total.rejected += result.rejected;
      total.checkpoint = result.checkpoint;
      if (result.changes < this.options.batchSize) return total;
    }
  }

  /** In-process wake-up (the projection committed changes); polling covers the rest. */
  wake(): void {
    this.wakeRequested = true;
    this.wakeUp?.();
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.wakeUp?.();
    await this.loop;
    this.loop = null;
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (this.running) {
      this.wakeRequested = false;
      let busy = false;
      try {
        const commit = this.options.commit;
        const result = commit
          ? await commit((tx) => this.planBatch(tx))
          : await this.ctx.sql.transaction((tx) => this.planBatch(tx));
        if (result.planned > 0) this.options.onPlanned();
        busy = result.changes >= this.options.batchSize;
        failures = 0;
      } catch (error) {
        failures++;
        this.ctx.logger.error({ err: error, failures }, 'webhook planner: batch failed; will retry');
      }
      if (!this.running) break;
      if (busy) continue;
      if (this.wakeRequested) {
        // Changes committed in the same turn of the event loop are planned together.
        await new Promise<void>((resolve) => setImmediate(resolve));
        continue;
      }
      const delay =
        failures > 0
          ? Math.min(30_000, this.options.pollIntervalMs * 2 ** failures)
          : this.options.pollIntervalMs;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delay);
        this.wakeUp = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wakeUp = null;
    }
  }

  private async planBatch(tx: SqlClient): Promise<PlanResult> {
    const now = this.ctx.clock.now();
    const [checkpointRow] = await tx.query<{ last_seq: number | string }>(
      tx.dialect === 'postgres'
        ? 'SELECT last_seq FROM webhook_planner WHERE name = $1 FOR UPDATE'
        : 'SELECT last_seq FROM webhook_planner WHERE name = $1',
      [PLANNER_CHECKPOINT],
    );
    const checkpoint = num(checkpointRow?.last_seq ?? 0);
    const changes = await readChangeFeed(tx, checkpoint, this.options.batchSize);
    if (changes.length === 0) return { changes: 0, planned: 0, rejected: 0, checkpoint };
    const last = (changes[changes.length - 1] as ReadinessChange).seq;

    const subscriptions = (
      await tx.query(
        'SELECT id, agency_id, missions, event_types, starts_after_seq FROM webhook_subscriptions',
      )
    ).map(parseFilter);

    const candidates: Array<{ change: ReadinessChange; sub: SubscriptionFilter; id: string }> = [];
    for (const change of changes) {
      for (const sub of subscriptions) {
        if (matches(sub, change)) candidates.push({ change, sub, id: messageId(sub.id, change.changeId) });
      }
    }
    const planned = await planMessages(this.ctx, tx, candidates, now);
    await tx.execute('UPDATE webhook_planner SET last_seq = $1, updated_at = $2 WHERE name = $3', [
      last,
      now,
      PLANNER_CHECKPOINT,
    ]);
    return {
      changes: changes.length,
      planned: planned.planned,
      rejected: planned.rejected,
      checkpoint: last,
    };
  }
}

/**
 * Inserts messages and scheduled deliveries for (change, subscription) pairs not planned before,
 * numbering them per (subscription, mission) in change order. Runs inside the caller's transaction.
 */
export async function planMessages(
  ctx: WebhookContext,
  tx: SqlClient,
  candidates: ReadonlyArray<{ change: ReadinessChange; sub: SubscriptionFilter; id: string }>,
  now: number,
): Promise<{ planned: number; rejected: number }> {
  if (candidates.length === 0) return { planned: 0, rejected: 0 };
  const existing = new Set<string>();
  for (const part of chunks(
    candidates.map((c) => c.id),
    500,
  )) {
    const rows = await tx.query<{ id: string }>(
      `SELECT id FROM webhook_messages WHERE id IN (${placeholders(part.length)})`,
      part,
    );
    for (const row of rows) existing.add(row.id);
  }
  const fresh = candidates.filter((c) => !existing.has(c.id));
  if (fresh.length === 0) return { planned: 0, rejected: 0 };

  const versions = new Map<string, number>();
  const key = (sub: string, mission: string) => `${sub}\u0000${mission}`;
  const subIds = [...new Set(fresh.map((c) => c.sub.id))];
  const missionIds = [...new Set(fresh.map((c) => c.change.missionId))];
  for (const subPart of chunks(subIds, 200)) {
    for (const missionPart of chunks(missionIds, 200)) {
      const rows = await tx.query<{ subscription_id: string; mission_id: string; last_version: number }>(
        `SELECT subscription_id, mission_id, last_version FROM webhook_versions WHERE subscription_id IN (${placeholders(subPart.length)}) AND mission_id IN (${placeholders(missionPart.length, subPart.length)})`,
        [...subPart, ...missionPart],
      );
      for (const row of rows) versions.set(key(row.subscription_id, row.mission_id), num(row.last_version));
    }
  }

  const messages: unknown[][] = [];
  const deliveries: NewDelivery[] = [];
  const rejections: Array<{ id: string; sub: SubscriptionFilter; data: Record<string, unknown> }> = [];
  const touched = new Set<string>();
  const templates = new Map<string, (version: number) => string>();
  for (const { change, sub, id } of fresh) {
    const k = key(sub.id, change.missionId);
    const version = (versions.get(k) ?? 0) + 1;
    versions.set(k, version);
    touched.add(k);
    let template = templates.get(change.changeId);
    if (!template) {
      template = changeBodyTemplate(change, ctx.publicUrl);
      templates.set(change.changeId, template);
    }
    const body = template(version);
    const bytes = Buffer.byteLength(body);
    const rejected = bytes > ctx.maxPayloadBytes;
    if (rejected) {
      // Kept as a message without a body or a delivery, so that planning it again is a no-op;
      // its version is spent, so the receiver sees the gap and can fetch the current state.
      rejections.push({
        id,
        sub,
        data: {
          messageId: id,
          changeId: change.changeId,
          missionId: change.missionId,
          eventType: change.kind,
          version,
          bytes,
          limit: ctx.maxPayloadBytes,
        },
      });
    }
    messages.push([
      id,
      sub.id,
      change.kind,
      change.missionId,
      version,
      change.changeId,
      change.seq,
      change.causePosition,
      rejected ? '' : body,
      rejected ? bytes : null,
      null,
      now,
    ]);
    if (rejected) continue;
    deliveries.push({
      id: timeId('dlv', now),
      messageId: id,
      subscriptionId: sub.id,
      queue: change.missionId,
      version,
      trigger: 'scheduled',
      nextAttemptAt: now,
    });
  }

  let planned = 0;
  const inserted = new Set<string>();
  for (const part of chunks(messages, 200)) {
    const rows = await tx.query<{ id: string }>(
      `INSERT INTO webhook_messages (id, subscription_id, event_type, mission_id, version, change_id, change_seq, cause_position, body, rejected_bytes, exhausted_at, created_at) VALUES ${valuesList(part.length, MESSAGE_COLUMNS)} ON CONFLICT (id) DO NOTHING RETURNING id`,
      part.flat(),
    );
    for (const row of rows) inserted.add(row.id);
  }
  const toInsert = deliveries.filter((d) => inserted.has(d.messageId));
  await insertDeliveries(tx, toInsert, now);
  planned += toInsert.length;
  const counters = [...touched].map((k) => {
    const [sub, mission] = k.split('\u0000') as [string, string];
    return [sub, mission, versions.get(k) as number];
  });
  for (const part of chunks(counters, 300)) {
    await tx.execute(
      `INSERT INTO webhook_versions (subscription_id, mission_id, last_version) VALUES ${valuesList(part.length, 3)} ON CONFLICT (subscription_id, mission_id) DO UPDATE SET last_version = excluded.last_version`,
      part.flat(),
    );
  }
  let rejected = 0;
  for (const rejection of rejections) {
    if (!inserted.has(rejection.id)) continue;
    rejected++;
    await recordOperationalEvent(tx, now, rejection.sub.agencyId, rejection.sub.id, 'message.rejected', {
      reason: 'payload-too-large',
      ...rejection.data,
    });
    ctx.logger.warn(
      { subscriptionId: rejection.sub.id, ...rejection.data },
      'webhook message rejected: payload larger than the limit',
    );
  }
  return { planned, rejected };
}

export async function recordOperationalEvent(
  tx: SqlClient,
  now: number,
  agencyId: string,
  subscriptionId: string,
  type: string,
  data: Record<string, unknown>,
): Promise<void> {
  await tx.execute(
    'INSERT INTO webhook_operational_events (id, agency_id, subscription_id, type, data, created_at) VALUES ($1, $2, $3, $4, $5, $6)',
    [timeId('op', now), agencyId, subscriptionId, type, JSON.stringify(data), now],
  );
}
