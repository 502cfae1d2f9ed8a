import { createHash } from 'node:crypto';
import type { SqlClient } from '@muster/event-store';
import { chunks, placeholders, valuesList } from './context.js';

/**
 * Ordered queues. Deliveries of one (subscription, mission) form a queue; exactly one pending
 * delivery of a non-empty queue is its head (`head = 1`), and only heads can be claimed, so a
 * claim reads the due heads through a partial index instead of every pending row. A delivery
 * that leaves `pending` hands the head to the lowest (version, id) pending delivery of its queue.
 *
 * Inserting into a queue and handing over its head both look at the queue's other rows, so on
 * PostgreSQL they take a per-queue advisory lock (in one global order: no deadlocks between
 * transactions that lock several). SQLite runs one write transaction at a time anyway.
 */
export type QueueKey = readonly [subscriptionId: string, queue: string];

export interface NewDelivery {
  id: string;
  messageId: string;
  subscriptionId: string;
  queue: string;
  version: number;
  trigger: 'scheduled' | 'manual' | 'test';
  nextAttemptAt: number;
}

const keyText = ([sub, queue]: QueueKey) => `${sub}\u0000${queue}`;

function lockId(key: QueueKey): bigint {
  return createHash('sha256').update(keyText(key)).digest().readBigInt64BE(0);
}

export async function lockQueues(tx: SqlClient, keys: readonly QueueKey[]): Promise<void> {
  if (tx.dialect !== 'postgres' || keys.length === 0) return;
  const ids = [...new Set(keys.map(lockId))].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  await tx.query(
    'SELECT pg_advisory_xact_lock(k) FROM (SELECT k FROM unnest($1::bigint[]) AS k ORDER BY k) AS ordered',
    [ids.map(String)],
  );
}

function uniqueKeys(keys: Iterable<QueueKey>): QueueKey[] {
  const seen = new Map<string, QueueKey>();
  for (const key of keys) seen.set(keyText(key), key);
  return [...seen.values()];
}

/** Queues among `keys` that have a pending delivery now. */
async function busyQueues(tx: SqlClient, keys: readonly QueueKey[]): Promise<Set<string>> {
  const busy = new Set<string>();
  const subs = [...new Set(keys.map(([s]) => s))];
  const queues = [...new Set(keys.map(([, q]) => q))];
  for (const subPart of chunks(subs, 200)) {
    for (const queuePart of chunks(queues, 200)) {
      const rows = await tx.query<{ subscription_id: string; queue: string }>(
        `SELECT DISTINCT subscription_id, queue FROM webhook_deliveries
         WHERE status = 'pending' AND subscription_id IN (${placeholders(subPart.length)}) AND queue IN (${placeholders(queuePart.length, subPart.length)})`,
        [...subPart, ...queuePart],
      );
      for (const row of rows) busy.add(keyText([row.subscription_id, row.queue]));
    }
  }
  return busy;
}

/** Inserts pending deliveries; in a queue with nothing pending, the lowest new one becomes the head. */
export async function insertDeliveries(
  tx: SqlClient,
  rows: readonly NewDelivery[],
  now: number,
): Promise<void> {
  if (rows.length === 0) return;
  const keys = uniqueKeys(rows.map((r) => [r.subscriptionId, r.queue] as const));
  await lockQueues(tx, keys);
  const busy = await busyQueues(tx, keys);
  const firstOf = new Map<string, NewDelivery>();
  for (const row of rows) {
    const k = keyText([row.subscriptionId, row.queue]);
    if (busy.has(k)) continue;
    const current = firstOf.get(k);
    if (
      !current ||
      row.version < current.version ||
      (row.version === current.version && row.id < current.id)
    ) {
      firstOf.set(k, row);
    }
  }
  const heads = new Set([...firstOf.values()].map((r) => r.id));
  for (const part of chunks(rows, 200)) {
    await tx.execute(
      `INSERT INTO webhook_deliveries (id, message_id, subscription_id, queue, version, trigger, status, head, next_attempt_at, created_at, updated_at)
       VALUES ${valuesList(part.length, 11)}`,
      part.flatMap((r) => [
        r.id,
        r.messageId,
        r.subscriptionId,
        r.queue,
        r.version,
        r.trigger,
        'pending',
        heads.has(r.id) ? 1 : 0,
        r.nextAttemptAt,
        now,
        now,
      ]),
    );
  }
}

/** After heads left `pending`: gives each queue without a pending head its lowest pending delivery. */
export async function promoteHeads(tx: SqlClient, keys: readonly QueueKey[]): Promise<void> {
  for (const [sub, queue] of uniqueKeys(keys)) {
    await tx.execute(
      `UPDATE webhook_deliveries SET head = 1
       WHERE id = (SELECT id FROM webhook_deliveries WHERE subscription_id = $1 AND queue = $2 AND status = 'pending'
                   ORDER BY version, id LIMIT 1)
         AND NOT EXISTS (SELECT 1 FROM webhook_deliveries WHERE subscription_id = $1 AND queue = $2 AND status = 'pending' AND head = 1)`,
      [sub, queue],
    );
  }
}
