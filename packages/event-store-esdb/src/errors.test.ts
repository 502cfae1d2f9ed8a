import {
  AccessDeniedError,
  DeadlineExceededError,
  StreamNotFoundError as EsdbStreamNotFoundError,
  MaxAppendSizeExceededError,
  type NotLeaderError,
  UnavailableError,
  UnknownError,
  WrongExpectedVersionError,
} from '@eventstore/db-client';
import {
  EventTooLargeError,
  StoreUnavailableError,
  StreamNotFoundError,
  WrongExpectedRevisionError,
} from '@muster/event-store';
import { describe, expect, it } from 'vitest';
import { createEsdbClient, normaliseConnectionString, redactCredentials } from './connection-string.js';
import { ForeignEventError, InvalidConnectionStringError, isPermanent, mapEsdbError } from './errors.js';

describe('client errors mapped to the port', () => {
  it('WrongExpectedVersion carries the caller expectation and the actual revision', () => {
    const error = new WrongExpectedVersionError(undefined, { streamName: 's', expected: 4n, current: 6n });
    const mapped = mapEsdbError(error, { operation: 'append', stream: 's', expected: 'stream_exists' });
    expect(mapped).toBeInstanceOf(WrongExpectedRevisionError);
    expect(mapped).toMatchObject({
      stream: 's',
      expected: 'stream_exists',
      actual: 6,
      code: 'wrong-expected-revision',
    });
    const noStream = new WrongExpectedVersionError(undefined, {
      streamName: 't',
      expected: 0n,
      current: 'no_stream',
    });
    expect(mapEsdbError(noStream, { operation: 'append' })).toMatchObject({
      stream: 't',
      expected: 0,
      actual: 'no_stream',
    });
  });

  it('StreamNotFound becomes the port error for the stream asked for', () => {
    const mapped = mapEsdbError(new EsdbStreamNotFoundError(undefined, 'x'), {
      operation: 'read',
      stream: 'x',
    });
    expect(mapped).toBeInstanceOf(StreamNotFoundError);
    expect(mapped).toMatchObject({ stream: 'x', status: 404 });
  });

  it('unavailability, deadlines and raw gRPC transport failures become StoreUnavailableError', () => {
    const transport = [
      new UnavailableError(),
      new DeadlineExceededError(),
      Object.assign(new Error('14 UNAVAILABLE: No connection established'), { code: 14 }),
      Object.assign(new Error('4 DEADLINE_EXCEEDED'), { code: 4 }),
      Object.assign(new UnknownError(), {
        code: 12,
        message: '12 UNIMPLEMENTED: Received HTTP status code 404',
      }),
      Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }),
    ];
    for (const error of transport) {
      const mapped = mapEsdbError(error, { operation: 'read $all' });
      expect(mapped).toBeInstanceOf(StoreUnavailableError);
      expect((mapped as StoreUnavailableError).retryable).toBe(true);
      expect((mapped as Error).cause).toBe(error);
    }
  });

  it('a server-side append size rejection is a too-large event', () => {
    const mapped = mapEsdbError(MaxAppendSizeExceededError.fromMaxAppendSize(1024), {
      operation: 'append',
      appendBytes: 2000,
    });
    expect(mapped).toBeInstanceOf(EventTooLargeError);
    expect(mapped).toMatchObject({ bytes: 2000, limit: 1024 });
  });

  it('leaves everything else as it is', () => {
    const denied = new AccessDeniedError();
    expect(mapEsdbError(denied, { operation: 'append' })).toBe(denied);
    const plain = new Error('boom');
    expect(mapEsdbError(plain, { operation: 'x' })).toBe(plain);
    expect(mapEsdbError('text', { operation: 'x' })).toBe('text');
    const own = new StoreUnavailableError('already mapped');
    expect(mapEsdbError(own, { operation: 'x' })).toBe(own);
  });

  it('knows which failures a subscription should not retry', () => {
    expect(isPermanent(new AccessDeniedError())).toBe(true);
    expect(isPermanent(new ForeignEventError('s', 0))).toBe(true);
    expect(isPermanent(new UnavailableError())).toBe(false);
    expect(isPermanent(Object.assign(new Error('x'), { code: 14 }))).toBe(false);
    expect(isPermanent(new StoreUnavailableError('x'))).toBe(false);
    // NotLeader needs gRPC metadata to build; its type alone decides.
    expect(isPermanent({ type: 'not-leader' } as unknown as NotLeaderError)).toBe(false);
  });
});

describe('connection strings', () => {
  it('accepts esdb and kurrentdb schemes, rewriting the new spelling for the 6.x client', () => {
    expect(normaliseConnectionString('esdb://localhost:2113?tls=false')).toBe(
      'esdb://localhost:2113?tls=false',
    );
    expect(normaliseConnectionString(' kurrentdb://a:2113,b:2113?tls=false ')).toBe(
      'esdb://a:2113,b:2113?tls=false',
    );
    expect(normaliseConnectionString('kurrentdb+discover://cluster:2113')).toBe(
      'esdb+discover://cluster:2113',
    );
  });

  it('rejects a wrong one with a clear error, without echoing credentials', () => {
    for (const bad of ['', '   ', 'postgres://x', 'http://localhost:2113', 42]) {
      expect(() => normaliseConnectionString(bad)).toThrow(InvalidConnectionStringError);
    }
    const error = (() => {
      try {
        createEsdbClient('esdb://admin:s3cret@localhost:2113?tls=false&nodePreference=nowhere');
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(error).toBeInstanceOf(InvalidConnectionStringError);
    expect((error as Error).message).not.toContain('s3cret');
    expect((error as InvalidConnectionStringError).code).toBe('invalid-connection-string');
    expect((error as Error).message).toContain('nowhere');
    expect(redactCredentials('Unexpected "x" in esdb://admin:s3cret@host:2113')).toBe(
      'Unexpected "x" in esdb://***@host:2113',
    );
  });
});
