import type { SqlClient } from '@muster/event-store';
import { type ReadinessChange, readChangeFeed } from '@muster/projections';
import { chunks, inList, messageId, num, timeId, valuesList, type WebhookContext } from './context.js';
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

/** A subscription's filter: the missions both its own list and its agency's rights now name. */
export function parseFilter(
  row: Record<string, unknown>,
  scopeOf: (agencyId: string) => '*' | readonly string[],
): SubscriptionFilter {
  const agencyId = String(row.agency_id);
  const own = JSON.parse(String(row.missions)) as string[] | '*';
  const scope = scopeOf(agencyId);
  let missions: ReadonlySet<string> | '*';
  if (own === '*') missions = scope === '*' ? '*' : new Set(scope);
  else missions = new Set(scope === '*' ? own : own.filter((m) => scope.includes(m)));
  return {
    id: String(row.id),
    agencyId,
    missions,
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
       * hands it the dispatcher's, so that a batch shares its commit with recorded outcomes and is
       * claimed in that same transaction (no wake-up needed).
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
          : await this.ctx.sql.transaction((tx) => this.planBatch(tx), { syncInBackground: true });
        // A batch that rode in the dispatcher's transaction was claimed in it already.
        if (result.planned > 0 && !commit) this.options.onPlanned();
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
    const subscriptions = (
      await tx.query(
        'SELECT id, agency_id, missions, event_types, starts_after_seq FROM webhook_subscriptions',
      )
    ).map((row) => parseFilter(row, this.ctx.missionScope));
    if (subscriptions.length === 0) return this.skipUnsubscribed(tx, checkpoint, now);
    const changes = await readChangeFeed(tx, checkpoint, this.options.batchSize);
    if (changes.length === 0) return { changes: 0, planned: 0, rejected: 0, checkpoint };
    const last = (changes[changes.length - 1] as ReadinessChange).seq;

    const candidates: Array<{ change: ReadinessChange; sub: SubscriptionFilter; id: string }> = [];
    for (const change of changes) {
      for (const sub of subscriptions) {
        if (matches(sub, change)) candidates.push({ change, sub, id: messageId(sub.id, change.changeId) });
      }
    }
    const planned = await planMessages(this.ctx, tx, candidates, now);
    await moveCheckpoint(tx, last, now);
    return {
      changes: changes.length,
      planned: planned.planned,
      rejected: planned.rejected,
      checkpoint: last,
    };
  }

  /**
   * With no subscription, no change is anyone's: the checkpoint moves to the end of the feed without
   * reading it (a subscription made later starts after the feed's end as it was then anyway).
   */
  private async skipUnsubscribed(tx: SqlClient, checkpoint: number, now: number): Promise<PlanResult> {
    const [row] = await tx.query<{ last: number | string | null }>(
      'SELECT MAX(seq) AS last FROM readiness_changes WHERE seq > $1',
      [checkpoint],
    );
    const last = row?.last === null || row?.last === undefined ? checkpoint : num(row.last);
    if (last === checkpoint) return { changes: 0, planned: 0, rejected: 0, checkpoint };
    await moveCheckpoint(tx, last, now);
    return { changes: last - checkpoint, planned: 0, rejected: 0, checkpoint: last };
  }
}

function moveCheckpoint(tx: SqlClient, lastSeq: number, now: number): Promise<number> {
  return tx.execute('UPDATE webhook_planner SET last_seq = $1, updated_at = $2 WHERE name = $3', [
    lastSeq,
    now,
    PLANNER_CHECKPOINT,
  ]);
}

