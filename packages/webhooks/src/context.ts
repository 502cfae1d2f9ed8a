import { hash, randomBytes } from 'node:crypto';
import type { SqlClient } from '@muster/event-store';
import type { SecretBox } from './signing.js';
import type { EgressPolicy } from './ssrf.js';

export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/** The shape of a pino logger that this package uses; pino itself is not a dependency. */
export interface WebhookLogger {
  info(obj: Record<string, unknown>, msg?: string): void;
  warn(obj: Record<string, unknown>, msg?: string): void;
  error(obj: Record<string, unknown>, msg?: string): void;
}

export const silentLogger: WebhookLogger = { info() {}, warn() {}, error() {} };

/** Everything the planner, the dispatcher and the subscription methods share, resolved once. */
export interface WebhookContext {
  sql: SqlClient;
  clock: Clock;
  logger: WebhookLogger;
  random: () => number;
  publicUrl: string;
  policy: EgressPolicy;
  secrets: SecretBox;
  retryScheduleMs: readonly number[];
  disableAfterMs: number;
  /** A failure streak with a gap longer than this between two failures starts again. */
  failureStreakGapMs: number;
  maxPayloadBytes: number;
  /** The missions an agency may read now (`*`: all); see WebhookServiceOptions. */
  missionScope: (agencyId: string) => '*' | readonly string[];
}

let lastIdTime = 0;
let idSequence = 0;
/** Tells ids of different processes apart; within a process the sequence does. */
const processTag = randomBytes(4).toString('hex');

/**
 * A time-ordered id with a type prefix, no `.` (Standard Webhooks ids): strictly increasing within
 * the process (a sequence breaks ties in one millisecond, and a clock that steps back does not
 * reorder), so listings and cursors follow creation order.
 */
export function timeId(prefix: string, now: number): string {
  if (now > lastIdTime) {
    lastIdTime = now;
    idSequence = 0;
  } else {
    idSequence++;
  }
  return `${prefix}_${lastIdTime.toString(36).padStart(9, '0')}${idSequence.toString(36).padStart(4, '0')}${processTag}`;
}

/**
 * The message id of a change for a subscription: the same on every planning of that change for
 * that subscription (after a crash, a replay, a rebuild of the feed with the same change ids), so
 * that the unique key turns a second planning into a no-op and receivers can deduplicate on it.
 */
export function messageId(subscriptionId: string, changeId: string): string {
  return `msg_${hash('sha256', `${subscriptionId}\n${changeId}`, 'hex').slice(0, 32)}`;
}

export const iso = (ms: number | null | undefined): string | null =>
  ms === null || ms === undefined ? null : new Date(Number(ms)).toISOString();

export const num = (value: unknown): number => Number(value);

export const numOrNull = (value: unknown): number | null =>
  value === null || value === undefined ? null : Number(value);

/** `VALUES ($1, $2), ($3, $4), ...` for `rows` rows of `width` parameters. */
export function valuesList(rows: number, width: number, offset = 0): string {
  const groups: string[] = [];
  for (let r = 0; r < rows; r++) {
    const params: string[] = [];
    for (let c = 1; c <= width; c++) params.push(`$${offset + r * width + c}`);
    groups.push(`(${params.join(', ')})`);
  }
  return groups.join(', ');
}

/**
 * `IN (...)` over `values` bound as one parameter `$n`, however many there are: a JSON array read by
 * `json_each` on SQLite, a text array on PostgreSQL. Every bound parameter costs (SQLite binds by
 * name, one lookup each), so lists of ids go in whole.
 */
export function inList(
  sql: SqlClient,
  n: number,
  values: readonly string[],
): { text: string; param: unknown } {
  return sql.dialect === 'sqlite'
    ? { text: `IN (SELECT value FROM json_each($${n}))`, param: JSON.stringify(values) }
    : { text: `= ANY($${n}::text[])`, param: values };
}

/** `$1, $2, ...` for an IN list. */
export function placeholders(count: number, offset = 0): string {
  return Array.from({ length: count }, (_, i) => `$${offset + i + 1}`).join(', ');
}

export function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
