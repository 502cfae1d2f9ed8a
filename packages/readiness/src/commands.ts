import { z } from 'zod';
import { DomainError } from './errors.js';
import { MISSION_ID_PATTERN } from './ids.js';
import { instantSchema } from './instant.js';
import { policySchema } from './policy.js';
import {
  capabilitySchema,
  currencySchema,
  moneySchema,
  noteSchema,
  partySchema,
  slugSchema,
  titleSchema,
  UNIT_STATUSES,
  unitCodeSchema,
} from './vocabulary.js';

/** Template names `DefineMission` accepts; kept in step with `missionTemplates` by a test. */
export const TEMPLATE_NAMES = ['mss-haiti'] as const;

const referenceSchema = z.string().min(1).max(200);
const nonBlank = z.string().min(1).max(2000).regex(/\S/, 'must not be blank');

/** The payload of each command: its own fields only, never type, commandId, missionId or occurredAt. */
export const commandPayloads = {
  DefineMission: z.strictObject({
    template: z.enum(TEMPLATE_NAMES).optional(),
    name: titleSchema.optional(),
    leadNation: partySchema.optional(),
    baseCurrency: currencySchema.optional(),
    policy: policySchema.optional(),
  }),
  AmendPolicy: z.strictObject({
    policy: policySchema,
    effectiveFrom: instantSchema.optional(),
    reason: noteSchema,
  }),
  PledgeLogistics: z.strictObject({
    pledgeId: slugSchema,
    pledger: partySchema,
    capability: capabilitySchema,
    quantity: z.int().min(1).max(1_000_000),
    /** What `quantity` counts: `aircraft`, `flights`, `vehicles`, `beds`. */
    unit: slugSchema.max(40),
    description: noteSchema.optional(),
  }),
  PledgeFunding: z.strictObject({
    pledgeId: slugSchema,
    pledger: partySchema,
    amount: moneySchema,
    currency: currencySchema,
    /** The value in the mission's base currency, as the pledger declares it. */
    baseCurrencyAmount: moneySchema,
    purpose: noteSchema.optional(),
  }),
  PledgePersonnel: z.strictObject({
    pledgeId: slugSchema,
    pledger: partySchema,
    officers: z.int().min(1).max(100_000),
    description: noteSchema.optional(),
  }),
  ConfirmPledge: z.strictObject({ pledgeId: slugSchema, note: noteSchema.optional() }),
  RecordPledgeFulfilled: z.strictObject({ pledgeId: slugSchema, note: noteSchema.optional() }),
  WithdrawPledge: z.strictObject({ pledgeId: slugSchema, reason: noteSchema }),
  AnnounceCouncil: z.strictObject({ councilName: titleSchema, note: noteSchema.optional() }),
  ApproveCouncil: z.strictObject({ councilName: titleSchema, process: noteSchema }),
  DissolveCouncil: z.strictObject({ reason: noteSchema }),
  RecordHostAdministrationStatus: z.strictObject({
    status: z.enum(['viable', 'collapsed']),
    administration: titleSchema,
    note: noteSchema.optional(),
  }),
  RecordMandate: z.strictObject({
    mandateId: slugSchema,
    issuingBody: referenceSchema,
    reference: referenceSchema,
    validFrom: instantSchema,
    validUntil: instantSchema,
  }),
  SignAgreement: z.strictObject({
    agreementId: slugSchema,
    title: titleSchema,
    parties: z.array(partySchema).min(2).max(50),
  }),
  RecordCourtOrder: z.strictObject({
    reference: referenceSchema,
    court: titleSchema,
    effect: z.enum(['barring', 'lifted']),
    summary: noteSchema.optional(),
  }),
  RecordApproval: z.strictObject({
    body: z.enum(['cabinet', 'parliament']),
    nation: partySchema,
    decision: z.enum(['granted', 'revoked']),
    reference: referenceSchema.optional(),
  }),
  ReportUnitReadiness: z.strictObject({
    unit: unitCodeSchema,
    officersReady: z.int().min(0).max(100_000),
    status: z.enum(UNIT_STATUSES),
    note: noteSchema.optional(),
  }),
  PrepareReconnaissanceTeam: z.strictObject({
    teamSize: z.int().min(1).max(1_000),
    leadUnit: unitCodeSchema.optional(),
    note: noteSchema.optional(),
  }),
  CompleteReconnaissance: z.strictObject({ summary: noteSchema }),
  SuspendDeployment: z.strictObject({ reason: noteSchema }),
  ResumeDeployment: z.strictObject({ reason: noteSchema }),
  AuthoriseDeployment: z.strictObject({
    phase: slugSchema,
    override: z.strictObject({ justification: nonBlank }).optional(),
  }),
} as const;

