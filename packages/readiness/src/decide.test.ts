import { describe, expect, it } from 'vitest';
import { decide } from './decide.js';
import { DomainError } from './errors.js';
import { evaluate } from './evaluate.js';
import { fold, initialState } from './state.js';
import { missionTemplates } from './templates.js';
import {
  command,
  defineTestMission,
  event,
  given,
  history,
  MISSION,
  T0,
  testPolicy,
} from './test-support/spec.js';

const LATER = '2024-03-02T00:00:00.000Z';
const define = defineTestMission();
const defined = history(define);

const pledgeAirlift = () =>
  command('PledgeLogistics', {
    pledgeId: 'lift',
    pledger: 'united-states',
    capability: 'airlift',
    quantity: 2,
    unit: 'aircraft',
  });

describe('DefineMission', () => {
  it('defines a mission from a full policy', () => {
    given([])
      .when(define)
      .thenEvents([
        event(define, 'MissionDefined', {
          missionId: MISSION,
          name: 'Test mission',
          leadNation: 'kenya',
          baseCurrency: 'USD',
          template: null,
          policy: testPolicy,
        }),
      ]);
  });

  it('defines a mission from the mss-haiti template, with its name, lead nation and currency', () => {
    const cmd = command('DefineMission', { template: 'mss-haiti' });
    const template = missionTemplates['mss-haiti'];
    given([])
      .when(cmd)
      .thenEvents([
        event(cmd, 'MissionDefined', {
          missionId: MISSION,
          name: template.name,
          leadNation: 'kenya',
          baseCurrency: 'USD',
          template: 'mss-haiti',
          policy: template.policy,
        }),
      ]);
  });

  it('lets a template be given another name and lead nation, but not another base currency', () => {
    const cmd = command('DefineMission', {
      template: 'mss-haiti',
      name: 'Drill',
      leadNation: 'jamaica',
      baseCurrency: 'USD',
    });
    const [defined] = decide(cmd, initialState());
    expect(defined?.data).toMatchObject({ name: 'Drill', leadNation: 'jamaica', baseCurrency: 'USD' });
    // Its funding threshold is 200,000,000 USD: the same number in euros would be another rule.
    given([])
      .when(command('DefineMission', { template: 'mss-haiti', baseCurrency: 'EUR' }))
      .thenError('invalid-mission-definition', {
        reason:
          'the mss-haiti template counts its amounts in USD; give a full policy to define a mission in EUR',
      });
  });

  it('defaults the base currency of a full policy to USD', () => {
    const cmd = command('DefineMission', { name: 'M', leadNation: 'kenya', policy: testPolicy });
    expect(decide(cmd, initialState())[0]?.data).toMatchObject({ baseCurrency: 'USD' });
  });

  it('refuses to define a mission twice', () => {
    given(defined).when(defineTestMission()).thenError('mission-already-defined', { missionId: MISSION });
  });

  it('refuses both a template and a policy, or neither', () => {
    given([])
      .when(command('DefineMission', { template: 'mss-haiti', policy: testPolicy }))
      .thenError('invalid-mission-definition');
    given([])
      .when(command('DefineMission', { name: 'M', leadNation: 'kenya' }))
      .thenError('invalid-mission-definition');
  });

  it('refuses a full policy without a name or a lead nation', () => {
    given([])
      .when(command('DefineMission', { policy: testPolicy, name: 'M' }))
      .thenError('invalid-mission-definition');
    given([])
      .when(command('DefineMission', { policy: testPolicy, leadNation: 'kenya' }))
      .thenError('invalid-mission-definition');
  });

  it('refuses an invalid policy and an invalid mission id', () => {
    const policy = {
      phases: [
        { id: 'a', title: 'A', preconditions: [] },
        { id: 'a', title: 'A', preconditions: [] },
      ],
    };
    given([])
      .when(command('DefineMission', { name: 'M', leadNation: 'kenya', policy }))
      .thenError('invalid-command');
    given([])
      .when(command('DefineMission', { template: 'mss-haiti' }, T0, 'Not A Slug'))
      .thenError('invalid-command');
  });
});

