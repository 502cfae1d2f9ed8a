import {
  canonicalJson,
  DEFAULT_LIMITS,
  type EventData,
  hashInputParts,
  prepareAppend,
} from '@muster/event-store';

/**
 * A call of release 1's `muster_append_events`, as a replica not yet upgraded makes it: for tests
 * of a database that both append functions serve during a rolling upgrade.
 */
export function buildLegacyCall(
  stream: string,
  expectedRevision: number,
  event: EventData,
): { text: string; values: unknown[] } {
  const prepared = prepareAppend(stream, [event], expectedRevision, DEFAULT_LIMITS, () =>
    crypto.randomUUID(),
  );
  const recordedAt = new Date().toISOString();
  const e = prepared.events[0] as (typeof prepared.events)[number];
  const metadataJson = canonicalJson({ ...e.metadata, occurredAt: e.metadata.occurredAt ?? recordedAt });
  const parts = hashInputParts(e.id, stream, e.type, e.dataJson, metadataJson, recordedAt);
  return {
    text: 'SELECT * FROM muster_append_events($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)',
    values: [
      stream,
      expectedRevision,
      [e.id],
      [e.type],
      [e.dataJson],
      [metadataJson],
      recordedAt,
      [parts.head],
      [parts.middle],
      [parts.tail],
    ],
  };
}
