import { ChainVerifier, canonicalJson, type EventStore, type RecordedEvent } from '@muster/event-store';
import {
  evaluate,
  evolve,
  fromStoredEvent,
  initialState,
  isDomainError,
  type MissionState,
  type MissionVerdict,
  missionStreamName,
} from '@muster/readiness';
import { parseInstant } from './instants.js';
import {
  type HistoryEntry,
  MissionProcessor,
  missionIdOfStream,
  newRuntime,
  newSink,
} from './readiness/processor.js';

/**
 * The mission export: NDJSON, UTF-8, one JSON object per line, each line ending in `\n`.
 *
 *   {"kind":"muster-export","version":1,"missionId":"...","stream":"mission-...","events":N,"lastRevision":N-1,"lastHash":"..."}
 *   {"id":"...","stream":"mission-...","revision":0,"position":"...","type":"...","data":{...},"metadata":{...},"recordedAt":"...","hash":"...","previousHash":null}
 *   ...
 *
 * The header line is optional; when present it comes first and lets a verifier notice a cut-off
 * tail. Every other line is one RecordedEvent of the mission's stream, in revision order, with
 * its keys in the order above and `data` and `metadata` in canonical JSON (keys sorted, no
 * whitespace): exactly what `exportLine` writes, so that a line that differs in any byte from what
 * the writer would write for the same event is itself a finding. The hash chain covers every field
 * but `position`, which each store assigns on its own; positions are only checked to increase.
 */
export const EXPORT_KIND = 'muster-export';
export const EXPORT_VERSION = 1;
export const EXPORT_CONTENT_TYPE = 'application/x-ndjson';

export interface ExportHeader {
  kind: typeof EXPORT_KIND;
  version: typeof EXPORT_VERSION;
  missionId: string;
  stream: string;
  /** Number of event lines that follow. */
  events: number;
  /** Revision of the last event exported (-1 when none). */
  lastRevision: number;
  lastHash: string | null;
}

const q = (value: string): string => JSON.stringify(value);

/** The header line, newline included. `lastHash` is the hash of the event at `lastRevision`. */
export function exportHeader(header: {
  missionId: string;
  events: number;
  lastRevision?: number;
  lastHash: string | null;
}): string {
  const stream = `mission-${header.missionId}`;
  const lastRevision = header.lastRevision ?? header.events - 1;
  return (
    `{"kind":${q(EXPORT_KIND)},"version":${EXPORT_VERSION},"missionId":${q(header.missionId)},` +
    `"stream":${q(stream)},"events":${header.events},"lastRevision":${lastRevision},` +
    `"lastHash":${header.lastHash === null ? 'null' : q(header.lastHash)}}\n`
  );
}

/** One event's line, newline included. */
export function exportLine(event: RecordedEvent): string {
  return (
    `{"id":${q(event.id)},"stream":${q(event.stream)},"revision":${event.revision},` +
    `"position":${q(event.position)},"type":${q(event.type)},"data":${canonicalJson(event.data)},` +
    `"metadata":${canonicalJson(event.metadata)},"recordedAt":${q(event.recordedAt)},` +
    `"hash":${q(event.hash)},"previousHash":${event.previousHash === null ? 'null' : q(event.previousHash)}}\n`
  );
}

export type ExportProblemKind =
  | 'empty'
  | 'malformed-line'
  | 'malformed-header'
  | 'malformed-event'
  | 'non-canonical-line'
  | 'stream-mismatch'
  | 'position-order'
  | 'revision-order'
  | 'hash-chain'
  | 'truncated'
  | 'header-mismatch';

export interface ExportProblem {
  kind: ExportProblemKind;
  /** 1-based line number in the file. */
  line: number;
  revision: number | null;
  eventId: string | null;
  detail: string;
}

export interface ExportVerification {
  ok: boolean;
  /** The first problem found; verification stops there. */
  problem: ExportProblem | null;
  header: ExportHeader | null;
  missionId: string | null;
  stream: string | null;
  events: number;
  lastHash: string | null;
  /** The history of verdict changes the events imply, recomputed from them alone. */
  history: HistoryEntry[];
  /** The verdict after the last event (or at `until`), null before the mission is defined. */
  verdict: MissionVerdict | null;
}