describe('every command but DefineMission', () => {
  it('needs a defined mission', () => {
    given([]).when(pledgeAirlift()).thenError('mission-not-found', { missionId: MISSION });
  });

  it('must name the mission the state holds', () => {
    const other = command('SuspendDeployment', { reason: 'r' }, T0, 'other-mission');
    given(defined).when(other).thenError('mission-mismatch', { missionId: 'other-mission' });
  });

  it('is validated against its schema, occurredAt included', () => {
    const bad = { ...command('SuspendDeployment', { reason: 'r' }), occurredAt: '2024-02-30T00:00:00Z' };
    const error = given(defined).when(bad).thenError('invalid-command');
    expect(error.details.issues).toEqual([expect.objectContaining({ path: 'occurredAt' })]);
  });

  it('normalises occurredAt to canonical UTC in its events', () => {
    const cmd = command('SuspendDeployment', { reason: 'r' }, '2024-03-12T14:00:00+03:00');
    const [suspended] = decide(cmd, given(defined).state);
    expect(suspended?.occurredAt).toBe('2024-03-12T11:00:00.000Z');
  });
});

describe('AmendPolicy', () => {
  const policy = { phases: [{ id: 'only', title: 'Only', preconditions: [] }] };

  it('adopts the next version, in force from occurredAt by default', () => {
    const cmd = command('AmendPolicy', { policy, reason: 'simpler' }, LATER);
    given(defined)
      .when(cmd)
      .thenEvents([
        event(cmd, 'PolicyAmended', { version: 2, effectiveFrom: LATER, reason: 'simpler', policy }),
      ]);
  });

  it('takes an effective instant in the future, and numbers versions in order', () => {
    const first = command('AmendPolicy', { policy, reason: 'one' }, LATER);
    const cmd = command(
      'AmendPolicy',
      { policy, reason: 'two', effectiveFrom: '2024-04-01T00:00:00+02:00' },
      LATER,
    );
    given(history(define, first))
      .when(cmd)
      .thenEvents([
        event(cmd, 'PolicyAmended', {
          version: 3,
          effectiveFrom: '2024-03-31T22:00:00.000Z',
          reason: 'two',
          policy,
        }),
      ]);
  });

  it('refuses an effective instant before the amendment was made', () => {
    given(defined)
      .when(command('AmendPolicy', { policy, reason: 'backdated', effectiveFrom: T0 }, LATER))
      .thenError('effective-before-occurrence', { effectiveFrom: T0, occurredAt: LATER });
  });

  it('refuses an amendment in force before the mission was defined (the verdict has no policy then)', () => {
    const before = '2024-02-01T00:00:00.000Z';
    given(defined)
      .when(command('AmendPolicy', { policy, reason: 'backdated' }, before))
      .thenError('effective-before-definition', { effectiveFrom: before, definedAt: T0 });
    const state = fold(defined);
    expect(evaluate(state, '2024-02-15T00:00:00Z').policyVersion).toBeNull();
  });
});

describe('PledgeLogistics', () => {
  it('records the pledge', () => {
    const cmd = pledgeAirlift();
    given(defined)
      .when(cmd)
      .thenEvents([
        event(cmd, 'LogisticsPledged', {
          pledgeId: 'lift',
          pledger: 'united-states',
          capability: 'airlift',
          quantity: 2,
          unit: 'aircraft',
          description: null,
        }),
      ]);
  });

  it('refuses a pledge id already used in the mission, whatever its kind', () => {
    const funding = command('PledgeFunding', {
      pledgeId: 'lift',
      pledger: 'canada',
      amount: 5,
      currency: 'USD',
      baseCurrencyAmount: 5,
    });
    given(history(define, pledgeAirlift()))
      .when(pledgeAirlift())
      .thenError('pledge-already-exists', { pledgeId: 'lift' });
    given(history(define, pledgeAirlift())).when(funding).thenError('pledge-already-exists');
  });

  it('refuses a zero quantity and an unknown capability', () => {
    given(defined)
      .when({ ...pledgeAirlift(), quantity: 0 })
      .thenError('invalid-command');
    given(defined)
      .when({ ...pledgeAirlift(), capability: 'submarines' } as never)
      .thenError('invalid-command');
  });
});

