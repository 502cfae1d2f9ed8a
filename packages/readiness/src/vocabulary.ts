import { z } from 'zod';

/** Lower-case slug: letters, digits and single inner hyphens. Used for every domain id. */
export const SLUG_PATTERN = /^[a-z0-9]+(?:-[a-z0-9]+)*$/;

export const slugSchema = z.string().min(1).max(64).regex(SLUG_PATTERN);
/** A party: a nation, an agency or an organisation, named by a slug (`kenya`, `united-states`). */
export const partySchema = z.string().min(2).max(64).regex(SLUG_PATTERN);
/** A police unit's code (`RDU`, `ASTU`, `GSU`, `BPU`). */
export const UNIT_CODE_PATTERN = /^[A-Z][A-Z0-9-]*$/;
export const unitCodeSchema = z.string().min(2).max(16).regex(UNIT_CODE_PATTERN);
export const titleSchema = z.string().min(1).max(200);
export const noteSchema = z.string().min(1).max(2000);
export const CURRENCY_PATTERN = /^[A-Z]{3}$/;
export const currencySchema = z.string().length(3).regex(CURRENCY_PATTERN);
/** Money in whole units of its currency: integers keep every sum exact whatever the order. */
export const MAX_MONEY = 1_000_000_000_000;
export const moneySchema = z.int().min(1).max(MAX_MONEY);

export const CAPABILITIES = [
  'airlift',
  'sealift',
  'transport',
  'equipment',
  'armoured-vehicles',
  'medical',
  'base-camp',
  'communications',
  'training',
] as const;
export type Capability = (typeof CAPABILITIES)[number];
export const capabilitySchema = z.enum(CAPABILITIES);

/** Facts a `fact` precondition can name, with the commands that assert and revoke them. */
export const FACTS = [
  'council-announced',
  'council-approved',
  'host-administration-viable',
  'agreement-signed',
  'cabinet-approved',
  'parliament-approved',
  'reconnaissance-team-prepared',
  'reconnaissance-completed',
] as const;
export type FactName = (typeof FACTS)[number];
export const factSchema = z.enum(FACTS);
/** Facts held per subject: an agreement id, or the nation whose cabinet or parliament approved. */
export const SUBJECT_FACTS: readonly FactName[] = [
  'agreement-signed',
  'cabinet-approved',
  'parliament-approved',
];

export const FACT_LABELS: Record<FactName, string> = {
  'council-announced': 'council announced',
  'council-approved': 'council approved',
  'host-administration-viable': 'viable host administration',
  'agreement-signed': 'agreement signed',
  'cabinet-approved': 'cabinet approval',
  'parliament-approved': 'parliament approval',
  'reconnaissance-team-prepared': 'reconnaissance team prepared',
  'reconnaissance-completed': 'reconnaissance completed',
};

export const BLOCKER_KINDS = ['court-order', 'suspension', 'host-administration-collapse'] as const;
export type BlockerKind = (typeof BLOCKER_KINDS)[number];
export const blockerKindSchema = z.enum(BLOCKER_KINDS);

export const MEASURES = ['officers-ready', 'confirmed-funding', 'confirmed-personnel'] as const;
export type Measure = (typeof MEASURES)[number];
export const measureSchema = z.enum(MEASURES);

export const UNIT_STATUSES = ['preparing', 'standby', 'stood-down'] as const;
export type UnitStatus = (typeof UNIT_STATUSES)[number];

export const PHASE_STATUSES = ['ready', 'not-ready', 'blocked'] as const;
export type PhaseStatus = (typeof PHASE_STATUSES)[number];
