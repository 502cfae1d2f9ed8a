import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CorruptEventError, type RecordedEvent, verifyStream } from '@muster/event-store';
import { collect } from '@muster/event-store/contract';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { openSqliteEventStore } from './index.js';

/**
 * Events are read as one JSON text per row built from the columns (see ROW_JSON): a column edited
 * behind the store's back must still fail the read, or read as a value the hash chain rejects,
 * never shift the other columns silently.
 */
const dir = mkdtempSync(join(tmpdir(), 'muster-edited-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function withEditedRow(
  name: string,
  edit: string,
  value: string,
  options: { events?: number; revision?: number; pageSize?: number; readAheadAfterPages?: number } = {},
): Promise<{ read: Promise<RecordedEvent[]>; stream: string; path: string }> {
  const path = join(dir, `${name}.db`);
  const store = await openSqliteEventStore({ path });
  const stream = `edited-${name}`;
  await store.appendToStream(
    stream,
    Array.from({ length: options.events ?? 2 }, (_, i) => ({ type: 'Edited', data: { n: i + 1 } })),
  );
  await store.close();
  const db = new Database(path);
  db.prepare(`UPDATE events SET ${edit} = ? WHERE stream = ? AND revision = ?`).run(
    value,
    stream,
    options.revision ?? 1,
  );
  db.close();
  const reopened = await openSqliteEventStore({
    path,
    ...(options.pageSize ? { pageSize: options.pageSize } : {}),
    ...(options.readAheadAfterPages ? { readAheadAfterPages: options.readAheadAfterPages } : {}),
  });
  const read = collect(reopened.readStream(stream)).finally(() => reopened.close());
  return { read, stream, path };
}

/** The events a read hands out before it fails, and how it fails. */
async function readUntilFailure(
  events: AsyncIterable<RecordedEvent>,
): Promise<{ read: number[]; error: unknown }> {
  const read: number[] = [];
  try {
    for await (const event of events) read.push(event.revision);
  } catch (error) {
    return { read, error };
  }
  return { read, error: null };
}

describe('rows edited outside the store', () => {
  it.each([
    ['data that is two JSON values', 'data', '{"n":2},{"x":1}'],
    ['data that is not JSON', 'data', '{"n":2'],
    ['metadata that closes the row early', 'metadata', '{}]'],
    ['a type with a quote in it', 'type', 'Edi"ted'],
    ['a hash with a quote in it', 'hash', 'ab","cd'],
    ['an empty data text', 'data', ''],
  ])('fails the read naming the event, after the one before it, for %s', async (name, column, value) => {
    const { read, stream } = await withEditedRow(name.replaceAll(' ', '-'), column, value);
    const error = await read.then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(CorruptEventError);
    expect(error).toMatchObject({
      code: 'corrupt-event',
      status: 500,
      stream,
      revision: 1,
      position: '00000000000000000002',
      eventId: expect.any(String),
      cause: expect.any(SyntaxError),
    });
    expect((error as Error).message).toBe(
      `The stored event at revision 1 of stream '${stream}' (position 00000000000000000002) cannot be read`,
    );
  });

  it('hands out the events before the unreadable one, in this thread, from a read-ahead thread, and to a subscriber', async () => {
    for (const [label, pages] of [
      ['in-thread', {}],
      ['read-ahead', { pageSize: 2, readAheadAfterPages: 1 }],
    ] as const) {
      const { read, stream, path } = await withEditedRow(`partial-${label}`, 'data', '{"n":', {
        events: 9,
        revision: 6,
        ...pages,
      });
      await read.catch(() => {});
      const store = await openSqliteEventStore({ path, ...pages });
      try {
        const forwards = await readUntilFailure(store.readStream(stream));
        expect(forwards.read, label).toEqual([0, 1, 2, 3, 4, 5]);
        expect(forwards.error).toMatchObject({
          code: 'corrupt-event',
          stream,
          revision: 6,
          position: '00000000000000000007',
        });
        const backwards = await readUntilFailure(
          store.readStream(stream, { direction: 'backwards', fromRevision: 'end' }),
        );
        expect(backwards.read, label).toEqual([8, 7]);
        expect(backwards.error).toMatchObject({ code: 'corrupt-event', revision: 6 });
        const all = await readUntilFailure(store.readAll());
        expect(all.read, label).toEqual([0, 1, 2, 3, 4, 5]);
        expect(all.error).toBeInstanceOf(CorruptEventError);
        const subscription = store.subscribeToAll({ batchSize: 4 });
        const delivered: number[] = [];
        let failure: unknown = null;
        try {
          for await (const message of subscription)
            if (message.kind === 'event') delivered.push(message.event.revision);
        } catch (error) {
          failure = error;
        }
        expect(delivered, label).toEqual([0, 1, 2, 3, 4, 5]);
        expect(failure).toMatchObject({ code: 'corrupt-event', stream, revision: 6 });
      } finally {
        await store.close();
      }
    }
  });

  it('reads a changed value that is still one JSON value as it is, and the chain rejects it', async () => {
    const { read } = await withEditedRow('one-value', 'data', '{"n":3}');
    const events = await read;
    expect(events.map((e) => e.data)).toEqual([{ n: 1 }, { n: 3 }]);
    expect(await verifyStream(events)).toMatchObject({ ok: false, brokenAt: { revision: 1 } });
  });
});
