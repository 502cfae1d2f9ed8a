import { describe, expect, it } from 'vitest';
import type { MissionCommand } from './commands.js';
import { DomainError } from './errors.js';
import { evaluate, MAX_EVIDENCE, nextChangeAt, type PreconditionResult } from './evaluate.js';
import type { MissionEvent } from './events.js';
import type { Policy } from './policy.js';
import { fold, initialState, type MissionState } from './state.js';
import { evaluateStatus } from './status.js';
import { command, defineTestMission, history } from './test-support/spec.js';

const D = (day: number, hour = 0) =>
  `2024-03-${String(day).padStart(2, '0')}T${String(hour).padStart(2, '0')}:00:00.000Z`;

/** A mission defined on 1 March with `policy` (default: the test policy), then `commands`. */
function mission(
  commands: MissionCommand[],
  policy?: Policy,
): { state: MissionState; events: MissionEvent[] } {
  const define =
    policy === undefined
      ? defineTestMission(D(1))
      : command('DefineMission', { name: 'M', leadNation: 'kenya', policy }, D(1));
  const events = history(define, ...commands);
  return { state: fold(events), events };
}

function pre(state: MissionState, at: string, id: string): PreconditionResult {
  for (const phase of evaluate(state, at).phases) {
    const found = phase.preconditions.find((candidate) => candidate.id === id);
    if (found !== undefined) {
      return found;
    }
  }
  throw new Error(`no precondition ${id}`);
}

const status = (state: MissionState, at: string, phase: string) =>
  evaluate(state, at).phases.find((candidate) => candidate.phase === phase)?.status;

const idOf = (events: MissionEvent[], type: MissionEvent['type'], nth = 0) =>
  events.filter((event) => event.type === type)[nth]!.id;

describe('evaluate: fact', () => {
  const approve = command('ApproveCouncil', { councilName: 'TPC', process: 'decree' }, D(5));
  const dissolve = command('DissolveCouncil', { reason: 'r' }, D(10));

  it('is unmet until asserted, met while asserted, unmet again once revoked', () => {
    const { state, events } = mission([approve, dissolve]);
    expect(pre(state, D(4), 'council')).toEqual({
      id: 'council',
      kind: 'fact',
      title: 'Council approved',
      met: false,
      evidence: [],
      missing: 'no council approved recorded',
    });
    expect(pre(state, D(5), 'council')).toMatchObject({
      met: true,
      evidence: [idOf(events, 'CouncilApproved')],
      missing: null,
    });
    expect(pre(state, D(10), 'council')).toMatchObject({
      met: false,
      evidence: [idOf(events, 'CouncilDissolved')],
      missing: `council approved no longer holds since ${D(10)}`,
    });
  });

  it('takes any subject unless the precondition names one', () => {
    const other = command(
      'RecordApproval',
      { body: 'parliament', nation: 'uganda', decision: 'granted' },
      D(2),
    );
    const kenya = command(
      'RecordApproval',
      { body: 'parliament', nation: 'kenya', decision: 'granted' },
      D(3),
    );
    const revoke = command(
      'RecordApproval',
      { body: 'parliament', nation: 'kenya', decision: 'revoked' },
      D(4),
    );
    const { state } = mission([other, kenya, revoke]);
    expect(pre(state, D(2), 'parliament')).toMatchObject({
      met: false,
      missing: 'no parliament approval (kenya) recorded',
    });
    expect(pre(state, D(3), 'parliament').met).toBe(true);
    expect(pre(state, D(4), 'parliament')).toMatchObject({
      met: false,
      missing: `parliament approval (kenya) no longer holds since ${D(4)}`,
    });
    const signed = mission([
      command('SignAgreement', { agreementId: 'b-deal', title: 'B', parties: ['kenya', 'haiti'] }, D(3)),
      command('SignAgreement', { agreementId: 'a-deal', title: 'A', parties: ['kenya', 'haiti'] }, D(2)),
    ]);
    expect(pre(signed.state, D(2), 'agreement').evidence).toEqual([
      idOf(signed.events, 'AgreementSigned', 1),
    ]);
    expect(pre(signed.state, D(3), 'agreement').evidence).toEqual([
      idOf(signed.events, 'AgreementSigned', 1),
      idOf(signed.events, 'AgreementSigned', 0),
    ]);
  });

  it('follows occurredAt, not the order of recording: a backdated revocation rewrites what held', () => {
    const lateNews = command('DissolveCouncil', { reason: 'found out late' }, D(7));
    const { state } = mission([
      command('ApproveCouncil', { councilName: 'TPC', process: 'p' }, D(5)),
      lateNews,
    ]);
    expect(pre(state, D(6), 'council').met).toBe(true);
    expect(pre(state, D(8), 'council').met).toBe(false);
  });
});