const EVENT_KEYS = 'id,stream,revision,position,type,data,metadata,recordedAt,hash,previousHash';
const HEADER_KEYS = 'kind,version,missionId,stream,events,lastRevision,lastHash';

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function asEvent(value: unknown): RecordedEvent | string {
  if (!isObject(value)) return 'not a JSON object';
  if (Object.keys(value).join(',') !== EVENT_KEYS) return `keys must be ${EVENT_KEYS}`;
  const v = value;
  if (typeof v.id !== 'string' || typeof v.stream !== 'string' || typeof v.type !== 'string')
    return 'id, stream and type must be strings';
  if (typeof v.revision !== 'number' || !Number.isSafeInteger(v.revision) || v.revision < 0)
    return 'revision must be a non-negative integer';
  if (typeof v.position !== 'string' || v.position.length === 0) return 'position must be a string';
  if (!isObject(v.metadata) || typeof v.metadata.occurredAt !== 'string')
    return 'metadata must carry occurredAt';
  if (typeof v.recordedAt !== 'string' || Number.isNaN(Date.parse(v.recordedAt)))
    return 'recordedAt must be an instant';
  if (typeof v.hash !== 'string' || (v.previousHash !== null && typeof v.previousHash !== 'string'))
    return 'hash and previousHash must be strings';
  return value as unknown as RecordedEvent;
}

function asHeader(value: Record<string, unknown>): ExportHeader | string {
  if (Object.keys(value).join(',') !== HEADER_KEYS) return `header keys must be ${HEADER_KEYS}`;
  if (value.version !== EXPORT_VERSION) return `unsupported export version ${String(value.version)}`;
  if (typeof value.missionId !== 'string' || value.stream !== `mission-${value.missionId}`)
    return 'missionId and stream do not match';
  if (typeof value.events !== 'number' || !Number.isSafeInteger(value.events) || value.events < 0)
    return 'events must be a count';
  if (value.lastRevision !== value.events - 1) return 'lastRevision must be events - 1';
  if (value.lastHash !== null && typeof value.lastHash !== 'string')
    return 'lastHash must be a string or null';
  return value as unknown as ExportHeader;
}

export interface VerifyExportOptions {
  /** Also record the changes time alone causes up to this instant (ISO), after the last event. */
  until?: string;
  /** Sees every event that passed verification, in order. */
  onEvent?: (event: RecordedEvent) => void;
}

/**
 * Verifies an export offline: each line's form, the stream's revision order and hash chain, the
 * header's counts, and recomputes the verdict history from the events alone. Stops at the first
 * problem. Accepts lines with or without their `\n` (or `\r\n`); blank lines are ignored.
 */
export async function verifyExport(
  lines: AsyncIterable<string> | Iterable<string>,
  options: VerifyExportOptions = {},
): Promise<ExportVerification> {
  const until = options.until === undefined ? undefined : parseInstant(options.until);
  const chain = new ChainVerifier();
  const processor = new MissionProcessor();
  const sink = newSink({ changes: false });
  let runtime: ReturnType<typeof newRuntime> | null = null;
  let header: ExportHeader | null = null;
  let stream: string | null = null;
  let lastPosition: string | null = null;
  let lastHash: string | null = null;
  let events = 0;
  let lineNumber = 0;
  let seenContent = false;

  const result = (problem: ExportProblem | null): ExportVerification => ({
    ok: problem === null,
    problem,
    header,
    missionId: runtime?.missionId ?? header?.missionId ?? null,
    stream,
    events,
    lastHash,
    history: sink.history,
    verdict: runtime?.verdict ?? null,
  });
  const fail = (
    kind: ExportProblemKind,
    detail: string,
    event?: { revision?: unknown; id?: unknown },
  ): ExportVerification =>
    result({
      kind,
      line: lineNumber,
      revision: typeof event?.revision === 'number' ? event.revision : null,
      eventId: typeof event?.id === 'string' ? event.id : null,
      detail,
    });

  for await (const raw of lines) {
    lineNumber++;
    const line = raw.endsWith('\n')
      ? raw.slice(0, raw.endsWith('\r\n') ? -2 : -1)
      : raw.endsWith('\r')
        ? raw.slice(0, -1)
        : raw;
    if (line.trim() === '') continue;
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      return fail('malformed-line', 'not a JSON value');
    }
    if (!seenContent && isObject(parsed) && 'kind' in parsed) {
      seenContent = true;
      const checked = asHeader(parsed);
      if (typeof checked === 'string') return fail('malformed-header', checked);
      if (exportHeader(checked) !== `${line}\n`)
        return fail('non-canonical-line', 'the header is not in canonical form');
      header = checked;
      stream = checked.stream;
      continue;
    }
    seenContent = true;
    const event = asEvent(parsed);
    if (typeof event === 'string')
      return fail('malformed-event', event, isObject(parsed) ? parsed : undefined);
    let canonical: string;
    try {
      canonical = exportLine(event);
    } catch (error) {
      return fail('malformed-event', (error as Error).message, event);
    }
    if (canonical !== `${line}\n`)
      return fail('non-canonical-line', 'the line is not in canonical form', event);
    if (stream === null) stream = event.stream;
    const missionId = missionIdOfStream(event.stream);
    if (event.stream !== stream || missionId === null) {
      return fail('stream-mismatch', `expected stream ${stream}, found ${event.stream}`, event);
    }
    if (lastPosition !== null && event.position <= lastPosition) {
      return fail('position-order', `position ${event.position} does not follow ${lastPosition}`, event);
    }
    const broken = chain.push(event);
    if (broken) {
      const kind = broken.reason === 'revision-gap' ? 'revision-order' : 'hash-chain';
      const detail =
        broken.reason === 'revision-gap'
          ? `expected revision ${broken.expected}, found ${broken.actual}`
          : broken.reason === 'hash-mismatch'
            ? `the content does not hash to the recorded hash ${String(broken.actual).slice(0, 16)}…`
            : `previousHash does not match the hash of revision ${event.revision - 1}`;
      return fail(kind, detail, event);
    }
    runtime ??= newRuntime(missionId);
    processor.apply(runtime, event, sink);
    options.onEvent?.(event);
    lastPosition = event.position;
    lastHash = event.hash;
    events++;
  }
  if (!seenContent) return fail('empty', 'no header and no events');
  if (header) {
    if (events < header.events) {
      return fail('truncated', `the header announces ${header.events} events, the file holds ${events}`);
    }
    if (events > header.events || header.lastHash !== lastHash) {
      return fail(
        'header-mismatch',
        `the header announces ${header.events} events ending with hash ${header.lastHash}`,
      );
    }
  }
  if (runtime && until !== undefined) processor.advance(runtime, until, sink);
  return result(null);
}

