import { computeEventHash, type RecordedEvent } from '@muster/event-store';
import { exportHeader, exportLine } from '../export.js';

/**
 * What a forger with an export alone can make: the events edited, every hash recomputed, a new
 * header. It verifies as intact on its own; only an anchor (an earlier export, a known hash) shows it.
 */
export function forgeExport(
  missionId: string,
  events: readonly RecordedEvent[],
  edit: (events: RecordedEvent[]) => RecordedEvent[],
): string {
  let previous: string | null = null;
  const chained = edit([...events]).map((e, revision) => {
    const event = { ...e, revision, previousHash: previous };
    event.hash = computeEventHash(event);
    previous = event.hash;
    return event;
  });
  return (
    exportHeader({ missionId, events: chained.length, lastHash: previous }) + chained.map(exportLine).join('')
  );
}
