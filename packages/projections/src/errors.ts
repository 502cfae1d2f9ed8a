/**
 * The package's single error registry. Codes are stable: the API turns them into
 * `application/problem+json` with the suggested status, and clients branch on them.
 */
export const PROJECTION_ERRORS = {
  'projection-not-found': { status: 404, message: 'No projection with this name is registered' },
  'rebuild-in-progress': {
    status: 409,
    message: 'A rebuild of this projection is already running in another process',
  },
  'rebuild-failed': { status: 500, message: 'The rebuild stopped before it could swap in the new tables' },
  'projections-closed': { status: 503, message: 'The projections runner has been closed' },
  'lease-lost': { status: 503, message: 'Another runner took over this projection' },
  'revision-gap': {
    status: 500,
    message: 'An event arrived out of stream order; the projection restarts from its checkpoint',
  },
  'subscription-ended': { status: 503, message: 'The subscription to the event store ended' },
  'invalid-instant': { status: 400, message: 'The instant is not an ISO 8601 instant' },
  'invalid-position': { status: 400, message: 'The position is not a position of this store' },
  'invalid-export': { status: 400, message: 'The export is not a Muster NDJSON export' },
} as const;

export type ProjectionErrorCode = keyof typeof PROJECTION_ERRORS;

export class ProjectionError extends Error {
  readonly code: ProjectionErrorCode;
  readonly status: number;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(
    code: ProjectionErrorCode,
    details: Record<string, unknown> = {},
    options?: { cause?: unknown },
  ) {
    const detail = typeof details.detail === 'string' ? `: ${details.detail}` : '';
    super(`${PROJECTION_ERRORS[code].message}${detail}`, options);
    this.name = 'ProjectionError';
    this.code = code;
    this.status = PROJECTION_ERRORS[code].status;
    this.details = Object.freeze({ ...details });
  }
}

export function isProjectionError(error: unknown): error is ProjectionError {
  return error instanceof ProjectionError;
}
