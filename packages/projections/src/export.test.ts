import type { RecordedEvent } from '@muster/event-store';
import { mssHaitiScenario } from '@muster/readiness';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type ExportAnchors,
  exportHeader,
  exportLines,
  exportMission,
  verdictFromExport,
  verifyExport,
} from './export.js';
import { createReadinessProjection } from './readiness/projection.js';
import { createReadinessQueries } from './readiness/queries.js';
import { startProjections } from './runner.js';
import { ManualClock, openSqliteFixture, playMssHaiti } from './test-support/harness.js';
import { forgeExport } from './testing/index.js';

const missionId = mssHaitiScenario.missionId;
let text = '';
let storedHistory: unknown[] = [];
let currentPhases: unknown[] = [];
let close: () => Promise<void> = async () => {};
let queries: ReturnType<typeof createReadinessQueries>;

beforeAll(async () => {
  const clock = new ManualClock();
  const fx = await openSqliteFixture('export', clock);
  await playMssHaiti(fx.store, clock);
  const runner = await startProjections({
    store: fx.store,
    sql: fx.sql,
    projections: [createReadinessProjection({ store: fx.store })],
    clock: clock.now,
    timeGraceMs: 0,
  });
  const head = (await fx.store.headPosition()) as string;
  await runner.waitForPosition(head, 10_000);
  queries = createReadinessQueries({ store: fx.store, sql: fx.sql });
  storedHistory = (await queries.history(missionId, { limit: 1000 }))?.entries ?? [];
  currentPhases = (await queries.currentVerdict(missionId))?.phases ?? [];
  const lines: string[] = [];
  for await (const line of (await exportMission(fx.store, missionId)) ?? []) lines.push(line);
  text = lines.join('');
  close = async () => {
    await runner.close();
    await fx.close();
  };
});
afterAll(() => close());

const eventLines = () => text.split('\n').filter((l) => l.length > 0);
const withNewlines = (lines: readonly string[]) => lines.map((l) => `${l}\n`);
const events = (): RecordedEvent[] =>
  eventLines()
    .slice(1)
    .map((l) => JSON.parse(l) as RecordedEvent);

const forge = (edit: (events: RecordedEvent[]) => RecordedEvent[]): string =>
  forgeExport(missionId, events(), edit);

