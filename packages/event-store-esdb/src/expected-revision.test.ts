import { ANY, NO_STREAM, STREAM_EXISTS } from '@eventstore/db-client';
import type { ExpectedRevision } from '@muster/event-store';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  expectationFor,
  fromEsdbCurrentRevision,
  fromEsdbExpectedRevision,
  toEsdbExpectedRevision,
} from './expected-revision.js';

describe('expected revision mapping', () => {
  it('maps the named expectations both ways', () => {
    expect(toEsdbExpectedRevision('any')).toBe(ANY);
    expect(toEsdbExpectedRevision('no_stream')).toBe(NO_STREAM);
    expect(toEsdbExpectedRevision('stream_exists')).toBe(STREAM_EXISTS);
    expect(fromEsdbExpectedRevision(ANY)).toBe('any');
    expect(fromEsdbExpectedRevision(NO_STREAM)).toBe('no_stream');
    expect(fromEsdbExpectedRevision(STREAM_EXISTS)).toBe('stream_exists');
  });

  it('maps exact revisions to bigint and back, 0-based on both sides', () => {
    expect(toEsdbExpectedRevision(0)).toBe(0n);
    fc.assert(
      fc.property(fc.nat({ max: Number.MAX_SAFE_INTEGER }), (n) => {
        const esdb = toEsdbExpectedRevision(n);
        expect(esdb).toBe(BigInt(n));
        expect(fromEsdbExpectedRevision(esdb)).toBe(n);
      }),
    );
    const all: ExpectedRevision[] = ['any', 'no_stream', 'stream_exists', 0, 7];
    for (const e of all) expect(fromEsdbExpectedRevision(toEsdbExpectedRevision(e))).toBe(e);
  });

  it('expects exactly the revision that was read, or no stream', () => {
    expect(expectationFor(null)).toBe(NO_STREAM);
    expect(expectationFor(0)).toBe(0n);
    expect(expectationFor(41)).toBe(41n);
  });

  it("reads the server's current revision, where a missing stream may come as -1", () => {
    expect(fromEsdbCurrentRevision(NO_STREAM)).toBe('no_stream');
    expect(fromEsdbCurrentRevision(undefined)).toBe('no_stream');
    expect(fromEsdbCurrentRevision(-1n)).toBe('no_stream');
    expect(fromEsdbCurrentRevision(0n)).toBe(0);
    expect(fromEsdbCurrentRevision(12n)).toBe(12);
    expect(() => fromEsdbCurrentRevision(2n ** 60n)).toThrow(RangeError);
  });
});
