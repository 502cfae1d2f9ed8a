import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type RecordedEvent, verifyStream } from '@muster/event-store';
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
): Promise<{ read: Promise<RecordedEvent[]>; stream: string }> {
  const path = join(dir, `${name}.db`);
  const store = await openSqliteEventStore({ path });
  const stream = `edited-${name}`;
  await store.appendToStream(stream, [
    { type: 'Edited', data: { n: 1 } },
    { type: 'Edited', data: { n: 2 } },
  ]);
  await store.close();
  const db = new Database(path);
  db.prepare(`UPDATE events SET ${edit} = ? WHERE stream = ? AND revision = 1`).run(value, stream);
  db.close();
  const reopened = await openSqliteEventStore({ path });
  const read = collect(reopened.readStream(stream)).finally(() => reopened.close());
  return { read, stream };
}

describe('rows edited outside the store', () => {
  it.each([
    ['data that is two JSON values', 'data', '{"n":2},{"x":1}'],
    ['data that is not JSON', 'data', '{"n":2'],
    ['metadata that closes the row early', 'metadata', '{}]'],
    ['a type with a quote in it', 'type', 'Edi"ted'],
    ['a hash with a quote in it', 'hash', 'ab","cd'],
    ['an empty data text', 'data', ''],
  ])('fails the read with a SyntaxError for %s', async (name, column, value) => {
    const { read } = await withEditedRow(name.replaceAll(' ', '-'), column, value);
    await expect(read).rejects.toBeInstanceOf(SyntaxError);
  });

  it('reads a changed value that is still one JSON value as it is, and the chain rejects it', async () => {
    const { read } = await withEditedRow('one-value', 'data', '{"n":3}');
    const events = await read;
    expect(events.map((e) => e.data)).toEqual([{ n: 1 }, { n: 3 }]);
    expect(await verifyStream(events)).toMatchObject({ ok: false, brokenAt: { revision: 1 } });
  });
});
