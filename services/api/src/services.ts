import type { EventStore, SqlClient } from '@muster/event-store';
import type { ProjectionsHandle, ReadinessQueries } from '@muster/projections';
import type { WebhookService } from '@muster/webhooks';
import type { Logger } from 'pino';
import type { AgencyRegistry, AgencyService } from './auth/agencies.js';
import type { Config } from './config.js';
import type { IdempotencyStore } from './idempotency.js';
import type { Metrics } from './metrics.js';
import type { MissionReadModel } from './missions/mission-queries.js';
import type { MissionWriter } from './missions/mission-writer.js';

/** What the routes work with, built once by buildApp. */
export interface Services {
  config: Readonly<Config>;
  store: EventStore;
  sql: SqlClient;
  logger: Logger;
  clock: () => Date;
  metrics: Metrics;
  registry: AgencyRegistry;
  agencies: AgencyService;
  idempotency: IdempotencyStore;
  writer: MissionWriter;
  readModel: MissionReadModel;
  projections: ProjectionsHandle;
  queries: ReadinessQueries;
  webhooks: WebhookService;
}