describe('PledgeFunding', () => {
  const pledge = (currency: string, amount: number, baseCurrencyAmount: number) =>
    command('PledgeFunding', {
      pledgeId: 'money',
      pledger: 'canada',
      amount,
      currency,
      baseCurrencyAmount,
      purpose: 'pay',
    });

  it('records the amount, its currency and the declared base-currency value', () => {
    const cmd = pledge('CAD', 80_500_000, 59_600_000);
    given(defined)
      .when(cmd)
      .thenEvents([
        event(cmd, 'FundingPledged', {
          pledgeId: 'money',
          pledger: 'canada',
          amount: 80_500_000,
          currency: 'CAD',
          baseCurrency: 'USD',
          baseCurrencyAmount: 59_600_000,
          purpose: 'pay',
        }),
      ]);
  });

  it('refuses a base-currency pledge whose declared value differs from its amount', () => {
    given(defined)
      .when(pledge('USD', 100, 90))
      .thenError('base-amount-mismatch', { baseCurrency: 'USD' });
  });

  it('refuses amounts that are not positive whole numbers, and currencies that are not ISO 4217 codes', () => {
    given(defined)
      .when(pledge('CAD', 0, 1))
      .thenError('invalid-command');
    given(defined)
      .when(pledge('CAD', -5, 1))
      .thenError('invalid-command');
    given(defined)
      .when(pledge('CAD', 1.5, 1))
      .thenError('invalid-command');
    given(defined)
      .when(pledge('cad', 1, 1))
      .thenError('invalid-command');
    given(defined)
      .when(pledge('CADX', 1, 1))
      .thenError('invalid-command');
  });

  it('refuses a duplicate pledge id', () => {
    given(history(define, pledge('CAD', 1, 1)))
      .when(pledge('CAD', 2, 2))
      .thenError('pledge-already-exists');
  });
});

describe('PledgePersonnel', () => {
  it("records a contributing country's officers", () => {
    const cmd = command('PledgePersonnel', {
      pledgeId: 'benin',
      pledger: 'benin',
      officers: 2000,
      description: 'police',
    });
    given(defined)
      .when(cmd)
      .thenEvents([
        event(cmd, 'PersonnelPledged', {
          pledgeId: 'benin',
          pledger: 'benin',
          officers: 2000,
          description: 'police',
        }),
      ]);
  });

  it('refuses a duplicate id and a count that is not a positive integer', () => {
    const cmd = command('PledgePersonnel', { pledgeId: 'benin', pledger: 'benin', officers: 1 });
    given(history(define, cmd)).when(cmd).thenError('pledge-already-exists');
    given(defined)
      .when({ ...cmd, officers: 0 })
      .thenError('invalid-command');
    given(defined)
      .when({ ...cmd, officers: 2.5 })
      .thenError('invalid-command');
  });
});

describe('ConfirmPledge', () => {
  const pledged = history(define, pledgeAirlift());

  it('confirms a pledge', () => {
    const cmd = command('ConfirmPledge', { pledgeId: 'lift', note: 'aircraft assigned' }, LATER);
    given(pledged)
      .when(cmd)
      .thenEvents([event(cmd, 'PledgeConfirmed', { pledgeId: 'lift', note: 'aircraft assigned' })]);
  });

  it('refuses an unknown pledge', () => {
    given(defined)
      .when(command('ConfirmPledge', { pledgeId: 'ghost' }))
      .thenError('pledge-not-found', { pledgeId: 'ghost' });
  });

  it('refuses a withdrawn pledge', () => {
    const withdrawn = history(
      define,
      pledgeAirlift(),
      command('WithdrawPledge', { pledgeId: 'lift', reason: 'no' }),
    );
    given(withdrawn)
      .when(command('ConfirmPledge', { pledgeId: 'lift' }))
      .thenError('pledge-withdrawn');
  });

  it('refuses to confirm twice, or after fulfilment', () => {
    const confirmed = history(define, pledgeAirlift(), command('ConfirmPledge', { pledgeId: 'lift' }));
    given(confirmed)
      .when(command('ConfirmPledge', { pledgeId: 'lift' }))
      .thenError('pledge-already-confirmed', { status: 'confirmed' });
    const fulfilled = [
      ...confirmed,
      ...decideAfter(confirmed, command('RecordPledgeFulfilled', { pledgeId: 'lift' })),
    ];
    given(fulfilled)
      .when(command('ConfirmPledge', { pledgeId: 'lift' }))
      .thenError('pledge-already-confirmed', { status: 'fulfilled' });
  });
});