describe('evaluate: no-blocker', () => {
  it('blocks the phase while a suspension is active, and shows the lifting as evidence after', () => {
    const { state, events } = mission([
      command('SuspendDeployment', { reason: 'r' }, D(5)),
      command('ResumeDeployment', { reason: 'r' }, D(8)),
    ]);
    expect(pre(state, D(4), 'unblocked')).toMatchObject({ met: true, evidence: [] });
    expect(pre(state, D(5), 'unblocked')).toMatchObject({
      met: false,
      evidence: [idOf(events, 'DeploymentSuspended')],
      missing: `active blocker: deployment suspended by the lead nation since ${D(5)}`,
    });
    expect(status(state, D(5), 'alpha')).toBe('blocked');
    expect(status(state, D(4), 'alpha')).toBe('not-ready');
    expect(pre(state, D(8), 'unblocked')).toMatchObject({
      met: true,
      evidence: [idOf(events, 'DeploymentResumed')],
    });
  });

  it('lists every active blocker: court orders, suspension, host administration collapse', () => {
    const { state } = mission([
      command('RecordCourtOrder', { reference: 'E-1', court: 'High Court', effect: 'barring' }, D(2)),
      command('RecordCourtOrder', { reference: 'E-2', court: 'High Court', effect: 'barring' }, D(3)),
      command('RecordHostAdministrationStatus', { status: 'collapsed', administration: 'Gov' }, D(4)),
      command('SuspendDeployment', { reason: 'r' }, D(5)),
      command('RecordCourtOrder', { reference: 'E-1', court: 'High Court', effect: 'lifted' }, D(6)),
    ]);
    expect(pre(state, D(5), 'unblocked').missing).toBe(
      `active blocker: court order E-1 barring deployment since ${D(2)}; court order E-2 barring deployment since ${D(3)}; ` +
        `deployment suspended by the lead nation since ${D(5)}; host administration collapsed since ${D(4)}`,
    );
    expect(pre(state, D(6), 'unblocked').missing).not.toContain('E-1');
  });

  it('counts a collapse only while the latest status is collapsed', () => {
    const { state } = mission([
      command('RecordHostAdministrationStatus', { status: 'collapsed', administration: 'Gov' }, D(4)),
      command('RecordHostAdministrationStatus', { status: 'viable', administration: 'Council' }, D(9)),
    ]);
    expect(pre(state, D(5), 'unblocked').met).toBe(false);
    expect(pre(state, D(9), 'unblocked').met).toBe(true);
  });
});

