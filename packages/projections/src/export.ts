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
 * The header line comes first (`exportMission` always writes it, and only for a mission that has
 * events) and lets a verifier notice a cut-off tail. Every other line is one RecordedEvent of the
 * mission's stream, in revision order, with its keys in the order above and `data` and `metadata`
 * in canonical JSON (keys sorted, no whitespace): exactly what `exportLine` writes, so that a line
 * that differs in any byte from what the writer would write for the same event is itself a
 * finding. The hash chain covers every field but `position`, which each store assigns on its own;
 * positions are checked to be of one store's form and to increase.
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
  | 'encoding'
  | 'malformed-line'
  | 'missing-header'
  | 'malformed-header'
  | 'malformed-event'
  | 'non-canonical-line'
  | 'stream-mismatch'
  | 'position-order'
  | 'revision-order'
  | 'hash-chain'
  | 'truncated'
  | 'header-mismatch'
  | 'anchor-mismatch';

export interface ExportProblem {
  kind: ExportProblemKind;
  /** 1-based line number in the file. */
  line: number;
  revision: number | null;
  eventId: string | null;
  detail: string;
}

/** An event of the mission that this code's domain cannot read (an unknown type or version). */
export interface UnreadableExportEvent {
  line: number;
  revision: number;
  eventId: string;
  type: string;
  /** The domain's error code: `unknown-event-type`, `unsupported-event-version`, `invalid-event`, ... */
  reason: string;
  detail: string;
}

export interface ExportVerification {
  /** No problem and no unreadable event: the file is intact and its history was recomputed whole. */
  ok: boolean;
  /** The first problem found; verification stops there. */
  problem: ExportProblem | null;
  /**
   * Events that are intact (chained, counted) but that the domain cannot read: they fold into
   * nothing, so the recomputed history and verdicts leave them out. The first 1,000 are listed.
   */
  unreadable: UnreadableExportEvent[];
  /** How many events could not be read, listed or not. */
  unreadableCount: number;
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
  if (typeof v.position !== 'string') return 'position must be a string';
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
  if (value.events === 0)
    return 'the header announces no events, but the service exports only missions that have events';
  if (value.lastRevision !== value.events - 1) return 'lastRevision must be events - 1';
  if (typeof value.lastHash !== 'string') return 'lastHash must be a string';
  return value as unknown as ExportHeader;
}

type PositionForm = 'SQLite' | 'PostgreSQL' | 'EventStoreDB';

const MAX_U64 = 2n ** 64n - 1n;
const MAX_I64 = 2n ** 63n - 1n;

/**
 * Which store's form a position has, as that store's `canonicalPosition` would give it back
 * unchanged (packages/event-store-sqlite, -postgres, -esdb): SQLite a sequence of 20 digits,
 * PostgreSQL transaction id and sequence as 20 digits each joined by '-', EventStoreDB commit and
 * prepare offsets joined by '/'. Written out here because the export's verifier knows no adapter.
 */
function positionForm(position: string): PositionForm | null {
  if (/^\d{20}$/.test(position)) {
    const n = Number(position);
    return n >= 1 && Number.isSafeInteger(n) ? 'SQLite' : null;
  }
  const pair = /^(\d{20})([-/])(\d{20})$/.exec(position);
  if (!pair) return null;
  const first = BigInt(pair[1] as string);
  const second = BigInt(pair[3] as string);
  if (pair[2] === '-') return first <= MAX_U64 && second <= MAX_I64 ? 'PostgreSQL' : null;
  return first <= MAX_U64 && second <= MAX_U64 ? 'EventStoreDB' : null;
}

/** Hashes an export must hold at given revisions, known from elsewhere (docs/audit.md, anchoring). */
export interface ExportAnchors {
  /** The stream an earlier export was of: this export must be of the same one. */
  stream?: string;
  /** Where `stream` comes from, for messages. */
  source?: string;
  /** The highest revision with a known hash: an export that ends before it has lost events. */
  lastRevision: number;
  /** Where the hash at `lastRevision` comes from, for messages. */
  lastSource: string;
  /** The hashes known for a revision, each with where it comes from. */
  expected(revision: number): readonly { hash: string; source: string }[];
}

export interface VerifyExportOptions {
  /** Also record the changes time alone causes up to this instant (ISO), after the last event. */
  until?: string;
  /** Sees every event that passed verification, in order. */
  onEvent?: (event: RecordedEvent) => void;
  /** Hashes the export must hold (from an earlier export, a receipt): a rewritten history fails. */
  anchors?: ExportAnchors;
}

