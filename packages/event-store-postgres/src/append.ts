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
import { formatPosition } from './positions.js';

/** One call of the append function: pass it to pg as a (named, hence prepared) query. */
export interface AppendCall {
  name: string;
  text: string;
  values: unknown[];
}

export interface AppendRow {
  o_outcome: 'written' | 'replay' | 'wrong-expected-revision';
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

const APPEND_SQL = 'SELECT * FROM muster_append_events($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)';

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

interface Sealed {
  call: AppendCall;
  metadataJson: string[];
}

/**
 * Everything but the revision and the previous hash is settled here, as `sealEvents` would:
 * `occurredAt` defaults to `recordedAt`, metadata is canonical JSON, and the hash input is split
 * around the two values only the database knows inside its transaction.
 */
export function buildAppendCall(prepared: PreparedAppend, recordedAt: string): Sealed {
  const ids: string[] = [];
  const types: string[] = [];
  const data: string[] = [];
  const metadata: string[] = [];
  const heads: string[] = [];
  const middles: string[] = [];
  const tails: string[] = [];
  for (const event of prepared.events) {
    const meta =
      event.metadata.occurredAt === undefined
        ? { ...event.metadata, occurredAt: recordedAt }
        : event.metadata;
    const metadataJson = canonicalJson(meta);
    const parts = hashInputParts(
      event.id,
      prepared.stream,
      event.type,
      event.dataJson,
      metadataJson,
      recordedAt,
    );
    ids.push(event.id);
    types.push(event.type);
    data.push(event.dataJson);
    metadata.push(metadataJson);
    heads.push(parts.head);
    middles.push(parts.middle);
    tails.push(parts.tail);
  }
  return {
    call: {
      name: 'muster_append_events',
      text: APPEND_SQL,
      values: [
        prepared.stream,
        encodeExpected(prepared.expectedRevision),
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
    metadataJson: metadata,
  };
}

/** Turns the function's answer into the port's result or typed error. */
export function interpretAppend(
  prepared: PreparedAppend,
  sealed: Sealed,
  recordedAt: string,
  rows: readonly AppendRow[],
): AppendResult {
  const { stream, expectedRevision } = prepared;
  const first = rows[0];
  if (!first) throw new Error('muster_append_events returned no rows');
  const current = first.o_current;
  switch (first.o_outcome) {
    case 'wrong-expected-revision':
      checkExpectedRevision(stream, expectedRevision, current);
      throw new Error(`muster_append_events reported a revision mismatch the port does not see`);
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
      const events = rows.map((row, i): RecordedEvent => {
        const event = prepared.events[i];
        if (!event) throw new Error('muster_append_events returned more rows than events');
        return {
          id: event.id,
          stream,
          revision: row.o_revision as number,
          position: formatPosition(row.o_transaction_id as string, row.o_position as string),
          type: event.type,
          data: JSON.parse(event.dataJson),
          metadata: JSON.parse(sealed.metadataJson[i] as string),
          recordedAt,
          hash: row.o_hash as string,
          previousHash: row.o_previous_hash,
        };
      });
      const last = events[events.length - 1] as RecordedEvent;
      return { nextExpectedRevision: last.revision, position: last.position, events, idempotent: false };
    }
    default:
      throw new Error(`muster_append_events returned an unknown outcome '${String(first.o_outcome)}'`);
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

/** A unique violation on the event id: the id was taken by a concurrent append elsewhere. */
export function mapAppendError(error: unknown, prepared: PreparedAppend): unknown {
  const e = error as { code?: unknown; constraint?: unknown; detail?: unknown };
  if (e?.code === '23505' && e.constraint === 'muster_events_id_key') {
    const match = typeof e.detail === 'string' ? /\(id\)=\(([0-9a-f-]{36})\)/i.exec(e.detail) : null;
    const id = match?.[1] ?? prepared.events[0]?.id ?? '';
    return new EventIdConflictError(id, 'elsewhere in the log');
  }
  return error;
}
