import { createHash, randomBytes } from 'node:crypto';
import { type SqlClient, sequencePosition } from '@muster/event-store';
import { appendChanges, type ChangeKind, type ReadinessChange } from '@muster/projections';

let counter = 0;

/** A change as the readiness projection would write it. */
export function change(
  missionId: string,
  overrides: Partial<Omit<ReadinessChange, 'seq'>> = {},
): Omit<ReadinessChange, 'seq'> {
  counter++;
  const kind: ChangeKind = overrides.kind ?? 'readiness.changed';
  const at = overrides.occurredAt ?? Date.parse('2025-03-01T00:00:00Z') + counter * 1000;
  return {
    changeId: `chg_${randomBytes(8).toString('hex')}`,
    missionId,
    kind,
    subject: kind === 'pledge.changed' ? `pledge-${counter}` : 'main-deployment',
    payload:
      kind === 'pledge.changed'
        ? { pledgeId: `pledge-${counter}`, pledger: 'canada', kind: 'funding', status: 'confirmed' }
        : {
            phase: 'main-deployment',
            title: 'Main deployment',
            before: 'not-ready',
            after: counter % 2 === 0 ? 'ready' : 'not-ready',
            unmet: [{ id: 'officers-ready', missing: `officers ready ${counter} of 1,000` }],
            verdict: { status: 'not-ready' },
          },
    causeEventId: `evt_${counter}`,
    causeRevision: counter,
    causeHash: createHash('sha256').update(`evt_${counter}`).digest('hex'),
    causePosition: sequencePosition(counter),
    occurredAt: at,
    recordedAt: at + 500,
    ...overrides,
  };
}

/** Commits changes to the feed in one transaction, as the projection does. */
export function produce(
  sql: SqlClient,
  changes: Array<Omit<ReadinessChange, 'seq'>>,
): Promise<ReadinessChange[]> {
  return sql.transaction((tx) => appendChanges(tx, changes));
}