function decideAfter(events: Parameters<typeof given>[0], cmd: Parameters<typeof decide>[0]) {
  return decide(cmd, given(events).state);
}

describe('RecordPledgeFulfilled', () => {
  const confirmed = history(define, pledgeAirlift(), command('ConfirmPledge', { pledgeId: 'lift' }));

  it('records the delivery of a confirmed pledge', () => {
    const cmd = command('RecordPledgeFulfilled', { pledgeId: 'lift' }, LATER);
    given(confirmed)
      .when(cmd)
      .thenEvents([event(cmd, 'PledgeFulfilled', { pledgeId: 'lift', note: null })]);
  });

  it('refuses an unknown, unconfirmed, withdrawn or already fulfilled pledge', () => {
    given(defined)
      .when(command('RecordPledgeFulfilled', { pledgeId: 'lift' }))
      .thenError('pledge-not-found');
    given(history(define, pledgeAirlift()))
      .when(command('RecordPledgeFulfilled', { pledgeId: 'lift' }))
      .thenError('pledge-not-confirmed');
    const withdrawn = [
      ...confirmed,
      ...decideAfter(confirmed, command('WithdrawPledge', { pledgeId: 'lift', reason: 'r' })),
    ];
    given(withdrawn)
      .when(command('RecordPledgeFulfilled', { pledgeId: 'lift' }))
      .thenError('pledge-withdrawn');
    const fulfilled = [
      ...confirmed,
      ...decideAfter(confirmed, command('RecordPledgeFulfilled', { pledgeId: 'lift' })),
    ];
    given(fulfilled)
      .when(command('RecordPledgeFulfilled', { pledgeId: 'lift' }))
      .thenError('pledge-already-fulfilled');
  });
});

describe('WithdrawPledge', () => {
  it('withdraws a pledged or confirmed pledge', () => {
    const cmd = command('WithdrawPledge', { pledgeId: 'lift', reason: 'aircraft needed elsewhere' }, LATER);
    const expected = [
      event(cmd, 'PledgeWithdrawn', { pledgeId: 'lift', reason: 'aircraft needed elsewhere' }),
    ];
    given(history(define, pledgeAirlift())).when(cmd).thenEvents(expected);
    given(history(define, pledgeAirlift(), command('ConfirmPledge', { pledgeId: 'lift' })))
      .when(cmd)
      .thenEvents(expected);
  });

  it('refuses an unknown, already withdrawn or fulfilled pledge', () => {
    const withdraw = () => command('WithdrawPledge', { pledgeId: 'lift', reason: 'r' });
    given(defined).when(withdraw()).thenError('pledge-not-found');
    given(history(define, pledgeAirlift(), withdraw()))
      .when(withdraw())
      .thenError('pledge-withdrawn');
    const fulfilled = history(
      define,
      pledgeAirlift(),
      command('ConfirmPledge', { pledgeId: 'lift' }),
      command('RecordPledgeFulfilled', { pledgeId: 'lift' }),
    );
    given(fulfilled).when(withdraw()).thenError('pledge-already-fulfilled');
  });
});

