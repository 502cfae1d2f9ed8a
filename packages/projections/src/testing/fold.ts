import type { RecordedEvent } from '@muster/event-store';
import { type HistoryEntry, MissionProcessor, newRuntime, newSink } from '../readiness/processor.js';

/**
 * Folds one mission's events, in stream order, as the readiness projection does (verdicts
 * evaluated, history recorded, no change feed), with nothing read or written: the domain's share
 * of a rebuild, which `bench:replay` measures as a ceiling no runner can pass.
 */
export function foldMission(
  missionId: string,
  events: Iterable<RecordedEvent>,
): { events: number; history: HistoryEntry[]; skipped: number } {
  const processor = new MissionProcessor();
  const runtime = newRuntime(missionId);
  const sink = newSink({ changes: false });
  let count = 0;
  for (const event of events) {
    processor.apply(runtime, event, sink);
    count++;
  }
  return { events: count, history: sink.history, skipped: sink.skipped.length };
}