interface RawLine {
  /** The line without its `\n`; null when its bytes are not UTF-8. */
  text: string | null;
  terminated: boolean;
}

function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0] as Uint8Array;
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/**
 * Cuts chunks of any size (text, or bytes as read from a file) into lines at `\n`. Bytes are
 * decoded strictly, line by line: a lenient decoder would turn a damaged byte into U+FFFD, which
 * re-serialises to itself and would pass as canonical. `\n` never occurs inside a UTF-8 sequence.
 */
async function* splitLines(
  chunks: AsyncIterable<string | Uint8Array> | Iterable<string | Uint8Array>,
): AsyncGenerator<RawLine> {
  const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  const encoder = new TextEncoder();
  const decode = (bytes: Uint8Array): string | null => {
    try {
      return decoder.decode(bytes);
    } catch {
      return null;
    }
  };
  let text = '';
  let bytes: Uint8Array[] = [];
  for await (const chunk of chunks) {
    if (typeof chunk === 'string' && bytes.length === 0) {
      let start = 0;
      for (let at = chunk.indexOf('\n'); at >= 0; at = chunk.indexOf('\n', start)) {
        yield { text: text + chunk.slice(start, at), terminated: true };
        text = '';
        start = at + 1;
      }
      text += chunk.slice(start);
      continue;
    }
    const data = typeof chunk === 'string' ? encoder.encode(chunk) : chunk;
    if (text.length > 0) {
      bytes.push(encoder.encode(text));
      text = '';
    }
    let start = 0;
    for (let at = data.indexOf(0x0a); at >= 0; at = data.indexOf(0x0a, start)) {
      bytes.push(data.subarray(start, at));
      yield { text: decode(concatBytes(bytes)), terminated: true };
      bytes = [];
      start = at + 1;
    }
    // Copied: a caller may reuse its buffer for the next chunk.
    if (start < data.length) bytes.push(data.slice(start));
  }
  if (bytes.length > 0) yield { text: decode(concatBytes(bytes)), terminated: false };
  else if (text.length > 0) yield { text, terminated: false };
}

const MAX_UNREADABLE_LISTED = 1000;

/**
 * Verifies an export offline, every byte of it: each line is UTF-8, ends in `\n` and is exactly
 * what the exporter writes for what it parses to (the header first); the events are of one
 * `mission-*` stream, with positions of one store's form that increase, revisions 0, 1, 2, ... and
 * an unbroken hash chain; the header's counts and last hash match; and the hashes `anchors` knows
 * are there. Recomputes the verdict history from the events alone on the way. Stops at the first
 * problem. `chunks` are the file's text or bytes, cut anywhere (lines as `exportMission` yields
 * them, or a file's chunks as read).
 */