describe('a mission export', () => {
  it('verifies, and recomputes from its events alone the history the projection stored', async () => {
    const result = await verifyExport(exportLines(text));
    expect(result.problem).toBeNull();
    expect(result).toMatchObject({ ok: true, missionId, stream: `mission-${missionId}` });
    expect(result.events).toBe(eventLines().length - 1);
    expect(result.header?.events).toBe(result.events);
    expect(result.history).toEqual(storedHistory);
    expect(result.verdict?.phases).toEqual(currentPhases);
  });

  it('answers as-of and known-at questions from the file as the queries do from the store', async () => {
    for (const instant of ['2024-03-01T12:00:00Z', '2024-04-26T12:00:00Z', '2024-10-03T00:00:00Z']) {
      const asOf = await verdictFromExport(exportLines(text), { asOf: instant });
      const { basis: _a, ...fromStore } = (await queries.verdictAsOf(missionId, instant))!;
      expect(asOf.verdict).toEqual(fromStore);
      const knownAt = await verdictFromExport(exportLines(text), { knownAt: instant });
      const { basis: _k, ...knownFromStore } = (await queries.verdictKnownAt(missionId, instant))!;
      expect(knownAt.verdict).toEqual(knownFromStore);
    }
    expect(
      (await verdictFromExport(exportLines(text), { knownAt: '2024-01-01T00:00:00Z' })).verdict,
    ).toBeNull();
  });

  it('refuses instants that do not exist, in the file and in the store alike', async () => {
    for (const bad of ['2024-02-30T00:00:00Z', '2023-02-29T12:00:00Z', 'soon', '2024-04-26']) {
      await expect(verdictFromExport(exportLines(text), { asOf: bad }), bad).rejects.toMatchObject({
        code: 'invalid-instant',
      });
      await expect(verifyExport(exportLines(text), { until: bad }), bad).rejects.toMatchObject({
        code: 'invalid-instant',
      });
      await expect(queries.verdictKnownAt(missionId, bad), bad).rejects.toMatchObject({
        code: 'invalid-instant',
      });
    }
  });

  it('detects a change to any byte of any line: data, metadata, ids, order, times, hashes, header', async () => {
    const encoder = new TextEncoder();
    const decoder = new TextDecoder();
    const lines = eventLines().map((l) => encoder.encode(l));
    // Positions are assigned by each store and are not covered by the hash chain (docs/audit.md).
    const positionSpan = (line: Uint8Array): [number, number] | null => {
      const s = decoder.decode(line);
      const at = s.indexOf('"position":"');
      if (at < 0) return null;
      const start = encoder.encode(s.slice(0, at + 12)).length;
      return [start, start + 20];
    };
    await fc.assert(
      fc.asyncProperty(
        fc.nat(lines.length - 1),
        fc.nat(),
        fc.integer({ min: 1, max: 255 }),
        async (lineIndex, offsetSeed, delta) => {
          const line = lines[lineIndex] as Uint8Array;
          const span = positionSpan(line);
          const choices = line.length - (span ? span[1] - span[0] : 0);
          let offset = offsetSeed % choices;
          if (span && offset >= span[0]) offset += span[1] - span[0];
          const mutated = Uint8Array.from(line);
          mutated[offset] = ((mutated[offset] as number) + delta) % 256;
          const copy = lines.map((l, i) => (i === lineIndex ? mutated : l));
          const tampered = copy.map((l) => `${decoder.decode(l)}\n`).join('');
          const result = await verifyExport(exportLines(tampered));
          expect(result.ok, `line ${lineIndex + 1} byte ${offset}`).toBe(false);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('detects reordered, dropped and cut-off events', async () => {
    const lines = eventLines();
    const swap = [...lines];
    [swap[3], swap[4]] = [swap[4] as string, swap[3] as string];
    expect((await verifyExport(withNewlines(swap))).problem?.kind).toBe('revision-order');
    const dropped = lines.filter((_, i) => i !== 5);
    expect((await verifyExport(withNewlines(dropped))).problem).toMatchObject({
      kind: 'revision-order',
      line: 6,
      revision: 5,
    });
    expect((await verifyExport(withNewlines(lines.slice(0, -1)))).problem?.kind).toBe('truncated');
    expect((await verifyExport([])).problem?.kind).toBe('empty');
    const recorded = lines.map((l, i) =>
      i === 2 ? l.replace(/"recordedAt":"2024/, '"recordedAt":"2023') : l,
    );
    expect((await verifyExport(withNewlines(recorded))).problem).toMatchObject({
      kind: 'hash-chain',
      line: 3,
      revision: 1,
    });
  });
});

describe('every byte of an export is checked', () => {
  const problemOf = async (file: string | Uint8Array) => (await verifyExport([file])).problem;
  const lineCount = () => eventLines().length;
  /** The file with line `n` (1-based) replaced. */
  const replaceLine = (n: number, edit: (line: string) => string) =>
    withNewlines(eventLines().map((l, i) => (i === n - 1 ? edit(l) : l))).join('');

  it('verifies the file as written however it is cut into chunks, text or bytes', async () => {
    const bytes = new TextEncoder().encode(text);
    await fc.assert(
      fc.asyncProperty(fc.uniqueArray(fc.nat(bytes.length), { maxLength: 8 }), async (cuts) => {
        const at = [0, ...cuts.sort((a, b) => a - b), bytes.length];
        const parts = at.slice(1).map((end, i) => bytes.subarray(at[i] as number, end));
        const asBytes = await verifyExport(parts);
        expect(asBytes.problem).toBeNull();
        const pieces = at.slice(1).map((end, i) => text.slice(at[i] as number, end));
        expect((await verifyExport(pieces)).problem).toBeNull();
      }),
      { numRuns: 30 },
    );
  });

  it('refuses \\r, blank or whitespace-only lines, and a last line without its newline', async () => {
    const last = lineCount();
    expect(await problemOf(text.replaceAll('\n', '\r\n'))).toMatchObject({
      kind: 'malformed-line',
      line: 1,
      detail: expect.stringContaining('carriage return'),
    });
    expect(await problemOf(replaceLine(4, (l) => `${l}\r`))).toMatchObject({
      kind: 'malformed-line',
      line: 4,
    });
    const lines = withNewlines(eventLines());
    const blankAt = (n: number, blank: string) =>
      [...lines.slice(0, n - 1), `${blank}\n`, ...lines.slice(n - 1)].join('');
    expect(await problemOf(blankAt(4, ''))).toMatchObject({
      kind: 'malformed-line',
      line: 4,
      detail: 'the line is blank',
    });
    expect(await problemOf(blankAt(2, ' \t'))).toMatchObject({
      kind: 'malformed-line',
      line: 2,
      detail: 'the line holds only whitespace',
    });
    expect(await problemOf(`${text}\n`)).toMatchObject({ kind: 'malformed-line', line: last + 1 });
    expect(await problemOf(`${text}  `)).toMatchObject({ kind: 'malformed-line', line: last + 1 });
    expect(await problemOf(text.slice(0, -1))).toMatchObject({
      kind: 'malformed-line',
      line: last,
      detail: expect.stringContaining('does not end with a newline'),
    });
  });

  it('refuses a file without its header, and a header announcing no events', async () => {
    expect(await problemOf(withNewlines(eventLines().slice(1)).join(''))).toMatchObject({
      kind: 'missing-header',
      line: 1,
    });
    // The service exports only missions that have events (exportMission answers null otherwise).
    const none = exportHeader({ missionId, events: 0, lastHash: null });
    expect(await problemOf(none)).toMatchObject({
      kind: 'malformed-header',
      line: 1,
      detail: expect.stringContaining('no events'),
    });
  });

  it("refuses positions that are no store's, or of two stores' forms in one file", async () => {
    const position = (n: number, to: string) =>
      replaceLine(n, (l) => l.replace(/"position":"[^"]*"/, `"position":${JSON.stringify(to)}`));
    const sqlite = (events()[1] as RecordedEvent).position;
    for (const bad of [
      'pos-a',
      `${sqlite} `,
      ` ${sqlite}`,
      sqlite.slice(1),
      `${sqlite}0`,
      '0'.repeat(20),
      '',
    ]) {
      expect(await problemOf(position(3, bad)), bad).toMatchObject({
        kind: 'malformed-event',
        line: 3,
        revision: 1,
        detail: expect.stringContaining("is no store's position"),
      });
    }
    // Each of the other stores' forms alone is a position (positions are outside the chain)...
    const postgres = (n: number) => `${'0'.repeat(19)}9-${String(n).padStart(20, '0')}`;
    const esdb = (n: number) => `${String(n).padStart(20, '0')}/${String(n).padStart(20, '0')}`;
    for (const form of [postgres, esdb]) {
      const moved = withNewlines(
        eventLines().map((l, i) =>
          i === 0 ? l : l.replace(/"position":"[^"]*"/, `"position":${JSON.stringify(form(i))}`),
        ),
      ).join('');
      expect((await verifyExport([moved])).problem).toBeNull();
    }
    // ...but one file holds one store's.
    expect(await problemOf(position(4, postgres(1)))).toMatchObject({
      kind: 'malformed-event',
      line: 4,
      detail: expect.stringContaining("of PostgreSQL's form, the earlier ones of SQLite's"),
    });
  });

  it("refuses any line that is not exactly the exporter's serialisation of what it parses to", async () => {
    const edits: [string, (l: string) => string][] = [
      ['a space after a colon', (l) => l.replace('"revision":', '"revision": ')],
      ['an escaped letter', (l) => l.replace('"stream":"m', '"stream":"\\u006d')],
      ['a number written differently', (l) => l.replace(/"revision":(\d+)/, '"revision":$1.0')],
      ['a key repeated', (l) => l.replace('{"id":', '{"id":"x","id":')],
      [
        'data keys unsorted',
        (l) => l.replace(/"data":\{"([^"]+)":("[^"]*"),"([^"]+)":("[^"]*")/, '"data":{"$3":$4,"$1":$2'),
      ],
    ];
    for (const [what, edit] of edits) {
      const file = replaceLine(3, edit);
      expect(file, what).not.toBe(text);
      expect(await problemOf(file), what).toMatchObject({ kind: 'non-canonical-line', line: 3 });
    }
    expect(await problemOf(replaceLine(1, (l) => l.replace(':', ': ')))).toMatchObject({
      kind: 'non-canonical-line',
      line: 1,
    });
  });

  it('refuses bytes that are not UTF-8 and a byte order mark', async () => {
    const bytes = new TextEncoder().encode(text);
    const third = text.split('\n').slice(0, 2).join('\n').length + 1 + 10;
    for (const bad of [[0xff], [0xc0, 0xaf], [0xe2, 0x82], [0xed, 0xa0, 0x80]]) {
      const damaged = new Uint8Array([...bytes.subarray(0, third), ...bad, ...bytes.subarray(third)]);
      expect(await problemOf(damaged), String(bad)).toMatchObject({
        kind: 'encoding',
        line: 3,
        detail: 'the line is not valid UTF-8',
      });
    }
    expect(await problemOf(new Uint8Array([0xef, 0xbb, 0xbf, ...bytes]))).toMatchObject({
      kind: 'encoding',
      line: 1,
      detail: expect.stringContaining('byte order mark'),
    });
    expect(await problemOf(`\uFEFF${text}`)).toMatchObject({ kind: 'encoding', line: 1 });
  });

  it('refuses the file with any one byte inserted or deleted anywhere, positions included', async () => {
    const bytes = new TextEncoder().encode(text);
    await fc.assert(
      fc.asyncProperty(
        fc.nat(bytes.length),
        fc.integer({ min: 0, max: 255 }),
        fc.boolean(),
        async (offset, byte, insert) => {
          const changed = insert
            ? new Uint8Array([...bytes.subarray(0, offset), byte, ...bytes.subarray(offset)])
            : new Uint8Array([...bytes.subarray(0, offset), ...bytes.subarray(offset + 1)]);
          if (!insert && offset === bytes.length) return;
          const result = await verifyExport([changed]);
          expect(result.ok, `${insert ? 'insert' : 'delete'} ${byte} at ${offset}`).toBe(false);
        },
      ),
      { numRuns: 400 },
    );
  });
});

describe('events this code cannot read', () => {
  it('are intact but listed, and the export does not verify as whole', async () => {
    const renamed = forge((all) =>
      all.map((e) => (e.type === 'MandateRecorded' ? { ...e, type: 'MandateRevoked' } : e)),
    );
    const revision = events().findIndex((e) => e.type === 'MandateRecorded');
    expect(revision).toBeGreaterThan(0);
    const result = await verifyExport(exportLines(renamed));
    expect(result.problem).toBeNull();
    expect(result.ok).toBe(false);
    expect(result.unreadableCount).toBe(1);
    expect(result.unreadable).toEqual([
      {
        line: revision + 2,
        revision,
        eventId: events()[revision]?.id,
        type: 'MandateRevoked',
        reason: 'unknown-event-type',
        detail: `event at revision ${revision} cannot be read by the domain (unknown-event-type)`,
      },
    ]);
    expect(
      (await verdictFromExport(exportLines(renamed), { asOf: '2024-05-01T00:00:00Z' })).verdict,
    ).toBeNull();
    const intact = await verifyExport(exportLines(text));
    expect({ ok: intact.ok, unreadable: intact.unreadable, count: intact.unreadableCount }).toEqual({
      ok: true,
      unreadable: [],
      count: 0,
    });
  });
});

describe('anchors', () => {
  const original = () => events();
  const anchorsOf = (known: readonly RecordedEvent[], source = 'the earlier export'): ExportAnchors => ({
    stream: `mission-${missionId}`,
    source,
    lastRevision: known.length - 1,
    lastSource: source,
    expected: (revision) => {
      const event = known[revision];
      return event ? [{ hash: event.hash, source }] : [];
    },
  });

  it('a rewritten history, re-chained, verifies alone but not against an earlier export', async () => {
    // A unit's readiness report inflated, as a forger would, every later hash recomputed.
    const forged = original().findIndex((e) => e.type === 'UnitReadinessReported');
    const rewritten = forge((all) =>
      all.map((e, i) => {
        if (i !== forged) return e;
        const data = e.data as { officersReady: number };
        return { ...e, data: { ...data, officersReady: data.officersReady + 100 } };
      }),
    );
    expect((await verifyExport(exportLines(rewritten))).ok).toBe(true);
    expect(
      (await verifyExport(exportLines(rewritten), { anchors: anchorsOf(original()) })).problem,
    ).toMatchObject({
      kind: 'anchor-mismatch',
      line: forged + 2,
      revision: forged,
      detail: expect.stringContaining(`revision ${forged} differs from the earlier export`),
    });
    // An earlier export is anchored in a later one that only appended events.
    expect(
      (await verifyExport(exportLines(text), { anchors: anchorsOf(original().slice(0, 10)) })).problem,
    ).toBeNull();
  });

  it('finds the first revision that differs when events are removed, reordered or cut off', async () => {
    const anchors = anchorsOf(original());
    const removed = forge((all) => all.filter((_, i) => i !== 8));
    expect((await verifyExport(exportLines(removed), { anchors })).problem).toMatchObject({
      kind: 'anchor-mismatch',
      revision: 8,
    });
    const reordered = forge((all) => {
      const copy = [...all];
      [copy[3], copy[4]] = [copy[4] as RecordedEvent, copy[3] as RecordedEvent];
      return copy;
    });
    expect((await verifyExport(exportLines(reordered), { anchors })).problem).toMatchObject({
      kind: 'anchor-mismatch',
      revision: 3,
    });
    const last = original().length - 1;
    const cut = forge((all) => all.slice(0, -1));
    expect((await verifyExport(exportLines(cut))).problem).toBeNull();
    expect((await verifyExport(exportLines(cut), { anchors })).problem).toMatchObject({
      kind: 'anchor-mismatch',
      revision: last,
      detail: `revision ${last} is missing: the export ends at revision ${last - 1}, the earlier export holds revision ${last}`,
    });
  });

  it('refuses an export of another mission', async () => {
    const other: ExportAnchors = { ...anchorsOf(original()), stream: 'mission-other' };
    expect((await verifyExport(exportLines(text), { anchors: other })).problem).toMatchObject({
      kind: 'anchor-mismatch',
      line: 1,
    });
  });
});
