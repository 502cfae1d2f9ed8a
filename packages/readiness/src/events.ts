import { z } from 'zod';
import { TEMPLATE_NAMES, zodIssues } from './commands.js';
import { DomainError } from './errors.js';
import { FAST_DATA_PARSERS } from './event-checks.js';
import { canonicalInstant, instantSchema, isCanonicalInstant, isInstant } from './instant.js';
import { policySchema } from './policy.js';
import {
  capabilitySchema,
  currencySchema,
  moneySchema,
  noteSchema,
  PHASE_STATUSES,
  partySchema,
  slugSchema,
  titleSchema,
  UNIT_STATUSES,
  unitCodeSchema,
} from './vocabulary.js';

const note = noteSchema.nullable();
const referenceSchema = z.string().min(1).max(200);

const logisticsPledgedV1 = z.strictObject({
  pledgeId: slugSchema,
  pledger: partySchema,
  capability: capabilitySchema,
  quantity: z.int().min(1),
  description: note,
});

/** The data of each event type at its current schema version. */
export const eventDataSchemas = {
  MissionDefined: z.strictObject({
    missionId: slugSchema,
    name: titleSchema,
    leadNation: partySchema,
    baseCurrency: currencySchema,
    template: z.enum(TEMPLATE_NAMES).nullable(),
    policy: policySchema,
  }),
  PolicyAmended: z.strictObject({
    version: z.int().min(2),
    effectiveFrom: instantSchema,
    reason: noteSchema,
    policy: policySchema,
  }),
  LogisticsPledged: logisticsPledgedV1.extend({ unit: slugSchema.max(40) }),
  FundingPledged: z.strictObject({
    pledgeId: slugSchema,
    pledger: partySchema,
    amount: moneySchema,
    currency: currencySchema,
    baseCurrency: currencySchema,
    baseCurrencyAmount: moneySchema,
    purpose: note,
  }),
  PersonnelPledged: z.strictObject({
    pledgeId: slugSchema,
    pledger: partySchema,
    officers: z.int().min(1),
    description: note,
  }),
  PledgeConfirmed: z.strictObject({ pledgeId: slugSchema, note }),
  PledgeFulfilled: z.strictObject({ pledgeId: slugSchema, note }),
  PledgeWithdrawn: z.strictObject({ pledgeId: slugSchema, reason: noteSchema }),
  CouncilAnnounced: z.strictObject({ councilName: titleSchema, note }),
  CouncilApproved: z.strictObject({ councilName: titleSchema, process: noteSchema }),
  CouncilDissolved: z.strictObject({ reason: noteSchema }),
  HostAdministrationStatusRecorded: z.strictObject({
    status: z.enum(['viable', 'collapsed']),
    administration: titleSchema,
    note,
  }),
  MandateRecorded: z.strictObject({
    mandateId: slugSchema,
    issuingBody: referenceSchema,
    reference: referenceSchema,
    validFrom: instantSchema,
    validUntil: instantSchema,
  }),
  AgreementSigned: z.strictObject({
    agreementId: slugSchema,
    title: titleSchema,
    parties: z.array(partySchema).min(2),
  }),
  CourtOrderRecorded: z.strictObject({
    reference: referenceSchema,
    court: titleSchema,
    effect: z.enum(['barring', 'lifted']),
    summary: note,
  }),
  ApprovalRecorded: z.strictObject({
    body: z.enum(['cabinet', 'parliament']),
    nation: partySchema,
    decision: z.enum(['granted', 'revoked']),
    reference: referenceSchema.nullable(),
  }),
  UnitReadinessReported: z.strictObject({
    unit: unitCodeSchema,
    officersReady: z.int().min(0),
    status: z.enum(UNIT_STATUSES),
    note,
  }),
  ReconnaissanceTeamPrepared: z.strictObject({
    teamSize: z.int().min(1),
    leadUnit: unitCodeSchema.nullable(),
    note,
  }),
  ReconnaissanceCompleted: z.strictObject({ summary: noteSchema }),
  DeploymentSuspended: z.strictObject({ reason: noteSchema }),
  DeploymentResumed: z.strictObject({ reason: noteSchema }),
  DeploymentAuthorised: z.strictObject({
    phase: slugSchema,
    policyVersion: z.int().min(1),
    /** The phase's verdict when it was authorised; anything but `ready` means an override. */
    statusAtAuthorisation: z.enum(PHASE_STATUSES),
    unmet: z.array(slugSchema),
    override: z.strictObject({ justification: z.string().min(1).max(2000) }).nullable(),
  }),
} as const;

export type MissionEventType = keyof typeof eventDataSchemas;
export const EVENT_TYPES = Object.keys(eventDataSchemas) as MissionEventType[];
export type EventDataOf<T extends MissionEventType> = z.infer<(typeof eventDataSchemas)[T]>;

