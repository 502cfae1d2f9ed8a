import { mssHaitiScenario } from '@muster/readiness';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportLines, exportMission, verdictFromExport, verifyExport } from './export.js';
import { createReadinessProjection } from './readiness/projection.js';
import { createReadinessQueries } from './readiness/queries.js';
import { startProjections } from './runner.js';
import { ManualClock, openSqliteFixture, playMssHaiti } from './test-support/harness.js';

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
    expect((await verifyExport(swap)).problem?.kind).toBe('revision-order');
    const dropped = lines.filter((_, i) => i !== 5);
    expect((await verifyExport(dropped)).problem).toMatchObject({
      kind: 'revision-order',
      line: 6,
      revision: 5,
    });
    expect((await verifyExport(lines.slice(0, -1))).problem?.kind).toBe('truncated');
    expect((await verifyExport([])).problem?.kind).toBe('empty');
    const recorded = lines.map((l, i) =>
      i === 2 ? l.replace(/"recordedAt":"2024/, '"recordedAt":"2023') : l,
    );
    expect((await verifyExport(recorded)).problem).toMatchObject({
      kind: 'hash-chain',
      line: 3,
      revision: 1,
    });
  });

  it('verifies an export without a header line too', async () => {
    const result = await verifyExport(eventLines().slice(1));
    expect(result.ok).toBe(true);
    expect(result.header).toBeNull();
  });
});
