import { describe, expect, it } from 'vitest';
import { policySchema } from './policy.js';
import { missionTemplates } from './templates.js';
import { testPolicy } from './test-support/spec.js';

const phase = (id: string, preconditions: unknown[] = []) => ({ id, title: id, preconditions });
const messages = (policy: unknown) => {
  const result = policySchema.safeParse(policy);
  return result.success ? [] : result.error.issues.map((issue) => issue.message);
};

describe('policySchema', () => {
  it('accepts the shipped template and the test policy', () => {
    expect(messages(missionTemplates['mss-haiti'].policy)).toEqual([]);
    expect(messages(testPolicy)).toEqual([]);
  });

  it('needs at least one phase', () => {
    expect(messages({ phases: [] })).not.toEqual([]);
  });

  it('refuses duplicate phase and precondition ids', () => {
    const fact = { kind: 'fact', id: 'f', title: 'F', fact: 'council-approved' };
    expect(messages({ phases: [phase('a'), phase('a')] })).toContain('duplicate phase id a');
    expect(messages({ phases: [phase('a', [fact]), phase('b', [fact])] })).toContain(
      'duplicate precondition id f',
    );
  });

  it('refuses phase preconditions naming a missing phase or the phase itself, and cycles', () => {
    const needs = (id: string, target: string) => ({
      kind: 'phase',
      id,
      title: id,
      phase: target,
      status: 'ready',
    });
    expect(messages({ phases: [phase('a', [needs('x', 'zzz')])] })[0]).toMatch(/not another phase/);
    expect(messages({ phases: [phase('a', [needs('x', 'a')])] })[0]).toMatch(/not another phase/);
    expect(messages({ phases: [phase('a', [needs('x', 'b')]), phase('b', [needs('y', 'a')])] })).toContain(
      'phase preconditions form a cycle',
    );
    expect(
      messages({ phases: [phase('a', [needs('x', 'b')]), phase('b'), phase('c', [needs('z', 'a')])] }),
    ).toEqual([]);
  });

  it('refuses a subject on a fact that has none, and units on measures other than officers-ready', () => {
    expect(
      messages({
        phases: [phase('a', [{ kind: 'fact', id: 'f', title: 'F', fact: 'council-approved', subject: 'x' }])],
      }),
    ).toContain('fact council-approved takes no subject');
    expect(
      messages({
        phases: [
          phase('a', [
            {
              kind: 'threshold',
              id: 't',
              title: 'T',
              measure: 'confirmed-funding',
              minimum: 5,
              units: ['RDU'],
            },
          ]),
        ],
      }),
    ).toContain('units apply only to officers-ready');
  });

  it('refuses unknown kinds, unknown keys and non-positive minimums', () => {
    expect(messages({ phases: [phase('a', [{ kind: 'vibes', id: 'v', title: 'V' }])] })).not.toEqual([]);
    expect(messages({ phases: [phase('a')], extra: 1 })).not.toEqual([]);
    expect(
      messages({
        phases: [
          phase('a', [{ kind: 'threshold', id: 't', title: 'T', measure: 'officers-ready', minimum: 0 }]),
        ],
      }),
    ).not.toEqual([]);
  });
});