export type CommandType = keyof typeof commandPayloads;
export type CommandCategory = 'mission-admin' | 'pledge' | 'political' | 'legal' | 'operational';

export interface CommandCatalogEntry {
  /** kebab-case; the last segment of `POST /v1/missions/{missionId}/commands/{name}`. */
  readonly name: string;
  readonly type: CommandType;
  /** One sentence, for the OpenAPI document. */
  readonly description: string;
  readonly category: CommandCategory;
  /** Strict, transform-free: the API extends it with occurredAt and an optional commandId. */
  readonly payloadSchema: z.ZodObject;
  /** The payload field naming the party the command acts as, when the payload names one. */
  readonly actingPartyField?: string;
}

const entry = (
  name: string,
  type: CommandType,
  category: CommandCategory,
  description: string,
  actingPartyField?: string,
): CommandCatalogEntry =>
  Object.freeze({
    name,
    type,
    description,
    category,
    payloadSchema: commandPayloads[type],
    ...(actingPartyField === undefined ? {} : { actingPartyField }),
  });

export const commandCatalog: readonly CommandCatalogEntry[] = Object.freeze([
  entry(
    'define-mission',
    'DefineMission',
    'mission-admin',
    'Defines the mission, from a shipped template or from a full policy with a name and a lead nation.',
  ),
  entry(
    'amend-policy',
    'AmendPolicy',
    'mission-admin',
    'Adopts a new version of the readiness policy, in force from its effective instant.',
  ),
  entry(
    'pledge-logistics',
    'PledgeLogistics',
    'pledge',
    'Records a pledge of logistics (airlift, equipment, medical, base camp, transport, ...) by a pledger.',
    'pledger',
  ),
  entry(
    'pledge-funding',
    'PledgeFunding',
    'pledge',
    'Records a pledge of funding in an ISO 4217 currency, with its declared value in the base currency.',
    'pledger',
  ),
  entry(
    'pledge-personnel',
    'PledgePersonnel',
    'pledge',
    "Records a contributing country's pledge of officers.",
    'pledger',
  ),
  entry(
    'confirm-pledge',
    'ConfirmPledge',
    'pledge',
    'Confirms a pledge, which from then on counts for readiness.',
  ),
  entry(
    'record-pledge-fulfilled',
    'RecordPledgeFulfilled',
    'pledge',
    'Records that a confirmed pledge has been delivered.',
  ),
  entry(
    'withdraw-pledge',
    'WithdrawPledge',
    'pledge',
    'Withdraws a pledge, which stops counting for readiness from the instant of withdrawal.',
  ),
  entry(
    'announce-council',
    'AnnounceCouncil',
    'political',
    'Records the announcement that a council will be formed to govern the host nation.',
  ),
  entry(
    'approve-council',
    'ApproveCouncil',
    'political',
    'Records that the council is in place under an agreed process.',
  ),
  entry(
    'dissolve-council',
    'DissolveCouncil',
    'political',
    'Records that the approved council was dissolved.',
  ),
  entry(
    'record-host-administration-status',
    'RecordHostAdministrationStatus',
    'political',
    'Records whether the host nation has a viable administration or it has collapsed.',
  ),
  entry(
    'record-approval',
    'RecordApproval',
    'political',
    "Records a cabinet's or parliament's approval of the deployment, or its revocation.",
  ),
  entry(
    'record-mandate',
    'RecordMandate',
    'legal',
    'Records an authorisation such as a UN Security Council resolution, valid over an interval.',
  ),
  entry(
    'sign-agreement',
    'SignAgreement',
    'legal',
    'Records the signature of an agreement between parties, such as a deployment deal.',
  ),
  entry(
    'record-court-order',
    'RecordCourtOrder',
    'legal',
    'Records a court order barring deployment, or the lifting of one.',
  ),
  entry(
    'report-unit-readiness',
    'ReportUnitReadiness',
    'operational',
    "Reports a police unit's number of officers ready and its status.",
  ),
  entry(
    'prepare-reconnaissance-team',
    'PrepareReconnaissanceTeam',
    'operational',
    'Records that the reconnaissance team is prepared and briefed.',
  ),
  entry(
    'complete-reconnaissance',
    'CompleteReconnaissance',
    'operational',
    'Records that the reconnaissance mission is completed, with its findings.',
  ),
  entry(
    'suspend-deployment',
    'SuspendDeployment',
    'operational',
    'Records that the lead nation suspended the deployment.',
  ),
  entry(
    'resume-deployment',
    'ResumeDeployment',
    'operational',
    'Records that the lead nation lifted its suspension of the deployment.',
  ),
  entry(
    'authorise-deployment',
    'AuthoriseDeployment',
    'operational',
    'Authorises deployment of a phase; refused while the phase is not ready unless an override gives a justification.',
  ),
]);