describe('AnnounceCouncil, ApproveCouncil and DissolveCouncil', () => {
  const approve = () =>
    command('ApproveCouncil', { councilName: 'Transitional Presidential Council', process: 'decree' });

  it('announces a council', () => {
    const cmd = command('AnnounceCouncil', { councilName: 'Transitional Presidential Council' });
    given(defined)
      .when(cmd)
      .thenEvents([
        event(cmd, 'CouncilAnnounced', { councilName: 'Transitional Presidential Council', note: null }),
      ]);
  });

  it('approves a council, once', () => {
    const cmd = approve();
    given(defined)
      .when(cmd)
      .thenEvents([
        event(cmd, 'CouncilApproved', {
          councilName: 'Transitional Presidential Council',
          process: 'decree',
        }),
      ]);
    given(history(define, approve())).when(approve()).thenError('council-already-approved');
  });

  it('does not announce a council while one is approved', () => {
    given(history(define, approve()))
      .when(command('AnnounceCouncil', { councilName: 'Another' }))
      .thenError('council-already-approved');
  });

  it('dissolves the approved council, after which another can be approved', () => {
    const cmd = command('DissolveCouncil', { reason: 'mandate ended' });
    given(history(define, approve()))
      .when(cmd)
      .thenEvents([event(cmd, 'CouncilDissolved', { reason: 'mandate ended' })]);
    given(defined)
      .when(command('DissolveCouncil', { reason: 'r' }))
      .thenError('council-not-approved');
    given(history(define, approve(), command('DissolveCouncil', { reason: 'r' })))
      .when(approve())
      .thenEvents(expect.any(Array) as never);
  });
});

describe('RecordHostAdministrationStatus', () => {
  it('records a viable or collapsed administration, repeatedly', () => {
    const collapsed = command('RecordHostAdministrationStatus', {
      status: 'collapsed',
      administration: 'Government of Ariel Henry',
      note: 'resigned',
    });
    given(history(define, { ...collapsed, commandId: 'earlier' }))
      .when(collapsed)
      .thenEvents([
        event(collapsed, 'HostAdministrationStatusRecorded', {
          status: 'collapsed',
          administration: 'Government of Ariel Henry',
          note: 'resigned',
        }),
      ]);
  });
});

describe('RecordMandate', () => {
  const mandate = (mandateId = 'unsc-2699', validUntil = '2024-10-02T00:00:00Z') =>
    command('RecordMandate', {
      mandateId,
      issuingBody: 'UN Security Council',
      reference: 'S/RES/2699 (2023)',
      validFrom: '2023-10-02T00:00:00Z',
      validUntil,
    });

  it('records a mandate and its validity', () => {
    const cmd = mandate();
    given(defined)
      .when(cmd)
      .thenEvents([
        event(cmd, 'MandateRecorded', {
          mandateId: 'unsc-2699',
          issuingBody: 'UN Security Council',
          reference: 'S/RES/2699 (2023)',
          validFrom: '2023-10-02T00:00:00.000Z',
          validUntil: '2024-10-02T00:00:00.000Z',
        }),
      ]);
  });

  it('refuses a mandate id already recorded, and an empty or inverted interval', () => {
    given(history(define, mandate())).when(mandate()).thenError('mandate-already-recorded');
    given(defined).when(mandate('m', '2023-10-02T00:00:00Z')).thenError('invalid-interval');
    given(defined).when(mandate('m', '2023-01-01T00:00:00Z')).thenError('invalid-interval');
  });
});

describe('SignAgreement', () => {
  const sign = (agreementId = 'deal') =>
    command('SignAgreement', { agreementId, title: 'Deployment deal', parties: ['kenya', 'haiti'] });

  it('records the signature', () => {
    const cmd = sign();
    given(defined)
      .when(cmd)
      .thenEvents([
        event(cmd, 'AgreementSigned', {
          agreementId: 'deal',
          title: 'Deployment deal',
          parties: ['kenya', 'haiti'],
        }),
      ]);
  });

  it('refuses to sign the same agreement twice, but takes another', () => {
    given(history(define, sign()))
      .when(sign())
      .thenError('agreement-already-signed', { agreementId: 'deal' });
    given(history(define, sign()))
      .when(sign('other'))
      .thenEvents(expect.any(Array) as never);
  });

  it('needs at least two parties', () => {
    given(defined)
      .when({ ...sign(), parties: ['kenya'] })
      .thenError('invalid-command');
  });
});

