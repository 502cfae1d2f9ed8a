/**
 * The error registry of the webhooks package: every error a caller can see has a stable code, the
 * HTTP status a service should answer with, and a title. Routes pass these through unchanged as
 * `application/problem+json` (code, status, title, the message as detail, `details` as extensions).
 */
export const WEBHOOK_ERRORS = {
  'webhook-validation-failed': { status: 400, title: 'The webhook request is not valid' },
  'webhook-url-not-allowed': { status: 422, title: 'The webhook URL is not allowed' },
  'webhook-not-found': { status: 404, title: 'No such webhook subscription' },
  'webhook-delivery-not-found': { status: 404, title: 'No such webhook delivery' },
  'webhook-secret-limit': { status: 409, title: 'Too many live signing secrets' },
  'webhook-subscription-limit': { status: 409, title: 'Too many webhook subscriptions' },
  'webhook-service-stopped': { status: 503, title: 'The webhook service is stopping' },
  'webhook-invalid-config': { status: 500, title: 'The webhook service is misconfigured' },
  'webhook-secret-unreadable': { status: 500, title: 'A stored signing secret cannot be decrypted' },
} as const;

export type WebhookErrorCode = keyof typeof WEBHOOK_ERRORS;

/**
 * What is wrong with a field, in the words of the API's own validation errors (zod's issue codes),
 * so that a client reads every `validation-failed` answer the same way.
 */
export type FieldProblemCode =
  | 'invalid_type'
  | 'invalid_value'
  | 'invalid_format'
  | 'too_big'
  | 'unrecognized_keys'
  | 'custom';

/** One problem with one field of the input, for `webhook-validation-failed`. */
export interface FieldProblem {
  path: string;
  message: string;
  code: FieldProblemCode;
  /** The part of the request the field is in. */
  in: 'body' | 'query';
}

export class WebhookError extends Error {
  readonly code: WebhookErrorCode;
  readonly status: number;
  readonly title: string;
  /** Extra members for the problem document (field problems, limits, ...). */
  readonly details: Readonly<Record<string, unknown>>;

  constructor(
    code: WebhookErrorCode,
    message?: string,
    details: Record<string, unknown> = {},
    options?: { cause?: unknown },
  ) {
    super(message ?? WEBHOOK_ERRORS[code].title, options);
    this.name = 'WebhookError';
    this.code = code;
    this.status = WEBHOOK_ERRORS[code].status;
    this.title = WEBHOOK_ERRORS[code].title;
    this.details = Object.freeze({ ...details });
  }
}

export function isWebhookError(error: unknown): error is WebhookError {
  return error instanceof WebhookError;
}

export function validationError(problems: FieldProblem[]): WebhookError {
  const summary =
    problems.length === 1
      ? `${problems[0]?.path}: ${problems[0]?.message}`
      : `${problems.length} fields are not valid`;
  return new WebhookError('webhook-validation-failed', summary, { errors: problems });
}
