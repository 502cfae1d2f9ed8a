/**
 * The wire, for tests that run without a server: events encoded the way @eventstore/db-client
 * 6.2.1 sends them (append.js: `JSON.stringify(data)`, metadata bytes as given) and decoded by the
 * client's own code (`convertGrpcEvent`, the `Subscription` transform), from the protobuf messages
 * a server answers with. Deep imports into the client, on purpose: this is its real decoding path.
 */
import { PassThrough } from 'node:stream';
import type {
  AllStreamResolvedEvent,
  AllStreamSubscription,
  EventData as EsdbEventData,
  Filter,
} from '@eventstore/db-client';
import { Subscription as ClientSubscription } from '@eventstore/db-client/dist/streams/utils/Subscription.js';
import {
  convertGrpcEvent,
  createStreamIdentifier,
  createUUID,
} from '@eventstore/db-client/dist/utils/index.js';
import { ReadResp } from '@eventstore/db-client/generated/streams_pb.js';
import { DEFAULT_LIMITS, prepareAppend, type SealedEvent, sealEvents } from '@muster/event-store';
import { toEsdbEventData } from '../envelope.js';

export interface StoredRecord {
  stream: string;
  revision: number;
  commit: bigint;
  prepare: bigint;
  data: EsdbEventData;
}

let counter = 0;
const testId = () => `00000000-0000-4000-8000-${String(counter++).padStart(12, '0')}`;

/** Sealed exactly as the adapter seals an append. */
export function sealBatch(
  stream: string,
  events: Array<{ type: string; data: unknown; metadata?: Record<string, unknown>; id?: string }>,
  options: { startRevision?: number; previousHash?: string | null; recordedAt?: string } = {},
): SealedEvent[] {
  const prepared = prepareAppend(stream, events, 'any', DEFAULT_LIMITS, testId);
  return sealEvents({
    stream,
    startRevision: options.startRevision ?? 0,
    previousHash: options.previousHash ?? null,
    recordedAt: options.recordedAt ?? '2024-03-11T09:00:00.000Z',
    events: prepared.events,
  });
}

export function storedOf(sealed: SealedEvent, commit: bigint, prepare = commit): StoredRecord {
  return { stream: sealed.stream, revision: sealed.revision, commit, prepare, data: toEsdbEventData(sealed) };
}

/** An event some other tool wrote: JSON, but no Muster envelope. */
export function foreignRecord(stream: string, revision: number, type: string, commit: bigint): StoredRecord {
  return {
    stream,
    revision,
    commit,
    prepare: commit,
    data: {
      id: testId(),
      contentType: 'application/json',
      type,
      data: { foreign: true },
      metadata: new TextEncoder().encode('{"$correlationId":"x"}'),
    } as EsdbEventData,
  };
}

export function readEventMessage(record: StoredRecord): ReadResp {
  const e = record.data;
  const recorded = new ReadResp.ReadEvent.RecordedEvent();
  recorded.setId(createUUID(e.id));
  recorded.setStreamIdentifier(createStreamIdentifier(record.stream));
  recorded.setStreamRevision(String(record.revision));
  recorded.setCommitPosition(record.commit.toString());
  recorded.setPreparePosition(record.prepare.toString());
  const map = recorded.getMetadataMap();
  map.set('type', e.type);
  map.set('content-type', e.contentType);
  // .NET ticks (100 ns) since 0001-01-01; the adapter does not use them.
  map.set('created', '638457156000000000');
  const data =
    e.contentType === 'application/json'
      ? Buffer.from(JSON.stringify(e.data), 'utf8')
      : (e.data as Uint8Array);
  recorded.setData(new Uint8Array(data));
  if (e.metadata instanceof Uint8Array) recorded.setCustomMetadata(e.metadata);
  else if (e.metadata !== undefined) recorded.setCustomMetadata(Buffer.from(JSON.stringify(e.metadata)));
  const read = new ReadResp.ReadEvent();
  read.setEvent(recorded);
  read.setCommitPosition(record.commit.toString());
  const resp = new ReadResp();
  resp.setEvent(read);
  return resp;
}

/** What the client hands the adapter for one stored record. */
export function decoded(record: StoredRecord): AllStreamResolvedEvent {
  return convertGrpcEvent((readEventMessage(record) as ReadResp).getEvent() as ReadResp.ReadEvent);
}

export function caughtUpMessage(): ReadResp {
  const resp = new ReadResp();
  resp.setCaughtUp(new ReadResp.CaughtUp());
  return resp;
}

export function confirmationMessage(): ReadResp {
  const resp = new ReadResp();
  const confirmation = new ReadResp.SubscriptionConfirmation();
  confirmation.setSubscriptionId('test');
  resp.setConfirmation(confirmation);
  return resp;
}

export function checkpointMessage(commit: bigint, prepare = commit): ReadResp {
  const resp = new ReadResp();
  const checkpoint = new ReadResp.Checkpoint();
  checkpoint.setCommitPosition(commit.toString());
  checkpoint.setPreparePosition(prepare.toString());
  resp.setCheckpoint(checkpoint);
  return resp;
}

/** The gRPC side of one subscription call: the test writes server messages into it. */
export class FakeCall extends PassThrough {
  cancelled = false;

  constructor() {
    super({ objectMode: true, highWaterMark: 4 });
  }

  cancel(): void {
    this.cancelled = true;
    const error = Object.assign(new Error('1 CANCELLED: Cancelled on client'), {
      code: 1,
      details: 'Cancelled on client',
    });
    this.destroy(error);
  }

  /** The connection breaks: the client turns this into its UnavailableError. */
  breakConnection(): void {
    this.destroy(
      Object.assign(new Error('14 UNAVAILABLE: Connection dropped'), { code: 14, details: 'dropped' }),
    );
  }
}

/** A subscription exactly as the client builds it, over a call the test controls. */
export function clientSubscription(call: FakeCall, filter: Filter | undefined): AllStreamSubscription {
  return new ClientSubscription(
    async () => call as never,
    convertGrpcEvent,
    {},
    filter?.checkpointReached,
  ) as unknown as AllStreamSubscription;
}
