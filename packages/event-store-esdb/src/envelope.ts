import type {
  AllStreamRecordedEvent,
  EventData as EsdbEventData,
  RecordedEvent as EsdbRecorded,
} from '@eventstore/db-client';
import {
  canonicalJson,
  type EventMetadata,
  type PreparedEvent,
  type RecordedEvent,
  type SealedEvent,
} from '@muster/event-store';
import { toRevisionNumber } from './expected-revision.js';
import { encodePosition } from './positions.js';

/**
 * How a Muster event sits in EventStoreDB. Data is the event's JSON as is. The ESDB metadata holds
 * the caller's metadata and the hash chain under one private key, so that no caller key can collide
 * with ours; `$correlationId` / `$causationId` are copied out because EventStoreDB's own
 * projections (`$by_correlation_id`) read them there.
 *
 *   { "$muster": { "v": 1, "hash", "previousHash", "recordedAt", "metadata": { ...caller } },
 *     "$correlationId"?: string, "$causationId"?: string }
 */
export const ENVELOPE_KEY = '$muster';
export const ENVELOPE_VERSION = 1;

export interface Envelope {
  hash: string;
  previousHash: string | null;
  recordedAt: string;
  metadata: EventMetadata & { occurredAt: string };
}

const HASH = /^[0-9a-f]{64}$/;

export function packMetadata(
  event: Pick<SealedEvent, 'hash' | 'previousHash' | 'recordedAt' | 'metadataJson'>,
): string {
  const metadata = JSON.parse(event.metadataJson) as Record<string, unknown>;
  const outer: Record<string, unknown> = {
    [ENVELOPE_KEY]: {
      v: ENVELOPE_VERSION,
      hash: event.hash,
      previousHash: event.previousHash,
      recordedAt: event.recordedAt,
      metadata,
    },
  };
  if (typeof metadata.correlationId === 'string') outer.$correlationId = metadata.correlationId;
  if (typeof metadata.causationId === 'string') outer.$causationId = metadata.causationId;
  return canonicalJson(outer);
}

/** The envelope of an event's ESDB metadata (as the client parsed it), or null when it has none. */
export function unpackMetadata(raw: unknown): Envelope | null {
  if (!isPlainObject(raw)) return null;
  const inner = raw[ENVELOPE_KEY];
  if (!isPlainObject(inner) || inner.v !== ENVELOPE_VERSION) return null;
  const { hash, previousHash, recordedAt, metadata } = inner;
  if (typeof hash !== 'string' || !HASH.test(hash)) return null;
  if (previousHash !== null && (typeof previousHash !== 'string' || !HASH.test(previousHash))) return null;
  if (typeof recordedAt !== 'string') return null;
  if (!isPlainObject(metadata) || typeof metadata.occurredAt !== 'string') return null;
  return {
    hash,
    previousHash,
    recordedAt,
    metadata: metadata as EventMetadata & { occurredAt: string },
  };
}

const encoder = new TextEncoder();

/**
 * The client JSON-encodes `data` itself; metadata goes as bytes (it must be a plain Uint8Array,
 * not a Buffer, for the client to send it untouched).
 */
export function toEsdbEventData(event: SealedEvent): EsdbEventData {
  return {
    id: event.id,
    contentType: 'application/json',
    type: event.type,
    data: JSON.parse(event.dataJson),
    metadata: encoder.encode(packMetadata(event)),
  } as EsdbEventData;
}

/** What ESDB counts against its MaxAppendSize, or a little more. */
export function approximateAppendBytes(events: readonly PreparedEvent[]): number[] {
  // A sealed envelope: two 64-hex hashes, recordedAt, and occurredAt when the caller gave none.
  const placeholder = {
    hash: 'f'.repeat(64),
    previousHash: 'f'.repeat(64),
    recordedAt: '0000-00-00T00:00:00.000Z',
  };
  return events.map((event) => {
    const metadata =
      event.metadata.occurredAt === undefined
        ? { ...event.metadata, occurredAt: placeholder.recordedAt }
        : event.metadata;
    const metadataJson = packMetadata({ ...placeholder, metadataJson: canonicalJson(metadata) });
    return (
      Buffer.byteLength(event.dataJson) + Buffer.byteLength(metadataJson) + Buffer.byteLength(event.type)
    );
  });
}

export function isSystemEvent(stream: string, type: string): boolean {
  return stream.startsWith('$') || type.startsWith('$');
}

/**
 * Rebuilds the port's event from what the client returned; null for an event Muster did not
 * write (no envelope, or not JSON).
 */
export function toRecordedEvent(event: EsdbRecorded | AllStreamRecordedEvent): RecordedEvent | null {
  if (!event.isJson) return null;
  const envelope = unpackMetadata(event.metadata);
  if (!envelope) return null;
  if (!event.position) {
    throw new Error(
      'EventStoreDB returned an event without its $all position: the adapter needs EventStoreDB 22.6 or later',
    );
  }
  return {
    id: event.id.toLowerCase(),
    stream: event.streamId,
    revision: toRevisionNumber(event.revision),
    position: encodePosition(event.position),
    type: event.type,
    data: event.data,
    metadata: envelope.metadata,
    recordedAt: envelope.recordedAt,
    hash: envelope.hash,
    previousHash: envelope.previousHash,
  };
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}
