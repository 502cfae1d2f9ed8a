import {
  type AppendResult,
  assertIdempotentReplay,
  canonicalJson,
  checkExpectedRevision,
  EventIdConflictError,
  type ExpectedRevision,
  hashInputParts,
  type PreparedAppend,
  type RecordedEvent,
} from '@muster/event-store';
import { BrokenChainError } from './errors.js';
import { formatPosition } from './positions.js';

/** One call of the batch append function: pass it to pg as a (named, hence prepared) query. */
export interface AppendCall {
  name: string;
  text: string;
  values: unknown[];
}

export interface AppendRow {
  /** 1-based index of the append in the batch. */
  o_append: number;
  o_outcome: 'written' | 'replay' | 'wrong-expected-revision' | 'broken-chain' | 'id-conflict';
  o_current: number | null;
  o_id: string | null;
  o_stream: string | null;
  o_revision: number | null;
  o_transaction_id: string | null;
  o_position: string | null;
  o_type: string | null;
  o_data: string | null;
  o_metadata: string | null;
  o_recorded_at: string | null;
  o_hash: string | null;
  o_previous_hash: string | null;
}

const APPEND_BATCH_SQL =
  'SELECT * FROM muster_append_batch($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)';

function encodeExpected(expected: ExpectedRevision): number {
  switch (expected) {
    case 'any':
      return -1;
    case 'no_stream':
      return -2;
    case 'stream_exists':
      return -3;
    default:
      return expected;
  }
}

export interface SealedBatch {
  call: AppendCall;
  recordedAt: string;
  /** Per append, the canonical metadata of each event (with `occurredAt` filled in). */
  metadataJson: string[][];
}

/**
 * Everything but revisions and previous hashes is settled here, as `sealEvents` would:
 * `occurredAt` defaults to `recordedAt` (one instant for the whole batch, which commits at once),
 * metadata is canonical JSON, and the hash input is split around the two values only the database
 * knows inside its transaction.
 */
export function buildBatchCall(
  appends: readonly PreparedAppend[],
  recordedAt: string,
  /** Per append, the id of the event it was issued behind (see `muster_append_batch`), or null. */
  afterIds: readonly (string | null)[] = [],
): SealedBatch {
  const streams: string[] = [];
  const slots = new Map<string, number>();
  const streamOf: number[] = [];
  const expected: number[] = [];
  const counts: number[] = [];
  const ids: string[] = [];
  const types: string[] = [];
  const data: string[] = [];
  const metadata: string[] = [];
  const heads: string[] = [];
  const middles: string[] = [];
  const tails: string[] = [];
  const metadataJson: string[][] = [];
  const after = appends.map((_, i) => afterIds[i] ?? null);
  for (const append of appends) {
    let slot = slots.get(append.stream);
    if (slot === undefined) {
      streams.push(append.stream);
      slot = streams.length;
      slots.set(append.stream, slot);
    }
    streamOf.push(slot);
    expected.push(encodeExpected(append.expectedRevision));
    counts.push(append.events.length);
    const own: string[] = [];
    for (const event of append.events) {
      const meta =
        event.metadata.occurredAt === undefined
          ? { ...event.metadata, occurredAt: recordedAt }
          : event.metadata;
      const json = canonicalJson(meta);
      const parts = hashInputParts(event.id, append.stream, event.type, event.dataJson, json, recordedAt);
      ids.push(event.id);
      types.push(event.type);
      data.push(event.dataJson);
      metadata.push(json);
      heads.push(parts.head);
      middles.push(parts.middle);
      tails.push(parts.tail);
      own.push(json);
    }
    metadataJson.push(own);
  }
  return {
    call: {
      name: 'muster_append_batch',
      text: APPEND_BATCH_SQL,
      values: [
        streams,
        streamOf,
        expected,
        after,
        counts,
        ids,
        types,
        data,
        metadata,
        recordedAt,
        heads,
        middles,
        tails,
      ],
    },
    recordedAt,
    metadataJson,
  };
}

/** The function's rows, one group per append of the batch, in order. */
export function splitRows(count: number, rows: readonly AppendRow[]): AppendRow[][] {
  const groups: AppendRow[][] = Array.from({ length: count }, () => []);
  for (const row of rows) {
    const group = groups[row.o_append - 1];
    if (!group) throw new Error(`muster_append_batch answered for append ${row.o_append} of ${count}`);
    group.push(row);
  }
  return groups;
}

/** Turns the function's answer for one append into the port's result, or throws its typed error. */
export function interpretAppend(
  prepared: PreparedAppend,
  metadataJson: readonly string[],
  recordedAt: string,
  rows: readonly AppendRow[],
): AppendResult {
  const { stream, expectedRevision } = prepared;
  const first = rows[0];
  if (!first) throw new Error('muster_append_batch returned no rows for an append');
  const current = first.o_current;
  switch (first.o_outcome) {
    case 'wrong-expected-revision':
      checkExpectedRevision(stream, expectedRevision, current);
      throw new Error(`muster_append_batch reported a revision mismatch the port does not see`);
    case 'broken-chain':
      throw new BrokenChainError(stream, expectedRevision, current ?? 'no_stream');
    case 'id-conflict':
      throw new EventIdConflictError(
        first.o_id ?? prepared.events[0]?.id ?? '',
        'by another append (this one is not its replay)',
      );
    case 'replay': {
      assertIdempotentReplay(
        stream,
        expectedRevision,
        prepared.events.map((e) => e.id),
        {
          stream: first.o_stream as string,
          revision: first.o_revision as number,
          ids: rows.map((r) => r.o_id as string),
        },
        current,
      );
      const events = rows.map(replayedEvent);
      const last = events[events.length - 1] as RecordedEvent;
      return { nextExpectedRevision: last.revision, position: last.position, events, idempotent: true };
    }
    case 'written': {
      if (rows.length !== prepared.events.length) {
        throw new Error('muster_append_batch wrote a different number of events than given');
      }
      const events = rows.map((row, i): RecordedEvent => {
        const event = prepared.events[i] as PreparedAppend['events'][number];
        return {
          id: event.id,
          stream,
          revision: row.o_revision as number,
          position: formatPosition(row.o_transaction_id as string, row.o_position as string),
          type: event.type,
          data: JSON.parse(event.dataJson),
          metadata: JSON.parse(metadataJson[i] as string),
          recordedAt,
          hash: row.o_hash as string,
          previousHash: row.o_previous_hash,
        };
      });
      const last = events[events.length - 1] as RecordedEvent;
      return { nextExpectedRevision: last.revision, position: last.position, events, idempotent: false };
    }
    default:
      throw new Error(`muster_append_batch returned an unknown outcome '${String(first.o_outcome)}'`);
  }
}

function replayedEvent(row: AppendRow): RecordedEvent {
  return {
    id: row.o_id as string,
    stream: row.o_stream as string,
    revision: row.o_revision as number,
    position: formatPosition(row.o_transaction_id as string, row.o_position as string),
    type: row.o_type as string,
    data: JSON.parse(row.o_data as string),
    metadata: JSON.parse(row.o_metadata as string),
    recordedAt: row.o_recorded_at as string,
    hash: row.o_hash as string,
    previousHash: row.o_previous_hash,
  };
}
