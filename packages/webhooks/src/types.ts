import type { ChangeKind } from '@muster/projections';

/** What the HTTP routes return: plain JSON-ready objects, instants as ISO 8601 strings. */

export type SubscriptionStatus = 'enabled' | 'disabled';

/** Why a subscription is disabled: a 410 from the endpoint, 5 days of failures, or its owner. */
export type DisabledReason = 'gone' | 'failing' | 'manual';

export interface SecretInfo {
  createdAt: string;
  /** Null for the current secret; the end of the overlap for a rotated one. */
  expiresAt: string | null;
}

export interface Subscription {
  id: string;
  url: string;
  /** Mission ids, or `*` for every mission. */
  missions: string[] | '*';
  eventTypes: ChangeKind[];
  description: string;
  status: SubscriptionStatus;
  disabledReason: DisabledReason | null;
  disabledAt: string | null;
  /** Start of the current run of failures (the 5-day rule), null when the last attempt succeeded. */
  failingSince: string | null;
  /** Live signing secrets, newest first (values are never shown again). */
  secrets: SecretInfo[];
  createdAt: string;
  updatedAt: string;
}

/** Returned by create and rotate only: the new secret, shown this once. */
export interface SubscriptionWithSecret extends Subscription {
  secret: string;
}

export type DeliveryStatus = 'pending' | 'delivered' | 'failed';
export type DeliveryTrigger = 'scheduled' | 'manual' | 'test';
export type ErrorClass = 'dns' | 'connect' | 'tls' | 'timeout' | 'http' | 'blocked';

export interface Delivery {
  id: string;
  messageId: string;
  subscriptionId: string;
  eventType: string;
  missionId: string | null;
  version: number | null;
  trigger: DeliveryTrigger;
  status: DeliveryStatus;
  attempts: number;
  /** When the next attempt is due; null unless the delivery is pending at the head of its queue. */
  nextAttemptAt: string | null;
  /** Pending behind an earlier delivery of its (subscription, mission) queue, which goes first. */
  waitingBehindEarlier: boolean;
  lastAttemptAt: string | null;
  lastStatusCode: number | null;
  lastErrorClass: ErrorClass | null;
  deliveredAt: string | null;
  createdAt: string;
}

export interface DeliveryWithPayload extends Delivery {
  /** The body exactly as signed and sent, parsed. */
  payload: unknown;
}

export interface Attempt {
  id: string;
  deliveryId: string;
  attempt: number;
  trigger: DeliveryTrigger;
  startedAt: string;
  latencyMs: number;
  outcome: 'succeeded' | 'failed';
  statusCode: number | null;
  errorClass: ErrorClass | null;
  errorMessage: string | null;
  /** The first 4 KiB of the response body. */
  responseBody: string | null;
}

export type OperationalEventType =
  | 'endpoint.disabled'
  | 'message.attempt.exhausted'
  | 'message.attempt.recovered'
  | 'message.rejected';

export interface OperationalEvent {
  id: string;
  type: OperationalEventType;
  subscriptionId: string;
  data: Record<string, unknown>;
  createdAt: string;
}

export interface Page<T> {
  items: T[];
  /** Pass as `after` for the next page; null on the last page. */
  next: string | null;
}

export interface ReplayResult {
  /** Deliveries created or moved to now. */
  replayed: number;
  /** Messages that already had a delivery waiting (moved to now instead of duplicated). */
  alreadyPending: number;
  /** Feed changes in the range that match the subscription but were never planned for it. */
  notPlanned: number;
  /** True when the per-call cap was reached; call again from `resumeAfter`. */
  truncated: boolean;
  resumeAfter: string | null;
}
