import { hash as cryptoHash } from 'node:crypto';
import { canonicalJson } from './canonical-json.js';
import type { RecordedEvent } from './types.js';
import type { PreparedEvent } from './validation.js';

/**
 * The per-stream hash chain. Each event's hash is SHA-256 over the canonical JSON of
 * `{ v, id, stream, revision, type, data, metadata, recordedAt, previousHash }`, so changing any
 * byte of the content, the order or the time it was recorded breaks the chain from there on.
 * Positions are left out: each store assigns its own, and every store must hold the same chain.
 */
export const HASH_CHAIN_VERSION = 1;

/** What an adapter stores for one event, before the store assigns a position. */
export interface SealedEvent {
  id: string;
  stream: string;
  revision: number;
  type: string;
  dataJson: string;
  metadataJson: string;
  recordedAt: string;
  hash: string;
  previousHash: string | null;
}

export interface SealInput {
  stream: string;
  /** Revision of the first event of the batch. */
  startRevision: number;
  /** Hash of the stream's event at startRevision - 1, or null for a new stream. */
  previousHash: string | null;
  recordedAt: string;
  events: readonly PreparedEvent[];
}

export function sealEvents(input: SealInput): SealedEvent[] {
  let previous = input.previousHash;
  return input.events.map((event, i) => {
    const metadata =
      event.metadata.occurredAt === undefined
        ? { ...event.metadata, occurredAt: input.recordedAt }
        : event.metadata;
    const metadataJson = canonicalJson(metadata);
    const revision = input.startRevision + i;
    const hash = hashParts(
      event.id,
      input.stream,
      revision,
      event.type,
      event.dataJson,
      metadataJson,
      input.recordedAt,
      previous,
    );
    const sealed: SealedEvent = {
      id: event.id,
      stream: input.stream,
      revision,
      type: event.type,
      dataJson: event.dataJson,
      metadataJson,
      recordedAt: input.recordedAt,
      hash,
      previousHash: previous,
    };
    previous = hash;
    return sealed;
  });
}

/** Recomputes an event's hash from its content (the stored `hash` is not trusted). */
export function computeEventHash(
  event: Pick<
    RecordedEvent,
    'id' | 'stream' | 'revision' | 'type' | 'data' | 'metadata' | 'recordedAt' | 'previousHash'
  >,
): string {
  return hashParts(
    event.id,
    event.stream,
    event.revision,
    event.type,
    canonicalJson(event.data),
    canonicalJson(event.metadata),
    event.recordedAt,
    event.previousHash,
  );
}

/** The exact string that is hashed; equal to canonicalJson of the envelope object. */
export function hashInput(
  id: string,
  stream: string,
  revision: number,
  type: string,
  dataJson: string,
  metadataJson: string,
  recordedAt: string,
  previousHash: string | null,
): string {
  // Keys in sorted order: data, id, metadata, previousHash, recordedAt, revision, stream, type, v.
  return (
    `{"data":${dataJson},"id":${JSON.stringify(id)},"metadata":${metadataJson},` +
    `"previousHash":${previousHash === null ? 'null' : JSON.stringify(previousHash)},` +
    `"recordedAt":${JSON.stringify(recordedAt)},"revision":${revision},"stream":${JSON.stringify(stream)},` +
    `"type":${JSON.stringify(type)},"v":${HASH_CHAIN_VERSION}}`
  );
}

/**
 * hashInput split around the two values a database may assign inside its own transaction (the
 * previous hash and the revision): `head + prevJson + middle + revision + tail`, where prevJson
 * is `null` or the quoted hex hash. Lets a SQL function compute the same chain in one round trip.
 */
export function hashInputParts(
  id: string,
  stream: string,
  type: string,
  dataJson: string,
  metadataJson: string,
  recordedAt: string,
): { head: string; middle: string; tail: string } {
  return {
    head: `{"data":${dataJson},"id":${JSON.stringify(id)},"metadata":${metadataJson},"previousHash":`,
    middle: `,"recordedAt":${JSON.stringify(recordedAt)},"revision":`,
    tail: `,"stream":${JSON.stringify(stream)},"type":${JSON.stringify(type)},"v":${HASH_CHAIN_VERSION}}`,
  };
}

function hashParts(
  id: string,
  stream: string,
  revision: number,
  type: string,
  dataJson: string,
  metadataJson: string,
  recordedAt: string,
  previousHash: string | null,
): string {
  return cryptoHash(
    'sha256',
    hashInput(id, stream, revision, type, dataJson, metadataJson, recordedAt, previousHash),
    'hex',
  );
}

export type ChainVerdict =
  | { ok: true; stream: string | null; count: number; lastHash: string | null }
  | {
      ok: false;
      stream: string | null;
      count: number;
      /** The revision of the first event that does not fit; `index` is its place in the input. */
      brokenAt: { index: number; revision: number | null; eventId: string | null };
      reason: 'hash-mismatch' | 'previous-hash-mismatch' | 'revision-gap' | 'stream-mismatch' | 'malformed';
      expected?: string | number | null;
      actual?: string | number | null;
    };

/**
 * Walks a stream from revision 0 and reports the first broken link. Accepts any (async)
 * iterable so that a long stream is checked without holding it in memory.
 */
export async function verifyStream(
  events: AsyncIterable<RecordedEvent> | Iterable<RecordedEvent>,
): Promise<ChainVerdict> {
  const verifier = new ChainVerifier();
  for await (const event of events) {
    const verdict = verifier.push(event);
    if (verdict) return verdict;
  }
  return verifier.result();
}

/** Incremental form of verifyStream, for callers that read events one at a time. */
export class ChainVerifier {
  private stream: string | null = null;
  private count = 0;
  private lastHash: string | null = null;

  /** Returns a failed verdict at the first broken link, undefined while the chain holds. */
  push(event: RecordedEvent): Extract<ChainVerdict, { ok: false }> | undefined {
    const index = this.count;
    const fail = (
      reason: Extract<ChainVerdict, { ok: false }>['reason'],
      expected?: string | number | null,
      actual?: string | number | null,
    ): Extract<ChainVerdict, { ok: false }> => ({
      ok: false,
      stream: this.stream,
      count: index,
      brokenAt: {
        index,
        revision: typeof event?.revision === 'number' ? event.revision : null,
        eventId: typeof event?.id === 'string' ? event.id : null,
      },
      reason,
      ...(expected !== undefined ? { expected } : {}),
      ...(actual !== undefined ? { actual } : {}),
    });
    if (typeof event !== 'object' || event === null || typeof event.stream !== 'string')
      return fail('malformed');
    if (this.stream === null) this.stream = event.stream;
    else if (event.stream !== this.stream) return fail('stream-mismatch', this.stream, event.stream);
    if (event.revision !== index) return fail('revision-gap', index, event.revision);
    if (event.previousHash !== this.lastHash)
      return fail('previous-hash-mismatch', this.lastHash, event.previousHash);
    let recomputed: string;
    try {
      recomputed = computeEventHash(event);
    } catch {
      return fail('malformed');
    }
    if (recomputed !== event.hash) return fail('hash-mismatch', recomputed, event.hash);
    this.lastHash = event.hash;
    this.count++;
    return undefined;
  }

  result(): Extract<ChainVerdict, { ok: true }> {
    return { ok: true, stream: this.stream, count: this.count, lastHash: this.lastHash };
  }
}