describe('evaluate: threshold', () => {
  const report = (
    unit: string,
    officersReady: number,
    at: string,
    status: 'standby' | 'stood-down' = 'standby',
  ) => command('ReportUnitReadiness', { unit, officersReady, status }, at);

  it('sums the latest report at t of each named unit', () => {
    const { state, events } = mission([
      report('RDU', 40, D(2)),
      report('GSU', 30, D(3)),
      report('ASTU', 500, D(3)),
      report('RDU', 70, D(4)),
    ]);
    expect(pre(state, D(3), 'officers')).toMatchObject({ met: false, missing: 'officers ready 70 of 100' });
    expect(pre(state, D(4), 'officers')).toMatchObject({
      met: true,
      evidence: [idOf(events, 'UnitReadinessReported', 3), idOf(events, 'UnitReadinessReported', 1)],
    });
  });

  it('does not count a stood-down unit, and reads the latest report by occurredAt even when recorded late', () => {
    const { state } = mission([
      report('RDU', 80, D(2)),
      report('GSU', 40, D(6)),
      report('GSU', 900, D(4), 'stood-down'),
    ]);
    expect(pre(state, D(5), 'officers')).toMatchObject({ met: false, missing: 'officers ready 80 of 100' });
    expect(pre(state, D(6), 'officers').met).toBe(true);
  });

  it('counts every unit that reports when the policy names none', () => {
    const policy: Policy = {
      phases: [
        {
          id: 'p',
          title: 'P',
          preconditions: [
            { kind: 'threshold', id: 'all', title: 'All', measure: 'officers-ready', minimum: 1_000 },
          ],
        },
      ],
    };
    const { state } = mission([report('A1', 600, D(2)), report('B2', 500, D(2))], policy);
    expect(pre(state, D(2), 'all').met).toBe(true);
    expect(pre(state, D(1), 'all').missing).toBe('officers ready 0 of 1,000');
  });

  const fund = (pledgeId: string, amount: number, at: string) =>
    command(
      'PledgeFunding',
      { pledgeId, pledger: 'canada', amount, currency: 'USD', baseCurrencyAmount: amount },
      at,
    );
  const confirm = (pledgeId: string, at: string) => command('ConfirmPledge', { pledgeId }, at);
  const withdraw = (pledgeId: string, at: string) => command('WithdrawPledge', { pledgeId, reason: 'r' }, at);

  it('sums confirmed funding in the base currency, from confirmation until withdrawal', () => {
    const { state, events } = mission([
      fund('a', 600, D(2)),
      fund('b', 700, D(2)),
      confirm('a', D(3)),
      confirm('b', D(4)),
      withdraw('a', D(6)),
    ]);
    expect(pre(state, D(2), 'funding').missing).toBe('confirmed funding 0 of 1,000 USD');
    expect(pre(state, D(3), 'funding')).toMatchObject({
      met: false,
      missing: 'confirmed funding 600 of 1,000 USD',
      evidence: [idOf(events, 'FundingPledged', 0), idOf(events, 'PledgeConfirmed', 0)],
    });
    expect(pre(state, D(4), 'funding')).toMatchObject({ met: true, missing: null });
    expect(pre(state, D(4), 'funding').evidence).toHaveLength(4);
    expect(pre(state, D(6), 'funding')).toMatchObject({
      met: false,
      missing: 'confirmed funding 700 of 1,000 USD',
      evidence: [idOf(events, 'FundingPledged', 1), idOf(events, 'PledgeConfirmed', 1)],
    });
  });

  it('lists only enough evidence to reach the minimum, and never more than MAX_EVIDENCE ids', () => {
    const many = Array.from({ length: 60 }, (_, i) => [
      fund(`p${i}`, 10, D(2)),
      confirm(`p${i}`, D(3)),
    ]).flat();
    const { state } = mission(many);
    expect(pre(state, D(3), 'funding').evidence).toHaveLength(MAX_EVIDENCE);
    const big = mission([
      fund('x', 5_000, D(2)),
      confirm('x', D(2)),
      fund('y', 5_000, D(2)),
      confirm('y', D(2)),
    ]);
    expect(pre(big.state, D(2), 'funding').evidence).toHaveLength(2);
  });

  it('counts a confirmation dated before its pledge from the pledge, and a withdrawal dated before its confirmation as never counting', () => {
    const early = mission([fund('a', 2_000, D(5)), confirm('a', D(2))]);
    expect(pre(early.state, D(4), 'funding').met).toBe(false);
    expect(pre(early.state, D(5), 'funding').met).toBe(true);
    const cancelled = mission([fund('a', 2_000, D(2)), confirm('a', D(5)), withdraw('a', D(3))]);
    for (const day of [2, 3, 4, 5, 6]) {
      expect(pre(cancelled.state, D(day), 'funding').missing).toBe('confirmed funding 0 of 1,000 USD');
    }
  });

  it('sums confirmed personnel', () => {
    const { state } = mission([
      command('PledgePersonnel', { pledgeId: 'benin', pledger: 'benin', officers: 40 }, D(2)),
      command('PledgePersonnel', { pledgeId: 'jamaica', pledger: 'jamaica', officers: 20 }, D(2)),
      confirm('benin', D(3)),
      confirm('jamaica', D(4)),
    ]);
    expect(pre(state, D(3), 'personnel')).toMatchObject({
      met: false,
      missing: 'confirmed personnel 40 of 50',
    });
    expect(pre(state, D(4), 'personnel').met).toBe(true);
  });
});