/** Splits text into lines for verifyExport. */
export function* exportLines(text: string): Generator<string> {
  let start = 0;
  for (;;) {
    const end = text.indexOf('\n', start);
    if (end < 0) {
      if (start < text.length) yield text.slice(start);
      return;
    }
    yield text.slice(start, end + 1);
    start = end + 1;
  }
}

export type ExportQuery = { asOf: string } | { knownAt: string };

/**
 * The verdict an export implies at an instant: `asOf` evaluates the state from every event at
 * that world time; `knownAt` folds only the events recorded by then. Verifies the export on the
 * way; `verdict` is null when it does not verify or the mission was not defined by then.
 */
export async function verdictFromExport(
  lines: AsyncIterable<string> | Iterable<string>,
  query: ExportQuery,
): Promise<{ verification: ExportVerification; verdict: MissionVerdict | null }> {
  const instant = 'asOf' in query ? query.asOf : query.knownAt;
  const at = parseInstant(instant);
  let state: MissionState = initialState();
  const knownAt = 'knownAt' in query;
  const verification = await verifyExport(lines, {
    onEvent: (event) => {
      if (knownAt && Date.parse(event.recordedAt) > at) return;
      try {
        state = evolve(state, fromStoredEvent(event));
      } catch (error) {
        if (!isDomainError(error)) throw error;
      }
    },
  });
  if (!verification.ok || state.mission === null) return { verification, verdict: null };
  return { verification, verdict: evaluate(state, new Date(at).toISOString()) };
}

/**
 * The export of a mission as it stands now: the header, then every event up to the revision the
 * header announces (later appends are left for the next export). Null when the mission has no
 * events. Each string is one line, newline included: write them as they come.
 */
export async function exportMission(
  store: EventStore,
  missionId: string,
): Promise<AsyncIterable<string> | null> {
  const stream = missionStreamName(missionId);
  const lastRevision = await store.streamRevision(stream);
  if (lastRevision === null) return null;
  let lastHash: string | null = null;
  for await (const event of store.readStream(stream, {
    fromRevision: lastRevision,
    direction: 'backwards',
    maxCount: 1,
  })) {
    lastHash = event.hash;
  }
  return (async function* () {
    yield exportHeader({ missionId, events: lastRevision + 1, lastRevision, lastHash });
    for await (const event of store.readStream(stream, { fromRevision: 0, maxCount: lastRevision + 1 })) {
      yield exportLine(event);
    }
  })();
}
