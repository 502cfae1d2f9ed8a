import type { MissionEventType } from './events.js';
import {
  CAPABILITIES,
  CURRENCY_PATTERN,
  MAX_MONEY,
  SLUG_PATTERN,
  UNIT_CODE_PATTERN,
  UNIT_STATUSES,
} from './vocabulary.js';

/*
 * Hand-written checks for the data of the frequent event types at their current schema version,
 * equivalent to their zod schemas in `eventDataSchemas` (a property test compares the two on
 * valid, mutated and random data). Reading a stored event is on the hot path of every fold, and
 * zod costs microseconds per event. A check returns the data as zod would (an object with the
 * schema's keys in the schema's order: the input itself when its keys already are, else a new
 * one), or undefined when it does not accept it: the caller then
 * asks zod, which either accepts after all or names the problems. So a check may be stricter than
 * its schema, never laxer.
 */

type Check = (value: unknown) => boolean;

const text =
  (min: number, max: number, pattern?: RegExp): Check =>
  (value) =>
    typeof value === 'string' &&
    value.length >= min &&
    value.length <= max &&
    (pattern === undefined || pattern.test(value));

const nullable =
  (check: Check): Check =>
  (value) =>
    value === null || check(value);

const integer =
  (min: number, max: number = Number.MAX_SAFE_INTEGER): Check =>
  (value) =>
    typeof value === 'number' && Number.isSafeInteger(value) && value >= min && value <= max;

const oneOf = (values: readonly string[]): Check => {
  const allowed = new Set(values);
  return (value) => typeof value === 'string' && allowed.has(value);
};

const slug = text(1, 64, SLUG_PATTERN);
const party = text(2, 64, SLUG_PATTERN);
const title = text(1, 200);
const note = text(1, 2000);
const reference = text(1, 200);
const money = integer(1, MAX_MONEY);
const currency = text(3, 3, CURRENCY_PATTERN);
const unitCode = text(2, 16, UNIT_CODE_PATTERN);

export type DataParser = (data: unknown) => Record<string, unknown> | undefined;

/** A strict object of the given fields, in that order (the order zod writes its output in). */
function strictObject(fields: Record<string, Check>): DataParser {
  const keys = Object.keys(fields);
  const checks = keys.map((key) => fields[key] as Check);
  const size = keys.length;
  return (data) => {
    if (typeof data !== 'object' || data === null || Object.getPrototypeOf(data) !== Object.prototype) {
      return undefined;
    }
    const input = data as Record<string, unknown>;
    // Data this code wrote has the schema's keys in the schema's order: then, once every value
    // passes, the object itself is what zod would return (keys, order and values), and neither
    // `Object.keys` nor a copy built key by key (a slow, polymorphic store) is needed.
    let count = 0;
    let ordered = true;
    for (const key in input) {
      if (key !== keys[count]) {
        ordered = false;
      }
      count++;
    }
    if (count !== size) {
      return undefined;
    }
    if (ordered) {
      for (let i = 0; i < size; i++) {
        if (!(checks[i] as Check)(input[keys[i] as string])) {
          return undefined;
        }
      }
      return input;
    }
    const out: Record<string, unknown> = {};
    for (let i = 0; i < size; i++) {
      const key = keys[i] as string;
      if (!Object.hasOwn(input, key)) {
        return undefined;
      }
      const value = input[key];
      if (!(checks[i] as Check)(value)) {
        return undefined;
      }
      out[key] = value;
    }
    return out;
  };
}

/**
 * Checks for the current version of the event types that make up nearly every stream. The rare
 * ones (definitions and amendments with their policies, mandates, agreements, authorisations) go
 * to zod.
 */
export const FAST_DATA_PARSERS: Partial<Record<MissionEventType, DataParser>> = {
  LogisticsPledged: strictObject({
    pledgeId: slug,
    pledger: party,
    capability: oneOf(CAPABILITIES),
    quantity: integer(1),
    description: nullable(note),
    unit: text(1, 40, SLUG_PATTERN),
  }),
  FundingPledged: strictObject({
    pledgeId: slug,
    pledger: party,
    amount: money,
    currency,
    baseCurrency: currency,
    baseCurrencyAmount: money,
    purpose: nullable(note),
  }),
  PersonnelPledged: strictObject({
    pledgeId: slug,
    pledger: party,
    officers: integer(1),
    description: nullable(note),
  }),
  PledgeConfirmed: strictObject({ pledgeId: slug, note: nullable(note) }),
  PledgeFulfilled: strictObject({ pledgeId: slug, note: nullable(note) }),
  PledgeWithdrawn: strictObject({ pledgeId: slug, reason: note }),
  CouncilAnnounced: strictObject({ councilName: title, note: nullable(note) }),
  CouncilApproved: strictObject({ councilName: title, process: note }),
  CouncilDissolved: strictObject({ reason: note }),
  HostAdministrationStatusRecorded: strictObject({
    status: oneOf(['viable', 'collapsed']),
    administration: title,
    note: nullable(note),
  }),
  CourtOrderRecorded: strictObject({
    reference,
    court: title,
    effect: oneOf(['barring', 'lifted']),
    summary: nullable(note),
  }),
  ApprovalRecorded: strictObject({
    body: oneOf(['cabinet', 'parliament']),
    nation: party,
    decision: oneOf(['granted', 'revoked']),
    reference: nullable(reference),
  }),
  UnitReadinessReported: strictObject({
    unit: unitCode,
    officersReady: integer(0),
    status: oneOf(UNIT_STATUSES),
    note: nullable(note),
  }),
  ReconnaissanceTeamPrepared: strictObject({
    teamSize: integer(1),
    leadUnit: nullable(unitCode),
    note: nullable(note),
  }),
  ReconnaissanceCompleted: strictObject({ summary: note }),
  DeploymentSuspended: strictObject({ reason: note }),
  DeploymentResumed: strictObject({ reason: note }),
};
