import { canonicalJson, NotJsonError } from './canonical-json.js';
import {
  EventTooLargeError,
  InvalidEventError,
  InvalidExpectedRevisionError,
  InvalidReadOptionsError,
  InvalidStreamNameError,
} from './errors.js';
import type {
  EventData,
  EventFilter,
  EventStoreLimits,
  ExpectedRevision,
  ReadAllOptions,
  ReadStreamOptions,
} from './types.js';

export const MAX_STREAM_NAME_LENGTH = 200;
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point.
const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/;
/**
 * A surrogate without its pair: no UTF-8 text holds it, so both databases would store U+FFFD
 * instead, and the stream read back would be another name than the one hashed into the chain.
 */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const EVENT_TYPE = /^[A-Za-z][A-Za-z0-9._:-]{0,99}$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Four-digit years only, so that ISO strings sort as instants. */
const ISO_INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/;

export function validateStreamName(stream: unknown): string {
  if (typeof stream !== 'string') throw new InvalidStreamNameError('must be a string');
  if (stream.length === 0) throw new InvalidStreamNameError('must not be empty');
  if (stream.length > MAX_STREAM_NAME_LENGTH) {
    throw new InvalidStreamNameError(`longer than ${MAX_STREAM_NAME_LENGTH} characters`);
  }
  if (CONTROL_CHARS.test(stream)) throw new InvalidStreamNameError('contains a control character');
  if (LONE_SURROGATE.test(stream)) {
    throw new InvalidStreamNameError('contains an unpaired surrogate (not valid Unicode text)');
  }
  if (stream.startsWith('$')) throw new InvalidStreamNameError("names starting with '$' are reserved");
  if (stream.trim() !== stream) throw new InvalidStreamNameError('must not start or end with whitespace');
  return stream;
}

export function validateExpectedRevision(value: unknown): ExpectedRevision {
  if (value === undefined) return 'any';
  if (value === 'any' || value === 'no_stream' || value === 'stream_exists') return value;
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return value;
  if (typeof value === 'bigint' && value >= 0n && value <= BigInt(Number.MAX_SAFE_INTEGER))
    return Number(value);
  throw new InvalidExpectedRevisionError(value);
}

/** The `knownRevision` of `appendUnderLock`: null, or a revision (a non-negative integer). */
export function validateKnownRevision(value: unknown): number | null {
  if (value === null) return null;
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return value;
  throw new InvalidReadOptionsError('knownRevision must be null or a non-negative integer');
}

export function isIsoInstant(value: unknown): value is string {
  return typeof value === 'string' && ISO_INSTANT.test(value) && normaliseInstant(value) !== null;
}

/**
 * Whether the date and hour of an ISO_INSTANT text exist: `Date.parse` takes a 29th to 31st of
 * any month and rolls it into the next (2024-02-30 is read as 2024-03-01), and takes 24:00.
 */
function isCalendarTime(value: string): boolean {
  const year = Number(value.slice(0, 4));
  const month = Number(value.slice(5, 7));
  const day = Number(value.slice(8, 10));
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  const days =
    month === 2 ? (leap ? 29 : 28) : month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
  return month >= 1 && month <= 12 && day >= 1 && day <= days && Number(value.slice(11, 13)) <= 23;
}

/** A valid ISO 8601 instant as `YYYY-MM-DDTHH:mm:ss.sssZ`, or null. */
export function normaliseInstant(value: string): string | null {
  if (!ISO_INSTANT.test(value) || !isCalendarTime(value)) return null;
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) return null;
  const iso = new Date(ms).toISOString();
  return /^\d{4}-/.test(iso) ? iso : null;
}

/** Epoch milliseconds of a text `normaliseInstant` accepts, or null for anything else. */
export function isoInstantMs(value: unknown): number | null {
  const canonical = typeof value === 'string' ? normaliseInstant(value) : null;
  return canonical === null ? null : Date.parse(canonical);
}

/** An event checked and serialised, ready for an adapter to seal and write. */
export interface PreparedEvent {
  id: string;
  type: string;
  /** Canonical JSON of `data`. */
  dataJson: string;
  /** Metadata with `occurredAt` normalised (absent until sealed when the caller gave none). */
  metadata: Record<string, unknown>;
}

export interface PreparedAppend {
  stream: string;
  expectedRevision: ExpectedRevision;
  events: PreparedEvent[];
}

/**
 * Checks a whole append before anything is written: one bad event rejects the append.
 * `newId` supplies ids for events that carry none.
 */
export function prepareAppend(
  stream: unknown,
  events: unknown,
  expectedRevision: unknown,
  limits: EventStoreLimits,
  newId: () => string,
): PreparedAppend {
  const name = validateStreamName(stream);
  const expected = validateExpectedRevision(expectedRevision);
  if (!Array.isArray(events)) throw new InvalidEventError(0, 'events must be an array');
  if (events.length === 0) throw new InvalidEventError(0, 'an append needs at least one event');
  if (events.length > limits.maxEventsPerAppend) {
    throw new InvalidEventError(
      limits.maxEventsPerAppend,
      `at most ${limits.maxEventsPerAppend} events per append`,
    );
  }
  const seenIds = new Set<string>();
  const prepared = events.map((event, index) => {
    const p = prepareEvent(event, index, limits, newId);
    if (seenIds.has(p.id)) throw new InvalidEventError(index, `duplicate event id ${p.id} in one append`);
    seenIds.add(p.id);
    return p;
  });
  return { stream: name, expectedRevision: expected, events: prepared };
}