describe('evaluate: coverage', () => {
  const pledge = (pledgeId: string, capability: 'airlift' | 'medical', at: string) =>
    command(
      'PledgeLogistics',
      { pledgeId, pledger: 'united-states', capability, quantity: 1, unit: 'aircraft' },
      at,
    );

  it('needs a confirmed, not withdrawn pledge for every capability', () => {
    const { state, events } = mission([
      pledge('lift', 'airlift', D(2)),
      pledge('med', 'medical', D(2)),
      command('ConfirmPledge', { pledgeId: 'lift' }, D(3)),
      command('ConfirmPledge', { pledgeId: 'med' }, D(4)),
      command('WithdrawPledge', { pledgeId: 'lift', reason: 'r' }, D(6)),
    ]);
    expect(pre(state, D(2), 'lift').missing).toBe('no confirmed airlift, medical');
    expect(pre(state, D(3), 'lift').missing).toBe('no confirmed medical');
    expect(pre(state, D(4), 'lift')).toMatchObject({
      met: true,
      evidence: [
        idOf(events, 'LogisticsPledged', 0),
        idOf(events, 'PledgeConfirmed', 0),
        idOf(events, 'LogisticsPledged', 1),
        idOf(events, 'PledgeConfirmed', 1),
      ],
    });
    expect(pre(state, D(6), 'lift').missing).toBe('no confirmed airlift');
  });

  it('with minimumStatus fulfilled, counts only delivered pledges', () => {
    const { state, events } = mission([
      pledge('lift', 'airlift', D(2)),
      command('ConfirmPledge', { pledgeId: 'lift' }, D(3)),
      command('RecordPledgeFulfilled', { pledgeId: 'lift' }, D(5)),
    ]);
    expect(pre(state, D(4), 'lift-delivered').missing).toBe('no fulfilled airlift');
    expect(pre(state, D(5), 'lift-delivered')).toMatchObject({
      met: true,
      evidence: [
        idOf(events, 'LogisticsPledged'),
        idOf(events, 'PledgeConfirmed'),
        idOf(events, 'PledgeFulfilled'),
      ],
    });
  });
});

describe('evaluate: mandate', () => {
  const mandate = (
    mandateId: string,
    issuingBody: string,
    validFrom: string,
    validUntil: string,
    at: string,
  ) =>
    command(
      'RecordMandate',
      { mandateId, issuingBody, reference: `REF-${mandateId}`, validFrom, validUntil },
      at,
    );

  it('is met from validFrom (once recorded) until validUntil, exclusive', () => {
    const { state, events } = mission([mandate('m', 'UN Security Council', D(5), D(10), D(2))]);
    expect(pre(state, D(1), 'mandate').missing).toBe('no mandate from UN Security Council recorded');
    expect(pre(state, D(3), 'mandate')).toMatchObject({
      missing: `mandate REF-m valid only from ${D(5)}`,
      evidence: [idOf(events, 'MandateRecorded')],
    });
    expect(pre(state, D(5), 'mandate')).toMatchObject({
      met: true,
      evidence: [idOf(events, 'MandateRecorded')],
    });
    expect(pre(state, D(9, 23), 'mandate').met).toBe(true);
    expect(pre(state, D(10), 'mandate')).toMatchObject({
      met: false,
      evidence: [idOf(events, 'MandateRecorded')],
      missing: `mandate REF-m expired at ${D(10)}`,
    });
  });

  it('counts a mandate only from when it was adopted, and only from the named body (any case)', () => {
    const { state } = mission([
      mandate('late', 'un security council', D(1), D(20), D(6)),
      mandate('au', 'African Union', D(1), D(20), D(2)),
    ]);
    expect(pre(state, D(5), 'mandate').met).toBe(false);
    expect(pre(state, D(6), 'mandate').met).toBe(true);
  });
});

describe('evaluate: phase', () => {
  it('follows the other phase being ready, and being authorised', () => {
    const always: Policy = {
      phases: [
        { id: 'first', title: 'First', preconditions: [] },
        {
          id: 'second',
          title: 'Second',
          preconditions: [
            { kind: 'phase', id: 'first-ready', title: 'First ready', phase: 'first', status: 'ready' },
            {
              kind: 'phase',
              id: 'first-go',
              title: 'First authorised',
              phase: 'first',
              status: 'authorised',
            },
          ],
        },
      ],
    };
    const { state, events } = mission([command('AuthoriseDeployment', { phase: 'first' }, D(4))], always);
    expect(pre(state, D(3), 'first-ready')).toMatchObject({ met: true, evidence: [] });
    expect(pre(state, D(3), 'first-go')).toMatchObject({
      met: false,
      missing: 'deployment of phase first not authorised',
    });
    expect(pre(state, D(4), 'first-go')).toMatchObject({
      met: true,
      evidence: [idOf(events, 'DeploymentAuthorised')],
    });
    expect(status(state, D(4), 'second')).toBe('ready');
  });

  it('reports the status of a phase that is not ready', () => {
    const { state } = mission([command('SuspendDeployment', { reason: 'r' }, D(2))]);
    expect(pre(state, D(2), 'alpha-ready')).toMatchObject({ met: false, missing: 'phase alpha is blocked' });
    expect(status(state, D(2), 'beta')).toBe('not-ready');
  });
});

