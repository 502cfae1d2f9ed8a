import { z } from 'zod';
import {
  blockerKindSchema,
  capabilitySchema,
  factSchema,
  measureSchema,
  SUBJECT_FACTS,
  slugSchema,
  titleSchema,
  unitCodeSchema,
} from './vocabulary.js';

const base = { id: slugSchema, title: titleSchema };

export const factPreconditionSchema = z.strictObject({
  kind: z.literal('fact'),
  ...base,
  fact: factSchema,
  /** For per-subject facts: the agreement id or the approving nation. Absent: any subject. */
  subject: slugSchema.optional(),
});

export const noBlockerPreconditionSchema = z.strictObject({
  kind: z.literal('no-blocker'),
  ...base,
  blockers: z.array(blockerKindSchema).min(1).max(3),
});

export const thresholdPreconditionSchema = z.strictObject({
  kind: z.literal('threshold'),
  ...base,
  measure: measureSchema,
  /** Officers, or whole units of the mission's base currency for `confirmed-funding`. */
  minimum: z.int().min(1).max(1_000_000_000_000_000),
  /** For `officers-ready`: the units counted. Absent: every unit that reports. */
  units: z.array(unitCodeSchema).min(1).max(50).optional(),
});

export const coveragePreconditionSchema = z.strictObject({
  kind: z.literal('coverage'),
  ...base,
  capabilities: z.array(capabilitySchema).min(1).max(20),
  /** `confirmed` (default) counts confirmed pledges; `fulfilled` only delivered ones. */
  minimumStatus: z.enum(['confirmed', 'fulfilled']).optional(),
});

export const mandatePreconditionSchema = z.strictObject({
  kind: z.literal('mandate'),
  ...base,
  /** Only mandates from this body count (`UN Security Council`). Absent: any body. */
  issuingBody: z.string().min(1).max(200).optional(),
});

export const phasePreconditionSchema = z.strictObject({
  kind: z.literal('phase'),
  ...base,
  phase: slugSchema,
  /** `ready`: the other phase's verdict is ready; `authorised`: its deployment was authorised. */
  status: z.enum(['ready', 'authorised']),
});

export const preconditionSchema = z.discriminatedUnion('kind', [
  factPreconditionSchema,
  noBlockerPreconditionSchema,
  thresholdPreconditionSchema,
  coveragePreconditionSchema,
  mandatePreconditionSchema,
  phasePreconditionSchema,
]);

export const PRECONDITION_KINDS = [
  'fact',
  'no-blocker',
  'threshold',
  'coverage',
  'mandate',
  'phase',
] as const;
export type PreconditionKind = (typeof PRECONDITION_KINDS)[number];

export const phaseSchema = z.strictObject({
  id: slugSchema,
  title: titleSchema,
  preconditions: z.array(preconditionSchema).max(50),
});

function duplicates(values: readonly string[]): string[] {
  const seen = new Set<string>();
  const dup = new Set<string>();
  for (const value of values) {
    if (seen.has(value)) {
      dup.add(value);
    }
    seen.add(value);
  }
  return [...dup];
}

/**
 * A mission's policy: its phases in order, each with its preconditions. Cross-field rules
 * (unique ids, references to phases that exist, no cycles) are checked here, as refinements
 * that JSON Schema leaves out, never as transforms.
 */
export const policySchema = z
  .strictObject({
    phases: z.array(phaseSchema).min(1).max(20),
  })
  .superRefine((policy, ctx) => {
    const phaseIds = policy.phases.map((phase) => phase.id);
    for (const id of duplicates(phaseIds)) {
      ctx.addIssue({ code: 'custom', message: `duplicate phase id ${id}`, path: ['phases'] });
    }
    const preconditionIds = policy.phases.flatMap((phase) => phase.preconditions.map((p) => p.id));
    for (const id of duplicates(preconditionIds)) {
      ctx.addIssue({ code: 'custom', message: `duplicate precondition id ${id}`, path: ['phases'] });
    }
    const known = new Set(phaseIds);
    const edges = new Map<string, string[]>();
    policy.phases.forEach((phase, phaseIndex) => {
      const targets: string[] = [];
      phase.preconditions.forEach((precondition, index) => {
        const path = ['phases', phaseIndex, 'preconditions', index];
        switch (precondition.kind) {
          case 'phase':
            if (!known.has(precondition.phase) || precondition.phase === phase.id) {
              ctx.addIssue({
                code: 'custom',
                message: `precondition ${precondition.id} names phase ${precondition.phase}, which is not another phase of this policy`,
                path,
              });
            }
            targets.push(precondition.phase);
            break;
          case 'fact':
            if (precondition.subject !== undefined && !SUBJECT_FACTS.includes(precondition.fact)) {
              ctx.addIssue({
                code: 'custom',
                message: `fact ${precondition.fact} takes no subject`,
                path,
              });
            }
            break;
          case 'threshold':
            if (precondition.units !== undefined && precondition.measure !== 'officers-ready') {
              ctx.addIssue({ code: 'custom', message: 'units apply only to officers-ready', path });
            }
            break;
          case 'no-blocker':
          case 'coverage':
          case 'mandate':
            break;
        }
      });
      edges.set(phase.id, targets);
    });
    const state = new Map<string, 'visiting' | 'done'>();
    const visit = (id: string): boolean => {
      if (state.get(id) === 'done') {
        return false;
      }
      if (state.get(id) === 'visiting') {
        return true;
      }
      state.set(id, 'visiting');
      const cyclic = (edges.get(id) ?? []).some((next) => next !== id && visit(next));
      state.set(id, 'done');
      return cyclic;
    };
    if (phaseIds.some((id) => visit(id))) {
      ctx.addIssue({ code: 'custom', message: 'phase preconditions form a cycle', path: ['phases'] });
    }
  });

export type Policy = z.infer<typeof policySchema>;
export type PhaseDefinition = z.infer<typeof phaseSchema>;
export type Precondition = z.infer<typeof preconditionSchema>;
export type FactPrecondition = z.infer<typeof factPreconditionSchema>;
export type NoBlockerPrecondition = z.infer<typeof noBlockerPreconditionSchema>;
export type ThresholdPrecondition = z.infer<typeof thresholdPreconditionSchema>;
export type CoveragePrecondition = z.infer<typeof coveragePreconditionSchema>;
export type MandatePrecondition = z.infer<typeof mandatePreconditionSchema>;
export type PhasePrecondition = z.infer<typeof phasePreconditionSchema>;