/**
 * Inserts messages and scheduled deliveries for (change, subscription) pairs not planned before,
 * numbering them per (subscription, mission) in change order. Runs inside the caller's transaction,
 * the one that read `candidates` from the change feed: a message copies its change's columns from
 * the feed row in SQL rather than binding them once per subscription.
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
    1000,
  )) {
    const ids = inList(tx, 1, part);
    const rows = await tx.query<{ id: string }>(`SELECT id FROM webhook_messages WHERE id ${ids.text}`, [
      ids.param,
    ]);
    for (const row of rows) existing.add(row.id);
  }
  const fresh = existing.size === 0 ? candidates : candidates.filter((c) => !existing.has(c.id));
  if (fresh.length === 0) return { planned: 0, rejected: 0 };

  // One statement spends the versions of every queue: the counter moves by the number of new
  // messages and comes back, so the first new one is (returned - count + 1).
  const key = (sub: string, mission: string) => `${sub}\u0000${mission}`;
  const counters = new Map<string, { sub: string; mission: string; count: number; next: number }>();
  for (const { change, sub } of fresh) {
    const k = key(sub.id, change.missionId);
    const counter = counters.get(k);
    if (counter) counter.count++;
    else counters.set(k, { sub: sub.id, mission: change.missionId, count: 1, next: 0 });
  }
  for (const part of chunks([...counters.values()], 300)) {
    const rows = await tx.query<{ subscription_id: string; mission_id: string; last_version: number }>(
      `INSERT INTO webhook_versions (subscription_id, mission_id, last_version) VALUES ${valuesList(part.length, 3)}
       ON CONFLICT (subscription_id, mission_id) DO UPDATE SET last_version = webhook_versions.last_version + excluded.last_version
       RETURNING subscription_id, mission_id, last_version`,
      part.flatMap((c) => [c.sub, c.mission, c.count]),
    );
    for (const row of rows) {
      const counter = counters.get(key(row.subscription_id, row.mission_id)) as {
        count: number;
        next: number;
      };
      counter.next = num(row.last_version) - counter.count + 1;
    }
  }

  const messages: Array<[id: string, sub: string, version: number, body: string, seq: number]> = [];
  const oversized: Array<[id: string, sub: string, version: number, bytes: number, seq: number]> = [];
  const deliveries: NewDelivery[] = [];
  const rejections: Array<{ id: string; sub: SubscriptionFilter; data: Record<string, unknown> }> = [];
  const templates = new Map<string, (version: number) => string>();
  for (const { change, sub, id } of fresh) {
    const counter = counters.get(key(sub.id, change.missionId)) as { next: number };
    const version = counter.next++;
    let template = templates.get(change.changeId);
    if (!template) {
      template = changeBodyTemplate(change, ctx.publicUrl);
      templates.set(change.changeId, template);
    }
    const body = template(version);
    // Bytes only matter near the cap: a string of n UTF-16 units is at most 3n UTF-8 bytes.
    const bytes = body.length * 3 <= ctx.maxPayloadBytes ? 0 : Buffer.byteLength(body);
    if (bytes > ctx.maxPayloadBytes) {
      // Kept as a message without a body or a delivery, so that planning it again is a no-op;
      // its version is spent, so the receiver sees the gap and can fetch the current state.
      oversized.push([id, sub.id, version, bytes, change.seq]);
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
      continue;
    }
    messages.push([id, sub.id, version, body, change.seq]);
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

  const inserted = new Set<string>();
  const insert = async (rows: ReadonlyArray<readonly unknown[]>, body: string, rejectedBytes: string) => {
    for (const part of chunks(rows, 100)) {
      const result = await tx.query<{ id: string }>(
        `INSERT INTO webhook_messages (id, subscription_id, event_type, mission_id, version, change_id, change_seq, cause_position, body, rejected_bytes, exhausted_at, created_at)
         SELECT v.column1, v.column2, c.kind, c.mission_id, CAST(v.column3 AS BIGINT), c.change_id, c.seq, c.cause_position, ${body}, ${rejectedBytes}, NULL, CAST($1 AS BIGINT)
         FROM (VALUES ${valuesList(part.length, 5, 1)}) AS v JOIN readiness_changes c ON c.seq = CAST(v.column5 AS BIGINT)
         WHERE true
         ON CONFLICT (id) DO NOTHING RETURNING id`,
        [now, ...part.flat()],
      );
      for (const row of result) inserted.add(row.id);
    }
  };
  await insert(messages, 'v.column4', 'NULL');
  if (oversized.length > 0) await insert(oversized, "''", 'CAST(v.column4 AS BIGINT)');
  const toInsert =
    inserted.size === messages.length + oversized.length
      ? deliveries
      : deliveries.filter((d) => inserted.has(d.messageId));
  await insertDeliveries(tx, toInsert, now);
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
  return { planned: toInsert.length, rejected };
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