describe('RecordCourtOrder', () => {
  const order = (effect: 'barring' | 'lifted', reference = 'E-2023-1') =>
    command('RecordCourtOrder', { reference, court: 'High Court of Kenya', effect });

  it('records an order barring deployment, and its lifting', () => {
    const bar = order('barring');
    given(defined)
      .when(bar)
      .thenEvents([
        event(bar, 'CourtOrderRecorded', {
          reference: 'E-2023-1',
          court: 'High Court of Kenya',
          effect: 'barring',
          summary: null,
        }),
      ]);
    const lift = order('lifted');
    given(history(define, order('barring')))
      .when(lift)
      .thenEvents([
        event(lift, 'CourtOrderRecorded', {
          reference: 'E-2023-1',
          court: 'High Court of Kenya',
          effect: 'lifted',
          summary: null,
        }),
      ]);
  });

  it('refuses to bar twice with the same order, or to lift an order that is not barring', () => {
    given(history(define, order('barring')))
      .when(order('barring'))
      .thenError('court-order-already-active');
    given(defined).when(order('lifted')).thenError('court-order-not-active');
    given(history(define, order('barring')))
      .when(order('lifted', 'other'))
      .thenError('court-order-not-active');
  });
});

describe('RecordApproval', () => {
  const approval = (decision: 'granted' | 'revoked', body: 'cabinet' | 'parliament' = 'parliament') =>
    command('RecordApproval', { body, nation: 'kenya', decision, reference: 'Hansard 2023-11-16' });

  it('records a grant and a revocation', () => {
    const grant = approval('granted');
    given(defined)
      .when(grant)
      .thenEvents([
        event(grant, 'ApprovalRecorded', {
          body: 'parliament',
          nation: 'kenya',
          decision: 'granted',
          reference: 'Hansard 2023-11-16',
        }),
      ]);
    const revoke = approval('revoked');
    given(history(define, approval('granted')))
      .when(revoke)
      .thenEvents([
        event(revoke, 'ApprovalRecorded', {
          body: 'parliament',
          nation: 'kenya',
          decision: 'revoked',
          reference: 'Hansard 2023-11-16',
        }),
      ]);
  });

  it('refuses to grant twice or revoke what is not granted; cabinet and parliament are separate', () => {
    given(history(define, approval('granted')))
      .when(approval('granted'))
      .thenError('approval-already-granted');
    given(defined).when(approval('revoked')).thenError('approval-not-granted');
    given(history(define, approval('granted')))
      .when(approval('revoked', 'cabinet'))
      .thenError('approval-not-granted');
  });
});

describe('ReportUnitReadiness', () => {
  it('records the officers ready and the status of a unit', () => {
    const cmd = command('ReportUnitReadiness', { unit: 'RDU', officersReady: 400, status: 'standby' });
    given(defined)
      .when(cmd)
      .thenEvents([
        event(cmd, 'UnitReadinessReported', {
          unit: 'RDU',
          officersReady: 400,
          status: 'standby',
          note: null,
        }),
      ]);
  });

  it('takes zero officers but not a negative or fractional count, nor a lower-case unit code', () => {
    const cmd = command('ReportUnitReadiness', { unit: 'RDU', officersReady: 0, status: 'preparing' });
    expect(decide(cmd, given(defined).state)).toHaveLength(1);
    given(defined)
      .when({ ...cmd, officersReady: -1 })
      .thenError('invalid-command');
    given(defined)
      .when({ ...cmd, officersReady: 1.5 })
      .thenError('invalid-command');
    given(defined)
      .when({ ...cmd, unit: 'rdu' })
      .thenError('invalid-command');
  });
});