/** The schema version each event type is written at. */
export const EVENT_SCHEMA_VERSIONS: Readonly<Record<MissionEventType, number>> = Object.freeze({
  MissionDefined: 1,
  PolicyAmended: 1,
  LogisticsPledged: 2,
  FundingPledged: 1,
  PersonnelPledged: 1,
  PledgeConfirmed: 1,
  PledgeFulfilled: 1,
  PledgeWithdrawn: 1,
  CouncilAnnounced: 1,
  CouncilApproved: 1,
  CouncilDissolved: 1,
  HostAdministrationStatusRecorded: 1,
  MandateRecorded: 1,
  AgreementSigned: 1,
  CourtOrderRecorded: 1,
  ApprovalRecorded: 1,
  UnitReadinessReported: 1,
  ReconnaissanceTeamPrepared: 1,
  ReconnaissanceCompleted: 1,
  DeploymentSuspended: 1,
  DeploymentResumed: 1,
  DeploymentAuthorised: 1,
});

export type EventOf<T extends MissionEventType> = {
  readonly id: string;
  readonly type: T;
  readonly schemaVersion: number;
  /** When it happened in the world: canonical UTC, millisecond precision. */
  readonly occurredAt: string;
  readonly data: EventDataOf<T>;
};

export type MissionEvent = { [T in MissionEventType]: EventOf<T> }[MissionEventType];

interface Upcaster {
  /** The data schema at this (old) version. */
  readonly schema: z.ZodType;
  /** Turns valid data at this version into data at the next one. */
  readonly up: (data: never) => unknown;
}

/**
 * How to read old versions: for each type, for each old version v, the step from v to v + 1.
 * LogisticsPledged v1 did not say what its quantity counts; v2 requires `unit`.
 */
const UPCASTERS: Partial<Record<MissionEventType, Readonly<Record<number, Upcaster>>>> = {
  LogisticsPledged: {
    1: {
      schema: logisticsPledgedV1,
      up: (data: z.infer<typeof logisticsPledgedV1>) => ({ ...data, unit: 'unspecified' }),
    },
  },
};

/** The shape the event store takes on append (and returns, with more fields, on read). */
export interface StoredEventInput {
  readonly id: string;
  readonly type: string;
  readonly data: unknown;
  readonly metadata?: { readonly occurredAt?: unknown; readonly schemaVersion?: unknown } | null;
}

export interface StoredEvent {
  id: string;
  type: MissionEventType;
  data: MissionEvent['data'];
  metadata: { occurredAt: string; schemaVersion: number };
}

export function toStoredEvent(event: MissionEvent): StoredEvent {
  return {
    id: event.id,
    type: event.type,
    data: event.data,
    metadata: { occurredAt: event.occurredAt, schemaVersion: event.schemaVersion },
  };
}

function isEventType(type: string): type is MissionEventType {
  return Object.hasOwn(eventDataSchemas, type);
}

/**
 * Reads an event back from the store: checks its type, upcasts older schema versions step by
 * step, and validates the result. Throws `unknown-event-type`, `unsupported-event-version` or
 * `invalid-event` (all DomainErrors) for what it cannot read.
 */
export function fromStoredEvent(stored: StoredEventInput): MissionEvent {
  const { id, type } = stored;
  if (!isEventType(type)) {
    throw new DomainError('unknown-event-type', { id, type });
  }
  const current = EVENT_SCHEMA_VERSIONS[type];
  const rawVersion = stored.metadata?.schemaVersion ?? 1;
  if (
    typeof rawVersion !== 'number' ||
    !Number.isInteger(rawVersion) ||
    rawVersion < 1 ||
    rawVersion > current
  ) {
    throw new DomainError('unsupported-event-version', { id, type, schemaVersion: rawVersion, current });
  }
  const occurredAt = stored.metadata?.occurredAt;
  if (rawVersion === current && isCanonicalInstant(occurredAt)) {
    // What this version writes: checked by hand, without zod (see event-checks.ts).
    const data = FAST_DATA_PARSERS[type]?.(stored.data);
    if (data !== undefined) {
      return { id, type, schemaVersion: current, occurredAt, data } as MissionEvent;
    }
  }
  if (!isInstant(occurredAt)) {
    throw new DomainError('invalid-event', {
      id,
      type,
      issues: [{ path: 'metadata.occurredAt', message: 'must be an instant' }],
    });
  }
  let data: unknown = stored.data;
  for (let version = rawVersion; version < current; version++) {
    const step = UPCASTERS[type]?.[version];
    if (step === undefined) {
      throw new DomainError('unsupported-event-version', { id, type, schemaVersion: rawVersion, current });
    }
    const old = step.schema.safeParse(data);
    if (!old.success) {
      throw new DomainError('invalid-event', {
        id,
        type,
        schemaVersion: version,
        issues: zodIssues(old.error),
      });
    }
    data = step.up(old.data as never);
  }
  const parsed = eventDataSchemas[type].safeParse(data);
  if (!parsed.success) {
    throw new DomainError('invalid-event', {
      id,
      type,
      schemaVersion: current,
      issues: zodIssues(parsed.error),
    });
  }
  return {
    id,
    type,
    schemaVersion: current,
    occurredAt: canonicalInstant(occurredAt),
    data: parsed.data,
  } as MissionEvent;
}