describe('evaluate: policy versions and time', () => {
  const lenient: Policy = { phases: [{ id: 'alpha', title: 'Alpha (lenient)', preconditions: [] }] };

  it('uses the policy version in force at the evaluated instant', () => {
    const { state } = mission([
      command('AmendPolicy', { policy: lenient, reason: 'r', effectiveFrom: D(10) }, D(5)),
    ]);
    expect(evaluate(state, D(9))).toMatchObject({
      policyVersion: 1,
      phases: [{ phase: 'alpha' }, { phase: 'beta' }],
    });
    expect(evaluate(state, D(10))).toEqual({
      missionId: 'test-mission',
      at: D(10),
      policyVersion: 2,
      phases: [{ phase: 'alpha', title: 'Alpha (lenient)', status: 'ready', preconditions: [] }],
    });
  });

  it('lets a later amendment take over from its own effective instant', () => {
    const { state } = mission([
      command('AmendPolicy', { policy: lenient, reason: 'r', effectiveFrom: D(20) }, D(5)),
      command('AmendPolicy', { policy: lenient, reason: 'sooner', effectiveFrom: D(10) }, D(6)),
    ]);
    expect(evaluate(state, D(10)).policyVersion).toBe(3);
    expect(evaluate(state, D(25)).policyVersion).toBe(3);
  });

  it('has no phases before the mission was defined', () => {
    const { state } = mission([]);
    expect(evaluate(state, '2024-02-01T00:00:00+01:00')).toEqual({
      missionId: 'test-mission',
      at: '2024-01-31T23:00:00.000Z',
      policyVersion: null,
      phases: [],
    });
  });

  it('refuses an undefined mission and an invalid instant', () => {
    expect(() => evaluate(initialState(), D(1))).toThrow(DomainError);
    const { state } = mission([]);
    expect(() => evaluate(state, 'tomorrow')).toThrow(expect.objectContaining({ code: 'invalid-instant' }));
  });
});

describe('nextChangeAt', () => {
  it('finds the next dated fact, mandate bound or policy version after the instant', () => {
    const { state } = mission([
      command(
        'RecordMandate',
        {
          mandateId: 'm',
          issuingBody: 'UN Security Council',
          reference: 'R',
          validFrom: D(8),
          validUntil: D(20),
        },
        D(3),
      ),
      command('ApproveCouncil', { councilName: 'TPC', process: 'p' }, D(12)),
      command('ReportUnitReadiness', { unit: 'RDU', officersReady: 10, status: 'standby' }, D(14)),
      command('AmendPolicy', { policy: testPolicy2(), reason: 'r', effectiveFrom: D(16) }, D(15)),
      command(
        'PledgeLogistics',
        { pledgeId: 'l', pledger: 'chile', capability: 'medical', quantity: 1, unit: 'beds' },
        D(2),
      ),
      command('ConfirmPledge', { pledgeId: 'l' }, D(17)),
      command('AuthoriseDeployment', { phase: 'alpha', override: { justification: 'j' } }, D(18)),
    ]);
    const chain: string[] = [];
    let at: string | null = D(1);
    while (at !== null) {
      at = nextChangeAt(state, at);
      if (at !== null) {
        chain.push(at);
      }
    }
    expect(chain).toEqual([D(3), D(8), D(12), D(14), D(16), D(17), D(18), D(20)]);
  });

  it('is null when nothing is scheduled, and refuses an undefined mission', () => {
    expect(nextChangeAt(mission([]).state, D(1))).toBeNull();
    expect(() => nextChangeAt(initialState(), D(1))).toThrow(DomainError);
  });
});

function testPolicy2(): Policy {
  return { phases: [{ id: 'alpha', title: 'Alpha', preconditions: [] }] };
}

describe('officers-ready with a unit named twice', () => {
  it('counts the unit once, in evaluate and in evaluateStatus', () => {
    const policy = {
      phases: [
        {
          id: 'go',
          title: 'Go',
          preconditions: [
            {
              kind: 'threshold' as const,
              id: 'officers',
              title: 'Officers',
              measure: 'officers-ready' as const,
              minimum: 100,
              units: ['RDU', 'RDU'],
            },
          ],
        },
      ],
    };
    const state = fold(
      history(
        command('DefineMission', { name: 'M', leadNation: 'kenya', policy }),
        command('ReportUnitReadiness', { unit: 'RDU', officersReady: 50, status: 'standby' }),
      ),
    );
    const result = evaluate(state, '2024-03-02T00:00:00Z').phases[0]?.preconditions[0];
    expect(result?.met).toBe(false);
    expect(result?.missing).toBe('officers ready 50 of 100');
    expect(result?.evidence).toHaveLength(1);
    expect(evaluateStatus(state, '2024-03-02T00:00:00Z').phases[0]?.preconditions[0]?.met).toBe(false);
  });
});