export async function verifyExport(
  chunks: AsyncIterable<string | Uint8Array> | Iterable<string | Uint8Array>,
  options: VerifyExportOptions = {},
): Promise<ExportVerification> {
  const until = options.until === undefined ? undefined : parseInstant(options.until);
  const anchors = options.anchors;
  const chain = new ChainVerifier();
  const processor = new MissionProcessor();
  const sink = newSink({ changes: false });
  let runtime: ReturnType<typeof newRuntime> | null = null;
  let header: ExportHeader | null = null;
  let stream: string | null = null;
  let form: PositionForm | null = null;
  let lastPosition: string | null = null;
  let lastHash: string | null = null;
  let events = 0;
  let lineNumber = 0;
  const unreadable: UnreadableExportEvent[] = [];
  let unreadableCount = 0;

  const result = (problem: ExportProblem | null): ExportVerification => ({
    ok: problem === null && unreadableCount === 0,
    problem,
    unreadable,
    unreadableCount,
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
  const short = (hash: string) => `${hash.slice(0, 16)}…`;

  for await (const raw of splitLines(chunks)) {
    lineNumber++;
    const line = raw.text;
    if (line === null) return fail('encoding', 'the line is not valid UTF-8');
    if (lineNumber === 1 && line.startsWith('\uFEFF'))
      return fail('encoding', 'the file starts with a byte order mark (U+FEFF); exports have none');
    if (!raw.terminated)
      return fail('malformed-line', 'the last line does not end with a newline (\\n): cut off or edited');
    if (line.includes('\r'))
      return fail(
        'malformed-line',
        'the line holds a carriage return (\\r): exports end lines with \\n alone',
      );
    if (line.trim() === '')
      return fail('malformed-line', line === '' ? 'the line is blank' : 'the line holds only whitespace');
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      return fail('malformed-line', 'not a JSON value');
    }
    if (lineNumber === 1) {
      if (!isObject(parsed) || !('kind' in parsed))
        return fail(
          'missing-header',
          'the first line is not the export header: the service writes one before the events',
        );
      const checked = asHeader(parsed);
      if (typeof checked === 'string') return fail('malformed-header', checked);
      if (exportHeader(checked) !== `${line}\n`)
        return fail('non-canonical-line', 'the header is not in canonical form');
      if (anchors?.stream !== undefined && checked.stream !== anchors.stream)
        return fail(
          'anchor-mismatch',
          `this export is of ${checked.stream}, ${anchors.source ?? 'the anchor'} of ${anchors.stream}`,
        );
      header = checked;
      stream = checked.stream;
      continue;
    }
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
    const missionId = missionIdOfStream(event.stream);
    if (event.stream !== stream || missionId === null) {
      return fail('stream-mismatch', `expected stream ${stream}, found ${event.stream}`, event);
    }
    const eventForm = positionForm(event.position);
    if (eventForm === null)
      return fail(
        'malformed-event',
        `position ${JSON.stringify(event.position)} is no store's position (SQLite: 20 digits; ` +
          'PostgreSQL: 20 digits, "-", 20 digits; EventStoreDB: 20 digits, "/", 20 digits)',
        event,
      );
    if (form !== null && eventForm !== form)
      return fail(
        'malformed-event',
        `position ${event.position} is of ${eventForm}'s form, the earlier ones of ${form}'s: one store exported them all`,
        event,
      );
    form = eventForm;
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
            ? `the content does not hash to the recorded hash ${short(String(broken.actual))}`
            : `previousHash does not match the hash of revision ${event.revision - 1}`;
      return fail(kind, detail, event);
    }
    for (const known of anchors?.expected(event.revision) ?? []) {
      if (known.hash !== event.hash)
        return fail(
          'anchor-mismatch',
          `revision ${event.revision} differs from ${known.source}: its hash is ${short(event.hash)}, ` +
            `expected ${short(known.hash)} (each hash seals every event before it: this event or an ` +
            'earlier one was rewritten, removed, inserted or reordered, and the chain recomputed)',
          event,
        );
    }
    runtime ??= newRuntime(missionId);
    const skipped = sink.skipped.length;
    processor.apply(runtime, event, sink);
    if (sink.skipped.length > skipped) {
      const { reason } = sink.skipped[skipped] as { reason: string };
      unreadableCount++;
      if (unreadable.length < MAX_UNREADABLE_LISTED)
        unreadable.push({
          line: lineNumber,
          revision: event.revision,
          eventId: event.id,
          type: event.type,
          reason,
          detail: `event at revision ${event.revision} cannot be read by the domain (${reason})`,
        });
      // The runner keeps its own count; the list here would otherwise grow with the file.
      sink.skipped.length = skipped;
    }
    options.onEvent?.(event);
    lastPosition = event.position;
    lastHash = event.hash;
    events++;
  }
  if (lineNumber === 0) {
    lineNumber = 1;
    return fail('empty', 'the file is empty');
  }
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
  if (anchors && events - 1 < anchors.lastRevision) {
    return result({
      kind: 'anchor-mismatch',
      line: lineNumber,
      revision: events,
      eventId: null,
      detail:
        `revision ${events} is missing: the export ends at revision ${events - 1}, ` +
        `${anchors.lastSource} holds revision ${anchors.lastRevision}`,
    });
  }
  if (runtime && until !== undefined) processor.advance(runtime, until, sink);
  return result(null);
}

/** Splits text into lines, each with its `\n` (verifyExport takes the text cut anywhere). */
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
  chunks: AsyncIterable<string | Uint8Array> | Iterable<string | Uint8Array>,
  query: ExportQuery,
): Promise<{ verification: ExportVerification; verdict: MissionVerdict | null }> {
  const instant = 'asOf' in query ? query.asOf : query.knownAt;
  const at = parseInstant(instant);
  let state: MissionState = initialState();
  const knownAt = 'knownAt' in query;
  const verification = await verifyExport(chunks, {
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