export function findCommand(name: string): CommandCatalogEntry | undefined {
  return commandCatalog.find((candidate) => candidate.name === name);
}

const envelopeFields = {
  commandId: z.string().min(1).max(200),
  missionId: z.string().regex(MISSION_ID_PATTERN),
  occurredAt: instantSchema,
};

/** Every command, whole: a discriminated union on `type`. */
export const commandSchema = z.discriminatedUnion('type', [
  commandPayloads.DefineMission.extend({ type: z.literal('DefineMission'), ...envelopeFields }),
  commandPayloads.AmendPolicy.extend({ type: z.literal('AmendPolicy'), ...envelopeFields }),
  commandPayloads.PledgeLogistics.extend({ type: z.literal('PledgeLogistics'), ...envelopeFields }),
  commandPayloads.PledgeFunding.extend({ type: z.literal('PledgeFunding'), ...envelopeFields }),
  commandPayloads.PledgePersonnel.extend({ type: z.literal('PledgePersonnel'), ...envelopeFields }),
  commandPayloads.ConfirmPledge.extend({ type: z.literal('ConfirmPledge'), ...envelopeFields }),
  commandPayloads.RecordPledgeFulfilled.extend({
    type: z.literal('RecordPledgeFulfilled'),
    ...envelopeFields,
  }),
  commandPayloads.WithdrawPledge.extend({ type: z.literal('WithdrawPledge'), ...envelopeFields }),
  commandPayloads.AnnounceCouncil.extend({ type: z.literal('AnnounceCouncil'), ...envelopeFields }),
  commandPayloads.ApproveCouncil.extend({ type: z.literal('ApproveCouncil'), ...envelopeFields }),
  commandPayloads.DissolveCouncil.extend({ type: z.literal('DissolveCouncil'), ...envelopeFields }),
  commandPayloads.RecordHostAdministrationStatus.extend({
    type: z.literal('RecordHostAdministrationStatus'),
    ...envelopeFields,
  }),
  commandPayloads.RecordMandate.extend({ type: z.literal('RecordMandate'), ...envelopeFields }),
  commandPayloads.SignAgreement.extend({ type: z.literal('SignAgreement'), ...envelopeFields }),
  commandPayloads.RecordCourtOrder.extend({ type: z.literal('RecordCourtOrder'), ...envelopeFields }),
  commandPayloads.RecordApproval.extend({ type: z.literal('RecordApproval'), ...envelopeFields }),
  commandPayloads.ReportUnitReadiness.extend({ type: z.literal('ReportUnitReadiness'), ...envelopeFields }),
  commandPayloads.PrepareReconnaissanceTeam.extend({
    type: z.literal('PrepareReconnaissanceTeam'),
    ...envelopeFields,
  }),
  commandPayloads.CompleteReconnaissance.extend({
    type: z.literal('CompleteReconnaissance'),
    ...envelopeFields,
  }),
  commandPayloads.SuspendDeployment.extend({ type: z.literal('SuspendDeployment'), ...envelopeFields }),
  commandPayloads.ResumeDeployment.extend({ type: z.literal('ResumeDeployment'), ...envelopeFields }),
  commandPayloads.AuthoriseDeployment.extend({ type: z.literal('AuthoriseDeployment'), ...envelopeFields }),
]);

export type MissionCommand = z.infer<typeof commandSchema>;
export type CommandOf<T extends CommandType> = Extract<MissionCommand, { type: T }>;

export interface ValidationIssue {
  readonly path: string;
  readonly message: string;
}

export function zodIssues(error: z.ZodError): ValidationIssue[] {
  return error.issues.map((issue) => ({
    path: issue.path.map(String).join('.'),
    message: issue.message,
  }));
}

/** Validates unknown input as a command; throws `invalid-command` naming every problem. */
export function parseCommand(input: unknown): MissionCommand {
  const result = commandSchema.safeParse(input);
  if (!result.success) {
    throw new DomainError('invalid-command', { issues: zodIssues(result.error) });
  }
  return result.data;
}