describe('PrepareReconnaissanceTeam and CompleteReconnaissance', () => {
  const prepare = () =>
    command('PrepareReconnaissanceTeam', { teamSize: 12, leadUnit: 'GSU', note: 'briefed' });
  const complete = () => command('CompleteReconnaissance', { summary: 'basing assessed' });

  it('prepares the team, once', () => {
    const cmd = prepare();
    given(defined)
      .when(cmd)
      .thenEvents([
        event(cmd, 'ReconnaissanceTeamPrepared', { teamSize: 12, leadUnit: 'GSU', note: 'briefed' }),
      ]);
    given(history(define, prepare())).when(prepare()).thenError('reconnaissance-team-already-prepared');
  });

  it('completes the reconnaissance once the team is prepared, once', () => {
    const cmd = complete();
    given(history(define, prepare()))
      .when(cmd)
      .thenEvents([event(cmd, 'ReconnaissanceCompleted', { summary: 'basing assessed' })]);
    given(defined).when(complete()).thenError('reconnaissance-team-not-prepared');
    // Prepared on 10 March: a completion dated 5 March would precede its team.
    given(history(define, command('PrepareReconnaissanceTeam', { teamSize: 10 }, '2024-03-10T00:00:00Z')))
      .when(command('CompleteReconnaissance', { summary: 'done' }, '2024-03-05T00:00:00Z'))
      .thenError('reconnaissance-team-not-prepared', { preparedAt: '2024-03-10T00:00:00.000Z' });
    given(history(define, prepare(), complete()))
      .when(complete())
      .thenError('reconnaissance-already-completed');
  });
});

describe('SuspendDeployment and ResumeDeployment', () => {
  const suspend = () => command('SuspendDeployment', { reason: 'no administration' });
  const resume = () => command('ResumeDeployment', { reason: 'council in place' });

  it('suspends, and resumes', () => {
    const s = suspend();
    given(defined)
      .when(s)
      .thenEvents([event(s, 'DeploymentSuspended', { reason: 'no administration' })]);
    const r = resume();
    given(history(define, suspend()))
      .when(r)
      .thenEvents([event(r, 'DeploymentResumed', { reason: 'council in place' })]);
  });

  it('refuses to suspend twice or resume what is not suspended', () => {
    given(history(define, suspend())).when(suspend()).thenError('deployment-already-suspended');
    given(defined).when(resume()).thenError('deployment-not-suspended');
    given(history(define, suspend(), resume()))
      .when(resume())
      .thenError('deployment-not-suspended');
  });
});

describe('AuthoriseDeployment', () => {
  const simple = { phases: [{ id: 'go', title: 'Go', preconditions: [] }, ...testPolicy.phases] };
  const defineSimple = command('DefineMission', { name: 'M', leadNation: 'kenya', policy: simple });

  it('authorises a ready phase', () => {
    const cmd = command('AuthoriseDeployment', { phase: 'go' }, LATER);
    given(history(defineSimple))
      .when(cmd)
      .thenEvents([
        event(cmd, 'DeploymentAuthorised', {
          phase: 'go',
          policyVersion: 1,
          statusAtAuthorisation: 'ready',
          unmet: [],
          override: null,
        }),
      ]);
  });

  it('refuses a phase that is not ready, naming the unmet preconditions', () => {
    const error = given(history(defineSimple))
      .when(command('AuthoriseDeployment', { phase: 'alpha' }, LATER))
      .thenError('phase-not-ready', { phase: 'alpha', status: 'not-ready', policyVersion: 1, at: LATER });
    expect(error.details.unmet).toEqual([
      { id: 'council', kind: 'fact', title: 'Council approved', missing: 'no council approved recorded' },
      { id: 'officers', kind: 'threshold', title: 'Officers ready', missing: 'officers ready 0 of 100' },
      {
        id: 'lift',
        kind: 'coverage',
        title: 'Airlift and medical',
        missing: 'no confirmed airlift, medical',
      },
      {
        id: 'mandate',
        kind: 'mandate',
        title: 'UN mandate',
        missing: 'no mandate from UN Security Council recorded',
      },
    ]);
  });

  it('authorises a phase that is not ready with an override and its justification', () => {
    const cmd = command(
      'AuthoriseDeployment',
      { phase: 'alpha', override: { justification: 'Lives at stake; mandate renewal is imminent.' } },
      LATER,
    );
    given(history(defineSimple, command('SuspendDeployment', { reason: 'r' })))
      .when(cmd)
      .thenEvents([
        event(cmd, 'DeploymentAuthorised', {
          phase: 'alpha',
          policyVersion: 1,
          statusAtAuthorisation: 'blocked',
          unmet: ['council', 'unblocked', 'officers', 'lift', 'mandate'],
          override: { justification: 'Lives at stake; mandate renewal is imminent.' },
        }),
      ]);
  });

  it('refuses an empty or blank justification', () => {
    for (const justification of ['', '   ']) {
      given(history(defineSimple))
        .when(command('AuthoriseDeployment', { phase: 'alpha', override: { justification } }))
        .thenError('invalid-command');
    }
  });

  it('refuses a phase the policy in force does not have, or a phase already authorised', () => {
    given(history(defineSimple))
      .when(command('AuthoriseDeployment', { phase: 'omega' }))
      .thenError('phase-not-found', { phase: 'omega', phases: ['go', 'alpha', 'beta'] });
    given(history(defineSimple, command('AuthoriseDeployment', { phase: 'go' })))
      .when(command('AuthoriseDeployment', { phase: 'go' }))
      .thenError('phase-already-authorised', { phase: 'go' });
  });

  it('judges readiness at the instant of the authorisation, under the policy then in force', () => {
    given(history(defineSimple))
      .when(command('AuthoriseDeployment', { phase: 'go' }, '2024-02-01T00:00:00Z'))
      .thenError('phase-not-found', { policyVersion: null });
  });
});

