import { type RecordedEvent, sequencePosition } from '@muster/event-store';
import { evaluate, nextChangeAt, policySchema } from '@muster/readiness';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { mulberry32, syntheticMissionEventData, syntheticMissionEvents } from '../testing/synthetic.js';
import { MissionProcessor, newRuntime, newSink } from './processor.js';

/** A mission's stream as a store would return it, with record times that mostly follow world time. */
function recorded(
  missionId: string,
  seed: number,
  count: number,
  profile: 'volatile' | 'steady',
): RecordedEvent[] {
  const random = mulberry32(seed ^ 0x5bd1e995);
  let clock = Date.UTC(2024, 0, 1);
  return [...syntheticMissionEventData({ missionId, events: count, seed, profile })].map((e, i) => {
    const occurred = Date.parse(String(e.metadata?.occurredAt));
    const r = random();
    // Mostly at or after the world time; now and then a clock that went backwards.
    clock = r < 0.05 ? clock - Math.floor(random() * 5) * 3_600_000 : Math.max(clock + 60_000, occurred);
    return {
      id: e.id as string,
      stream: `mission-${missionId}`,
      revision: i,
      position: sequencePosition(i + 1),
      type: e.type,
      data: e.data,
      metadata: e.metadata as RecordedEvent['metadata'],
      recordedAt: new Date(clock).toISOString(),
      hash: '',
      previousHash: null,
    };
  });
}

describe('the mission processor', () => {
  it('generates valid policy amendments in its volatile mix', () => {
    const amendments = [...syntheticMissionEvents({ missionId: 'p', events: 3000, seed: 3 })].filter(
      (e) => e.type === 'PolicyAmended',
    );
    expect(amendments.length).toBeGreaterThan(3);
    for (const a of amendments) expect(policySchema.safeParse(a.data.policy).success).toBe(true);
  });

  it('records the same history with its shortcuts as when it evaluates after every event', () => {
    fc.assert(
      fc.property(
        fc.nat(1_000_000),
        fc.integer({ min: 1, max: 400 }),
        fc.constantFrom('volatile' as const, 'steady' as const),
        fc.nat(300),
        (seed, count, profile, daysAfter) => {
          const events = recorded('m', seed, count, profile);
          const fast = new MissionProcessor();
          const slow = new MissionProcessor({ exhaustive: true });
          const a = newRuntime('m');
          const b = newRuntime('m');
          const sinkA = newSink();
          const sinkB = newSink();
          for (const event of events) {
            fast.apply(a, event, sinkA);
            slow.apply(b, event, sinkB);
            // The evaluation instant, verdict and next change agree after every event...
            expect(a.evaluatedAt).toBe(b.evaluatedAt);
            expect(a.nextAt).toBe(b.nextAt);
            expect(JSON.stringify(a.verdict?.phases)).toBe(JSON.stringify(b.verdict?.phases));
            // ...and are what evaluate and nextChangeAt say from scratch.
            if (a.evaluatedAt !== null && a.state.mission) {
              const at = new Date(a.evaluatedAt).toISOString();
              expect(JSON.stringify(a.verdict?.phases)).toBe(JSON.stringify(evaluate(a.state, at).phases));
              const next = nextChangeAt(a.state, at);
              expect(a.nextAt).toBe(next === null ? null : Date.parse(next));
            }
          }
          const until = (a.evaluatedAt ?? 0) + daysAfter * 86_400_000;
          fast.advance(a, until, sinkA);
          slow.advance(b, until, sinkB);
          expect(sinkA).toEqual(sinkB);
          expect(sinkA.history.map((h) => h.seq)).toEqual(sinkA.history.map((_, i) => i + 1));
          expect(new Set(sinkA.changes.map((c) => c.changeId)).size).toBe(sinkA.changes.length);
        },
      ),
      { numRuns: 60 },
    );
  }, 120_000);

  it('evaluates time-caused changes in order, each at its own instant', () => {
    let timedTotal = 0;
    for (let seed = 1; seed <= 20; seed++) {
      const events = recorded('t', seed, 400, 'volatile');
      const processor = new MissionProcessor();
      const rt = newRuntime('t');
      const sink = newSink();
      for (const e of events) processor.apply(rt, e, sink);
      processor.advance(rt, (rt.evaluatedAt ?? 0) + 365 * 86_400_000, sink);
      const timed = sink.history.filter((h) => h.cause === 'time');
      timedTotal += timed.length;
      for (const h of timed) {
        expect(h.occurredAt).toBe(h.recordedAt);
        expect(h.causeEventId).toBeNull();
      }
      const instants = sink.history.map((h) => h.evaluatedAt);
      expect(instants).toEqual([...instants].sort((x, y) => x - y));
    }
    expect(timedTotal).toBeGreaterThan(0);
  });
});
