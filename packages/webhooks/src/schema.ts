import type { SqlMigration } from '@muster/event-store';

/**
 * The webhook tables. Instants are epoch milliseconds (BIGINT) so that the same statements compare
 * them in both dialects. The outbox is `webhook_messages` (what to send, signed as stored) and
 * `webhook_deliveries` (one row per send to do: status, schedule, lease); `webhook_attempts` is the
 * attempt log; `webhook_planner` holds the planner's checkpoint on the change feed, advanced in the
 * same transaction as the rows it planned.
 */
const TABLES = `
CREATE TABLE IF NOT EXISTS webhook_subscriptions (
  id TEXT PRIMARY KEY,
  agency_id TEXT NOT NULL,
  url TEXT NOT NULL,
  missions TEXT NOT NULL,
  event_types TEXT NOT NULL,
  description TEXT NOT NULL DEFAULT '',
  status TEXT NOT NULL,
  disabled_reason TEXT,
  disabled_at BIGINT,
  failing_since BIGINT,
  last_failure_at BIGINT,
  starts_after_seq BIGINT NOT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_subscriptions_agency ON webhook_subscriptions (agency_id, id);

CREATE TABLE IF NOT EXISTS webhook_secrets (
  subscription_id TEXT NOT NULL,
  n INTEGER NOT NULL,
  secret TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  expires_at BIGINT,
  PRIMARY KEY (subscription_id, n)
);

CREATE TABLE IF NOT EXISTS webhook_versions (
  subscription_id TEXT NOT NULL,
  mission_id TEXT NOT NULL,
  last_version BIGINT NOT NULL,
  PRIMARY KEY (subscription_id, mission_id)
);

CREATE TABLE IF NOT EXISTS webhook_messages (
  id TEXT PRIMARY KEY,
  subscription_id TEXT NOT NULL,
  event_type TEXT NOT NULL,
  mission_id TEXT,
  version BIGINT,
  change_id TEXT,
  change_seq BIGINT,
  cause_position TEXT,
  body TEXT NOT NULL,
  rejected_bytes BIGINT,
  exhausted_at BIGINT,
  created_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_messages_subscription ON webhook_messages (subscription_id, created_at);

CREATE TABLE IF NOT EXISTS webhook_deliveries (
  id TEXT PRIMARY KEY,
  message_id TEXT NOT NULL,
  subscription_id TEXT NOT NULL,
  queue TEXT NOT NULL,
  version BIGINT NOT NULL,
  trigger TEXT NOT NULL,
  status TEXT NOT NULL,
  head INTEGER NOT NULL DEFAULT 0,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at BIGINT NOT NULL,
  lease_owner TEXT,
  lease_until BIGINT,
  last_attempt_at BIGINT,
  last_status_code INTEGER,
  last_error_class TEXT,
  delivered_at BIGINT,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_deliveries_due_heads ON webhook_deliveries (next_attempt_at) WHERE head = 1 AND status = 'pending';
CREATE INDEX IF NOT EXISTS webhook_deliveries_queue ON webhook_deliveries (subscription_id, queue, status, version, id);
CREATE INDEX IF NOT EXISTS webhook_deliveries_queue_head ON webhook_deliveries (subscription_id, queue) WHERE head = 1 AND status = 'pending';
CREATE INDEX IF NOT EXISTS webhook_deliveries_listing ON webhook_deliveries (subscription_id, id);
CREATE INDEX IF NOT EXISTS webhook_deliveries_message ON webhook_deliveries (message_id);

CREATE TABLE IF NOT EXISTS webhook_attempts (
  id TEXT PRIMARY KEY,
  delivery_id TEXT NOT NULL,
  subscription_id TEXT NOT NULL,
  message_id TEXT NOT NULL,
  attempt INTEGER NOT NULL,
  trigger TEXT NOT NULL,
  dispatcher_id TEXT NOT NULL,
  started_at BIGINT NOT NULL,
  latency_ms INTEGER NOT NULL,
  outcome TEXT NOT NULL,
  status_code INTEGER,
  error_class TEXT,
  error_message TEXT,
  response_body TEXT
);
CREATE INDEX IF NOT EXISTS webhook_attempts_delivery ON webhook_attempts (delivery_id, started_at);
CREATE INDEX IF NOT EXISTS webhook_attempts_age ON webhook_attempts (started_at);

CREATE TABLE IF NOT EXISTS webhook_operational_events (
  id TEXT PRIMARY KEY,
  agency_id TEXT NOT NULL,
  subscription_id TEXT NOT NULL,
  type TEXT NOT NULL,
  data TEXT NOT NULL,
  created_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_operational_events_agency ON webhook_operational_events (agency_id, id);

CREATE TABLE IF NOT EXISTS webhook_planner (
  name TEXT PRIMARY KEY,
  last_seq BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);
INSERT INTO webhook_planner (name, last_seq, updated_at) VALUES ('readiness-changes', 0, 0) ON CONFLICT (name) DO NOTHING;

CREATE TABLE IF NOT EXISTS webhook_leases (
  name TEXT PRIMARY KEY,
  owner TEXT NOT NULL,
  expires_at BIGINT NOT NULL
);`;

/**
 * The queue indexes hold pending deliveries only: a delivered or failed row leaves them (one index
 * write instead of moving within them), and they stay as small as the backlog instead of growing
 * with 30 days of history. One index serves both questions the queues ask: is there a pending
 * head (`head = 1`), and which pending delivery is next (`head = 0 ORDER BY version, id`).
 */
const PENDING_QUEUES = `
CREATE INDEX IF NOT EXISTS webhook_deliveries_pending ON webhook_deliveries (subscription_id, queue, head, version, id) WHERE status = 'pending';
DROP INDEX IF EXISTS webhook_deliveries_queue_head;
DROP INDEX IF EXISTS webhook_deliveries_queue;`;

export const webhookMigrations: readonly SqlMigration[] = [
  { id: 'webhooks:001', sqlite: TABLES, postgres: TABLES },
  { id: 'webhooks:002', sqlite: PENDING_QUEUES, postgres: PENDING_QUEUES },
];

export const PLANNER_CHECKPOINT = 'readiness-changes';
export const DISPATCHER_LEASE = 'webhook-dispatcher';