describe('decide', () => {
  it('throws DomainErrors only, for any malformed input', () => {
    expect(() => decide({ type: 'Nope' } as never, initialState())).toThrow(DomainError);
  });
});

describe('changes dated before the latest change of the same switch', () => {
  const define = defineTestMission();
  const at = (day: number) => `2024-03-${String(day).padStart(2, '0')}T00:00:00.000Z`;

  it('refuses a resumption dated before the suspension it would lift (it would lift nothing)', () => {
    const suspend = command('SuspendDeployment', { reason: 'hold' }, at(10));
    const suspended = history(define, suspend);
    given(suspended)
      .when(command('ResumeDeployment', { reason: 'lift' }, at(5)))
      .thenError('dated-before-latest-change', { what: 'suspension', latestChangeAt: at(10) });
    // At or after the suspension it is accepted, and the verdict then shows it lifted.
    const state = fold(history(define, suspend, command('ResumeDeployment', { reason: 'lift' }, at(10))));
    const unblocked = evaluate(state, at(20)).phases[0]?.preconditions.find((p) => p.id === 'unblocked');
    expect(unblocked?.met).toBe(true);
  });

  it('refuses a suspension dated before the resumption already recorded', () => {
    const h = history(
      define,
      command('SuspendDeployment', { reason: 'hold' }, at(2)),
      command('ResumeDeployment', { reason: 'lift' }, at(5)),
    );
    given(h)
      .when(command('SuspendDeployment', { reason: 'again' }, at(3)))
      .thenError('dated-before-latest-change', { what: 'suspension' });
  });

  it('refuses a court order lifted before it barred, a council dissolved before its approval, an approval revoked before it was granted', () => {
    given(
      history(
        define,
        command('RecordCourtOrder', { reference: 'E1/2024', court: 'High Court', effect: 'barring' }, at(10)),
      ),
    )
      .when(
        command('RecordCourtOrder', { reference: 'E1/2024', court: 'High Court', effect: 'lifted' }, at(5)),
      )
      .thenError('dated-before-latest-change', { what: 'court-order E1/2024' });
    given(history(define, command('ApproveCouncil', { councilName: 'TPC', process: 'p' }, at(10))))
      .when(command('DissolveCouncil', { reason: 'r' }, at(5)))
      .thenError('dated-before-latest-change', { what: 'council-approved' });
    given(
      history(
        define,
        command('RecordApproval', { body: 'parliament', nation: 'kenya', decision: 'granted' }, at(10)),
      ),
    )
      .when(command('RecordApproval', { body: 'parliament', nation: 'kenya', decision: 'revoked' }, at(5)))
      .thenError('dated-before-latest-change', { what: 'parliament-approved kenya' });
  });

  it('still accepts a first change dated early (a late record of a past fact)', () => {
    const h = history(
      define,
      command('PledgePersonnel', { pledgeId: 'p', pledger: 'benin', officers: 5 }, at(10)),
    );
    const suspend = command('SuspendDeployment', { reason: 'hold' }, at(2));
    given(h)
      .when(suspend)
      .thenEvents([event(suspend, 'DeploymentSuspended', { reason: 'hold' })]);
  });
});
