import { hash } from 'node:crypto';
import type { SqlClient } from '@muster/event-store';
import { chunks, valuesList } from './context.js';

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
  return hash('sha256', keyText(key), 'buffer').readBigInt64BE(0);
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

/** `(VALUES ($o+1, $o+2), ...)` of queue keys, as `q.column1` (subscription) and `q.column2` (queue). */
function keyValues(keys: readonly QueueKey[], offset = 0): { text: string; params: string[] } {
  return { text: `(VALUES ${valuesList(keys.length, 2, offset)}) AS q`, params: keys.flat() };
}

/** Queues among `keys` that have a pending head now (by the invariant: that have anything pending). */
async function busyQueues(tx: SqlClient, keys: readonly QueueKey[]): Promise<Set<string>> {
  const busy = new Set<string>();
  for (const part of chunks(keys, 250)) {
    const values = keyValues(part);
    const rows = await tx.query<{ s: string; q: string }>(
      `SELECT q.column1 AS s, q.column2 AS q FROM ${values.text}
       WHERE EXISTS (SELECT 1 FROM webhook_deliveries h
                     WHERE h.subscription_id = q.column1 AND h.queue = q.column2 AND h.status = 'pending' AND h.head = 1)`,
      values.params,
    );
    for (const row of rows) busy.add(keyText([row.s, row.q]));
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
  const heads = new Set<string>();
  for (const r of firstOf.values()) heads.add(r.id);
  // Rows of one trigger and due time share those parameters (each bound parameter costs).
  const groups = new Map<string, NewDelivery[]>();
  for (const row of rows) {
    const k = `${row.trigger}@${row.nextAttemptAt}`;
    const group = groups.get(k);
    if (group) group.push(row);
    else groups.set(k, [row]);
  }
  for (const group of groups.values()) {
    const { trigger, nextAttemptAt } = group[0] as NewDelivery;
    for (const part of chunks(group, 100)) {
      const params: unknown[] = [now, trigger, nextAttemptAt];
      for (const r of part) {
        params.push(r.id, r.messageId, r.subscriptionId, r.queue, r.version, heads.has(r.id) ? 1 : 0);
      }
      await tx.execute(
        `INSERT INTO webhook_deliveries (id, message_id, subscription_id, queue, version, head, trigger, status, next_attempt_at, created_at, updated_at)
         SELECT v.column1, v.column2, v.column3, v.column4, CAST(v.column5 AS BIGINT), CAST(v.column6 AS INTEGER), $2, 'pending', CAST($3 AS BIGINT), CAST($1 AS BIGINT), CAST($1 AS BIGINT)
         FROM (VALUES ${valuesList(part.length, 6, 3)}) AS v`,
        params,
      );
    }
  }
}

/**
 * After heads left `pending`: gives each queue without a pending head its lowest pending
 * delivery, all queues in one statement. Resolves with the new heads' ids.
 */
export async function promoteHeads(tx: SqlClient, keys: readonly QueueKey[]): Promise<string[]> {
  const promoted: string[] = [];
  for (const part of chunks(uniqueKeys(keys), 250)) {
    const values = keyValues(part);
    const rows = await tx.query<{ id: string }>(
      `UPDATE webhook_deliveries SET head = 1
       WHERE id IN (
         SELECT (SELECT p.id FROM webhook_deliveries p
                 WHERE p.subscription_id = q.column1 AND p.queue = q.column2 AND p.status = 'pending' AND p.head = 0
                 ORDER BY p.version, p.id LIMIT 1)
         FROM ${values.text}
         WHERE NOT EXISTS (SELECT 1 FROM webhook_deliveries h
                           WHERE h.subscription_id = q.column1 AND h.queue = q.column2 AND h.status = 'pending' AND h.head = 1))
       RETURNING id`,
      values.params,
    );
    for (const row of rows) promoted.push(row.id);
  }
  return promoted;
}
