/**
 * The package's single error registry. Codes are stable: the API turns them into
 * `application/problem+json` with the suggested status, and clients branch on them.
 */
export const DOMAIN_ERRORS = {
  'invalid-command': { status: 422, message: 'The command does not match its schema' },
  'invalid-instant': { status: 422, message: 'The instant is not a valid ISO 8601 instant' },
  'invalid-mission-definition': {
    status: 422,
    message:
      'A mission is defined from exactly one of a template or a full policy, with a name and a lead nation',
  },
  'mission-mismatch': { status: 422, message: 'The command names another mission than this stream holds' },
  'mission-not-found': { status: 404, message: 'The mission has not been defined' },
  'mission-already-defined': { status: 409, message: 'The mission is already defined' },
  'effective-before-occurrence': {
    status: 422,
    message: 'A policy amendment cannot take effect before it was made',
  },
  'effective-before-definition': {
    status: 422,
    message: 'A policy amendment cannot take effect before the mission was defined',
  },
  'pledge-not-found': { status: 404, message: 'No pledge with this id in the mission' },
  'pledge-already-exists': { status: 409, message: 'A pledge with this id already exists in the mission' },
  'pledge-withdrawn': { status: 409, message: 'The pledge has been withdrawn' },
  'pledge-already-confirmed': { status: 409, message: 'The pledge is already confirmed' },
  'pledge-not-confirmed': { status: 409, message: 'The pledge must be confirmed first' },
  'pledge-already-fulfilled': { status: 409, message: 'The pledge has already been fulfilled' },
  'base-amount-mismatch': {
    status: 422,
    message: 'A pledge in the base currency must declare a base-currency value equal to its amount',
  },
  'council-already-approved': { status: 409, message: 'The council is already approved' },
  'council-not-approved': { status: 409, message: 'No council is approved' },
  'mandate-already-recorded': { status: 409, message: 'A mandate with this id is already recorded' },
  'invalid-interval': { status: 422, message: 'validUntil must be later than validFrom' },
  'agreement-already-signed': { status: 409, message: 'This agreement is already signed' },
  'court-order-already-active': { status: 409, message: 'This court order is already barring deployment' },
  'court-order-not-active': { status: 409, message: 'This court order is not barring deployment' },
  'approval-already-granted': { status: 409, message: 'This approval is already granted' },
  'approval-not-granted': { status: 409, message: 'This approval has not been granted' },
  'reconnaissance-team-already-prepared': {
    status: 409,
    message: 'The reconnaissance team is already prepared',
  },
  'reconnaissance-team-not-prepared': {
    status: 409,
    message: 'The reconnaissance team must be prepared first',
  },
  'reconnaissance-already-completed': { status: 409, message: 'The reconnaissance is already completed' },
  'deployment-already-suspended': { status: 409, message: 'Deployment is already suspended' },
  'deployment-not-suspended': { status: 409, message: 'Deployment is not suspended' },
  'dated-before-latest-change': {
    status: 409,
    message: 'The change is dated before the latest recorded change of the same blocker, council or approval',
  },
  'phase-not-found': { status: 404, message: 'The policy in force has no such phase' },
  'phase-already-authorised': { status: 409, message: 'Deployment of this phase is already authorised' },
  'phase-not-ready': {
    status: 409,
    message: 'The phase is not ready; authorising it needs an override with a justification',
  },
  'unknown-event-type': { status: 500, message: 'The stored event has a type this version does not know' },
  'unsupported-event-version': {
    status: 500,
    message: 'The stored event has a schema version this version cannot read',
  },
  'invalid-event': { status: 500, message: 'The stored event does not match its schema' },
} as const satisfies Record<string, { status: number; message: string }>;

export type DomainErrorCode = keyof typeof DOMAIN_ERRORS;

export type ErrorDetails = { readonly [key: string]: unknown };

export class DomainError extends Error {
  readonly code: DomainErrorCode;
  readonly status: number;
  readonly details: ErrorDetails;

  constructor(code: DomainErrorCode, details: ErrorDetails = {}, message?: string) {
    super(message ?? DOMAIN_ERRORS[code].message);
    this.name = 'DomainError';
    this.code = code;
    this.status = DOMAIN_ERRORS[code].status;
    this.details = details;
  }
}

export function isDomainError(error: unknown, code?: DomainErrorCode): error is DomainError {
  return error instanceof DomainError && (code === undefined || error.code === code);
}
