export type { Clock, WebhookLogger } from './context.js';
export { messageId } from './context.js';
export { Dispatcher, type DispatcherOptions } from './dispatcher.js';
export {
  type FieldProblem,
  type FieldProblemCode,
  isWebhookError,
  WEBHOOK_ERRORS,
  WebhookError,
  type WebhookErrorCode,
} from './errors.js';
export { type AddressVerdict, type Cidr, checkAddress, parseCidr, parseIp } from './ip-ranges.js';
export { changeBody, readinessLink, testBody } from './payload.js';
export { Planner, type PlanResult } from './planner.js';
export { DEFAULT_RETRY_SCHEDULE_MS, nextRetryDelay, parseRetryAfter, type RetryInput } from './retry.js';
export { webhookMigrations } from './schema.js';
export { classifyError, RESPONSE_BODY_LIMIT, type SendOutcome } from './sender.js';
export {
  createWebhookService,
  DEFAULT_MAX_IN_FLIGHT,
  DEFAULT_MAX_SUBSCRIPTIONS_PER_AGENCY,
  MAX_LIVE_SECRETS,
  MAX_PAYLOAD_BYTES,
  REPLAY_CAP,
  WebhookService,
  type WebhookServiceOptions,
} from './service.js';
export { generateSecret, SECRET_PREFIX, signatureHeader, signatureOf } from './signing.js';
export {
  BlockedAddressError,
  type EgressPolicy,
  egressPolicy,
  type Resolver,
  validateWebhookUrl,
} from './ssrf.js';
export type {
  Attempt,
  Delivery,
  DeliveryStatus,
  DeliveryTrigger,
  DeliveryWithPayload,
  DisabledReason,
  ErrorClass,
  OperationalEvent,
  OperationalEventType,
  Page,
  ReplayResult,
  SecretInfo,
  Subscription,
  SubscriptionStatus,
  SubscriptionWithSecret,
} from './types.js';
