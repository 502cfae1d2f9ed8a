import type { ReadinessChange } from '@muster/projections';

/** Keys of `data` that this package sets; a change payload cannot override them. */
export const RESERVED_DATA_KEYS = ['missionId', 'subject', 'version', 'change', 'cause', 'links'] as const;

export function readinessLink(publicUrl: string, missionId: string): string {
  return `${publicUrl}/v1/missions/${encodeURIComponent(missionId)}/readiness`;
}

/**
 * The body of a change notification, `{type, timestamp, data}` by the Standard Webhooks
 * convention. `data` is the change's own payload (phase, verdict before and after, what is unmet,
 * the pledge, ...) with the mission, the subject, the per-(subscription, mission) version, the
 * change and its cause, and a link to the current readiness. Serialised once, at planning: the
 * dispatcher signs and sends these exact bytes on every attempt.
 */
export function changeBody(change: ReadinessChange, version: number, publicUrl: string): string {
  return changeBodyTemplate(change, publicUrl)(version);
}

/** Sits where the version goes while the body of a change is serialised once for all subscriptions. */
const VERSION_SLOT = `"@@muster-version-${Math.random().toString(36).slice(2)}@@"`;

/** Serialises a change once; the result fills in each subscription's version. */
export function changeBodyTemplate(change: ReadinessChange, publicUrl: string): (version: number) => string {
  const text = bodyWith(change, JSON.parse(VERSION_SLOT) as string, publicUrl);
  const at = text.indexOf(VERSION_SLOT);
  const before = text.slice(0, at);
  const after = text.slice(at + VERSION_SLOT.length);
  return (version) => `${before}${version}${after}`;
}

function bodyWith(change: ReadinessChange, version: number | string, publicUrl: string): string {
  const data = {
    ...change.payload,
    missionId: change.missionId,
    subject: change.subject,
    version,
    change: { id: change.changeId, seq: change.seq },
    cause: {
      eventId: change.causeEventId,
      revision: change.causeRevision,
      hash: change.causeHash,
      position: change.causePosition,
      occurredAt: new Date(change.occurredAt).toISOString(),
      recordedAt: new Date(change.recordedAt).toISOString(),
    },
    links: { readiness: readinessLink(publicUrl, change.missionId) },
  };
  return JSON.stringify({ type: change.kind, timestamp: new Date(change.occurredAt).toISOString(), data });
}

export function testBody(subscriptionId: string, now: number): string {
  return JSON.stringify({
    type: 'webhook.test',
    timestamp: new Date(now).toISOString(),
    data: {
      subscriptionId,
      message: 'A test delivery from Muster: if the signature verifies, the endpoint is ready.',
    },
  });
}