function prepareEvent(
  event: unknown,
  index: number,
  limits: EventStoreLimits,
  newId: () => string,
): PreparedEvent {
  if (typeof event !== 'object' || event === null || Array.isArray(event)) {
    throw new InvalidEventError(index, 'must be an object');
  }
  const { id, type, data, metadata } = event as EventData;
  let eventId: string;
  if (id === undefined) eventId = newId();
  else if (typeof id === 'string' && UUID.test(id)) eventId = id.toLowerCase();
  else throw new InvalidEventError(index, 'id must be a UUID');
  if (typeof type !== 'string' || !EVENT_TYPE.test(type)) {
    throw new InvalidEventError(index, 'type must match /^[A-Za-z][A-Za-z0-9._:-]{0,99}$/');
  }
  if (data === undefined) throw new InvalidEventError(index, 'data is required');
  let dataJson: string;
  let metadataJson: string;
  const meta = prepareMetadata(metadata, index);
  try {
    dataJson = canonicalJson(data);
    metadataJson = canonicalJson(meta);
  } catch (error) {
    if (error instanceof NotJsonError)
      throw new InvalidEventError(index, `not JSON-serialisable at ${error.message}`);
    throw error;
  }
  const bytes = Buffer.byteLength(dataJson) + Buffer.byteLength(metadataJson);
  if (bytes > limits.maxEventBytes) throw new EventTooLargeError(index, bytes, limits.maxEventBytes);
  return { id: eventId, type, dataJson, metadata: meta };
}

function prepareMetadata(metadata: unknown, index: number): Record<string, unknown> {
  if (metadata === undefined) return {};
  if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)) {
    throw new InvalidEventError(index, 'metadata must be an object');
  }
  const meta = { ...(metadata as Record<string, unknown>) };
  if (meta.occurredAt !== undefined) {
    const normal = typeof meta.occurredAt === 'string' ? normaliseInstant(meta.occurredAt) : null;
    if (normal === null) {
      throw new InvalidEventError(index, 'metadata.occurredAt must be an ISO 8601 instant with a time zone');
    }
    meta.occurredAt = normal;
  }
  const actor = meta.actor as Record<string, unknown> | undefined;
  if (actor !== undefined) {
    if (
      typeof actor !== 'object' ||
      actor === null ||
      typeof actor.agency !== 'string' ||
      typeof actor.keyId !== 'string'
    ) {
      throw new InvalidEventError(index, 'metadata.actor must be { agency, keyId }');
    }
  }
  for (const key of ['commandId', 'correlationId', 'causationId'] as const) {
    if (meta[key] !== undefined && typeof meta[key] !== 'string') {
      throw new InvalidEventError(index, `metadata.${key} must be a string`);
    }
  }
  return meta;
}

export function validateReadStreamOptions(
  options: ReadStreamOptions | undefined,
): Required<ReadStreamOptions> {
  const direction = options?.direction ?? 'forwards';
  if (direction !== 'forwards' && direction !== 'backwards') {
    throw new InvalidReadOptionsError("direction must be 'forwards' or 'backwards'");
  }
  const fromRevision = options?.fromRevision ?? (direction === 'forwards' ? 'start' : 'end');
  if (
    fromRevision !== 'start' &&
    fromRevision !== 'end' &&
    !(typeof fromRevision === 'number' && Number.isSafeInteger(fromRevision) && fromRevision >= 0)
  ) {
    throw new InvalidReadOptionsError("fromRevision must be 'start', 'end' or a non-negative integer");
  }
  return { direction, fromRevision, maxCount: validateMaxCount(options?.maxCount) };
}

export function validateReadAllOptions(
  options: ReadAllOptions | undefined,
): Required<Omit<ReadAllOptions, 'filter'>> & { filter: EventFilter | undefined } {
  const direction = options?.direction ?? 'forwards';
  if (direction !== 'forwards' && direction !== 'backwards') {
    throw new InvalidReadOptionsError("direction must be 'forwards' or 'backwards'");
  }
  const fromPosition = options?.fromPosition ?? (direction === 'forwards' ? 'start' : 'end');
  if (typeof fromPosition !== 'string') throw new InvalidReadOptionsError('fromPosition must be a string');
  return { direction, fromPosition, maxCount: validateMaxCount(options?.maxCount), filter: options?.filter };
}

/** The page size of a catching-up subscription: LIMIT 0 or a negative one would read nothing or everything. */
export function validateBatchSize(batchSize: unknown, fallback: number): number {
  if (batchSize === undefined) return fallback;
  if (typeof batchSize === 'number' && Number.isSafeInteger(batchSize) && batchSize >= 1) return batchSize;
  throw new InvalidReadOptionsError('batchSize must be a positive integer');
}

function validateMaxCount(maxCount: unknown): number {
  if (maxCount === undefined) return Number.POSITIVE_INFINITY;
  if (
    typeof maxCount === 'number' &&
    (Number.isSafeInteger(maxCount) || maxCount === Number.POSITIVE_INFINITY) &&
    maxCount >= 0
  ) {
    return maxCount;
  }
  throw new InvalidReadOptionsError('maxCount must be a non-negative integer');
}
