import { describe, expect, it } from 'vitest';
import { policySchema } from './policy.js';
import { missionTemplates } from './templates.js';

describe('missionTemplates', () => {
  it('ships mss-haiti: reconnaissance then main deployment, led by Kenya, valid under the policy schema', () => {
    const template = missionTemplates['mss-haiti'];
    expect(policySchema.safeParse(template.policy).success).toBe(true);
    expect(template.leadNation).toBe('kenya');
    expect(template.policy.phases.map((phase) => phase.id)).toEqual(['reconnaissance', 'main-deployment']);
    const main = template.policy.phases[1]!;
    expect(main.preconditions.find((p) => p.id === 'officers-ready')).toMatchObject({
      kind: 'threshold',
      measure: 'officers-ready',
      minimum: 1000,
      units: ['RDU', 'ASTU', 'GSU', 'BPU'],
    });
    const kinds = new Set(template.policy.phases.flatMap((phase) => phase.preconditions.map((p) => p.kind)));
    expect([...kinds].sort()).toEqual(['coverage', 'fact', 'mandate', 'no-blocker', 'phase', 'threshold']);
  });
});
