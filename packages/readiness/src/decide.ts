import { type CommandOf, commandSchema, type MissionCommand, zodIssues } from './commands.js';
import { DomainError } from './errors.js';
import { evaluate } from './evaluate.js';
import {
  EVENT_SCHEMA_VERSIONS,
  type EventDataOf,
  type MissionEvent,
  type MissionEventType,
} from './events.js';
import { eventIdFor } from './ids.js';
import { canonicalInstant, toIso, toMs } from './instant.js';
import { mapGet } from './pmap.js';
import { vecLast } from './pvec.js';
import {
  factHolds,
  type MissionInfo,
  type MissionState,
  NO_SUBJECT,
  type PledgeRecord,
  type SwitchRecord,
  switchRecord,
} from './state.js';
import { missionTemplates } from './templates.js';

/** Builds the events of one command: ids from the command, time from the command. */
class Emitter {
  private readonly events: MissionEvent[] = [];
  private readonly occurredAt: string;

  constructor(private readonly command: MissionCommand) {
    this.occurredAt = canonicalInstant(command.occurredAt, 'occurredAt');
  }

  emit<T extends MissionEventType>(type: T, data: EventDataOf<T>): this {
    this.events.push({
      id: eventIdFor(this.command.missionId, this.command.commandId, this.events.length),
      type,
      schemaVersion: EVENT_SCHEMA_VERSIONS[type],
      occurredAt: this.occurredAt,
      data,
    } as MissionEvent);
    return this;
  }

  done(): MissionEvent[] {
    return this.events;
  }
}

function requirePledge(state: MissionState, pledgeId: string): PledgeRecord {
  const pledge = mapGet(state.pledges, pledgeId);
  if (pledge === undefined) {
    throw new DomainError('pledge-not-found', { pledgeId });
  }
  return pledge;
}

function requireNewPledge(state: MissionState, pledgeId: string): void {
  if (mapGet(state.pledges, pledgeId) !== undefined) {
    throw new DomainError('pledge-already-exists', { pledgeId });
  }
}

function blockerActive(state: MissionState, kind: string, subject: string = NO_SUBJECT): boolean {
  return switchRecord(state.blockers, kind, subject)?.current ?? false;
}

/**
 * Refuses a change to a switch (a blocker, the council, an approval) dated before the latest
 * change already recorded for it. decide checks `current` (the last change recorded) while the
 * verdict follows occurredAt: a resumption dated before the suspension it lifts would be accepted
 * and then lift nothing, leaving the deployment suspended for good while decide, believing it
 * resumed, refused every further ResumeDeployment. Keeping each switch's changes in date order
 * keeps what decide believes and what the verdict shows the same.
 */
function requireNotBeforeLatest(
  record: SwitchRecord | undefined,
  command: MissionCommand,
  what: string,
): void {
  const latest = record === undefined ? undefined : vecLast(record.points);
  if (latest !== undefined && toMs(command.occurredAt, 'occurredAt') < latest.at) {
    throw new DomainError('dated-before-latest-change', {
      what,
      occurredAt: canonicalInstant(command.occurredAt),
      latestChangeAt: toIso(latest.at),
      latestEventId: latest.eventId,
    });
  }
}

/**
 * Decides what a command means for the mission: the events to append, or a DomainError.
 * Pure: time and ids come with the command. Lifecycle rules (a withdrawn pledge cannot be
 * confirmed, a council cannot be approved twice) follow the order in which events were
 * recorded; readiness (for AuthoriseDeployment) is evaluated at the command's occurredAt.
 */
export function decide(command: MissionCommand, state: MissionState): MissionEvent[] {
  const parsed = commandSchema.safeParse(command);
  if (!parsed.success) {
    throw new DomainError('invalid-command', { issues: zodIssues(parsed.error) });
  }
  return decideParsed(parsed.data, state);
}

/**
 * `decide` for a command that has already passed `commandSchema`: what `parseCommand` returns, or
 * a command the API assembled from a body that passed the command's own payload schema and
 * envelope fields that passed theirs. Validating again would cost a command a second zod parse
 * of the whole union (about 4% of its time in the service) and change nothing.
 */
export function decideParsed(valid: MissionCommand, state: MissionState): MissionEvent[] {
  if (valid.type === 'DefineMission') {
    return defineMission(valid, state);
  }
  if (state.mission === null) {
    throw new DomainError('mission-not-found', { missionId: valid.missionId });
  }
  if (state.mission.missionId !== valid.missionId) {
    throw new DomainError('mission-mismatch', {
      missionId: valid.missionId,
      stateMissionId: state.mission.missionId,
    });
  }
  return decideForMission(valid, state, state.mission);
}

function defineMission(command: CommandOf<'DefineMission'>, state: MissionState): MissionEvent[] {
  if (state.mission !== null) {
    throw new DomainError('mission-already-defined', { missionId: state.mission.missionId });
  }
  const { template, policy } = command;
  if ((template === undefined) === (policy === undefined)) {
    throw new DomainError('invalid-mission-definition', {
      reason: 'give exactly one of template and policy',
    });
  }
  const base = template === undefined ? undefined : missionTemplates[template];
  // A template's thresholds are amounts in its own currency: taken over in another, 200,000,000
  // USD would silently become 200,000,000 EUR.
  if (
    base !== undefined &&
    command.baseCurrency !== undefined &&
    command.baseCurrency !== base.baseCurrency
  ) {
    throw new DomainError('invalid-mission-definition', {
      reason: `the ${template} template counts its amounts in ${base.baseCurrency}; give a full policy to define a mission in ${command.baseCurrency}`,
    });
  }
  const name = command.name ?? base?.name;
  const leadNation = command.leadNation ?? base?.leadNation;
  if (name === undefined || leadNation === undefined) {
    throw new DomainError('invalid-mission-definition', {
      reason: 'a full policy needs a name and a lead nation',
    });
  }
  return new Emitter(command)
    .emit('MissionDefined', {
      missionId: command.missionId,
      name,
      leadNation,
      baseCurrency: command.baseCurrency ?? base?.baseCurrency ?? 'USD',
      template: template ?? null,
      policy: (policy ?? base?.policy) as NonNullable<typeof policy>,
    })
    .done();
}

function decideForMission(
  command: MissionCommand,
  state: MissionState,
  mission: MissionInfo,
): MissionEvent[] {
  const out = new Emitter(command);
  switch (command.type) {
    case 'DefineMission':
      throw new DomainError('mission-already-defined', { missionId: mission.missionId });
    case 'AmendPolicy': {
      const effectiveFrom = command.effectiveFrom ?? command.occurredAt;
      if (toMs(effectiveFrom, 'effectiveFrom') < toMs(command.occurredAt, 'occurredAt')) {
        throw new DomainError('effective-before-occurrence', {
          effectiveFrom: canonicalInstant(effectiveFrom),
          occurredAt: canonicalInstant(command.occurredAt),
        });
      }
      // Before the definition no version is in force (the verdict has no phases); an amendment
      // dated earlier would make one govern a mission that did not exist yet.
      if (toMs(effectiveFrom, 'effectiveFrom') < mission.definedAt) {
        throw new DomainError('effective-before-definition', {
          effectiveFrom: canonicalInstant(effectiveFrom),
          definedAt: toIso(mission.definedAt),
        });
      }
      const version = Math.max(...state.policies.map((existing) => existing.version)) + 1;
      return out
        .emit('PolicyAmended', {
          version,
          effectiveFrom: canonicalInstant(effectiveFrom),
          reason: command.reason,
          policy: command.policy,
        })
        .done();
    }
    case 'PledgeLogistics':
      requireNewPledge(state, command.pledgeId);
      return out
        .emit('LogisticsPledged', {
          pledgeId: command.pledgeId,
          pledger: command.pledger,
          capability: command.capability,
          quantity: command.quantity,
          unit: command.unit,
          description: command.description ?? null,
        })
        .done();
    case 'PledgeFunding':
      requireNewPledge(state, command.pledgeId);
      if (command.currency === mission.baseCurrency && command.baseCurrencyAmount !== command.amount) {
        throw new DomainError('base-amount-mismatch', {
          amount: command.amount,
          baseCurrencyAmount: command.baseCurrencyAmount,
          baseCurrency: mission.baseCurrency,
        });
      }
      return out
        .emit('FundingPledged', {
          pledgeId: command.pledgeId,
          pledger: command.pledger,
          amount: command.amount,
          currency: command.currency,
          baseCurrency: mission.baseCurrency,
          baseCurrencyAmount: command.baseCurrencyAmount,
          purpose: command.purpose ?? null,
        })
        .done();
    case 'PledgePersonnel':
      requireNewPledge(state, command.pledgeId);
      return out
        .emit('PersonnelPledged', {
          pledgeId: command.pledgeId,
          pledger: command.pledger,
          officers: command.officers,
          description: command.description ?? null,
        })
        .done();
    case 'ConfirmPledge': {
      const pledge = requirePledge(state, command.pledgeId);
      if (pledge.status === 'withdrawn') {
        throw new DomainError('pledge-withdrawn', { pledgeId: pledge.pledgeId });
      }
      if (pledge.status !== 'pledged') {
        throw new DomainError('pledge-already-confirmed', {
          pledgeId: pledge.pledgeId,
          status: pledge.status,
        });
      }
      return out.emit('PledgeConfirmed', { pledgeId: pledge.pledgeId, note: command.note ?? null }).done();
    }
    case 'RecordPledgeFulfilled': {
      const pledge = requirePledge(state, command.pledgeId);
      if (pledge.status === 'withdrawn') {
        throw new DomainError('pledge-withdrawn', { pledgeId: pledge.pledgeId });
      }
      if (pledge.status === 'fulfilled') {
        throw new DomainError('pledge-already-fulfilled', { pledgeId: pledge.pledgeId });
      }
      if (pledge.status === 'pledged') {
        throw new DomainError('pledge-not-confirmed', { pledgeId: pledge.pledgeId });
      }
      return out.emit('PledgeFulfilled', { pledgeId: pledge.pledgeId, note: command.note ?? null }).done();
    }
    case 'WithdrawPledge': {
      const pledge = requirePledge(state, command.pledgeId);
      if (pledge.status === 'withdrawn') {
        throw new DomainError('pledge-withdrawn', { pledgeId: pledge.pledgeId });
      }
      if (pledge.status === 'fulfilled') {
        throw new DomainError('pledge-already-fulfilled', { pledgeId: pledge.pledgeId });
      }
      return out.emit('PledgeWithdrawn', { pledgeId: pledge.pledgeId, reason: command.reason }).done();
    }
    case 'AnnounceCouncil':
      if (factHolds(state, 'council-approved')) {
        throw new DomainError('council-already-approved');
      }
      return out
        .emit('CouncilAnnounced', { councilName: command.councilName, note: command.note ?? null })
        .done();
    case 'ApproveCouncil':
      if (factHolds(state, 'council-approved')) {
        throw new DomainError('council-already-approved');
      }
      requireNotBeforeLatest(switchRecord(state.facts, 'council-approved'), command, 'council-approved');
      return out
        .emit('CouncilApproved', { councilName: command.councilName, process: command.process })
        .done();
    case 'DissolveCouncil':
      if (!factHolds(state, 'council-approved')) {
        throw new DomainError('council-not-approved');
      }
      requireNotBeforeLatest(switchRecord(state.facts, 'council-approved'), command, 'council-approved');
      return out.emit('CouncilDissolved', { reason: command.reason }).done();
    case 'RecordHostAdministrationStatus':
      return out
        .emit('HostAdministrationStatusRecorded', {
          status: command.status,
          administration: command.administration,
          note: command.note ?? null,
        })
        .done();
    case 'RecordMandate': {
      if (mapGet(state.mandates, command.mandateId) !== undefined) {
        throw new DomainError('mandate-already-recorded', { mandateId: command.mandateId });
      }
      const validFrom = canonicalInstant(command.validFrom, 'validFrom');
      const validUntil = canonicalInstant(command.validUntil, 'validUntil');
      if (toMs(validUntil) <= toMs(validFrom)) {
        throw new DomainError('invalid-interval', { validFrom, validUntil });
      }
      return out
        .emit('MandateRecorded', {
          mandateId: command.mandateId,
          issuingBody: command.issuingBody,
          reference: command.reference,
          validFrom,
          validUntil,
        })
        .done();
    }
    case 'SignAgreement':
      if (factHolds(state, 'agreement-signed', command.agreementId)) {
        throw new DomainError('agreement-already-signed', { agreementId: command.agreementId });
      }
      return out
        .emit('AgreementSigned', {
          agreementId: command.agreementId,
          title: command.title,
          parties: command.parties,
        })
        .done();
    case 'RecordCourtOrder': {
      const active = blockerActive(state, 'court-order', command.reference);
      if (command.effect === 'barring' && active) {
        throw new DomainError('court-order-already-active', { reference: command.reference });
      }
      if (command.effect === 'lifted' && !active) {
        throw new DomainError('court-order-not-active', { reference: command.reference });
      }
      requireNotBeforeLatest(
        switchRecord(state.blockers, 'court-order', command.reference),
        command,
        `court-order ${command.reference}`,
      );
      return out
        .emit('CourtOrderRecorded', {
          reference: command.reference,
          court: command.court,
          effect: command.effect,
          summary: command.summary ?? null,
        })
        .done();
    }
    case 'RecordApproval': {
      const fact = command.body === 'cabinet' ? 'cabinet-approved' : 'parliament-approved';
      const granted = factHolds(state, fact, command.nation);
      if (command.decision === 'granted' && granted) {
        throw new DomainError('approval-already-granted', { body: command.body, nation: command.nation });
      }
      if (command.decision === 'revoked' && !granted) {
        throw new DomainError('approval-not-granted', { body: command.body, nation: command.nation });
      }
      requireNotBeforeLatest(
        switchRecord(state.facts, fact, command.nation),
        command,
        `${fact} ${command.nation}`,
      );
      return out
        .emit('ApprovalRecorded', {
          body: command.body,
          nation: command.nation,
          decision: command.decision,
          reference: command.reference ?? null,
        })
        .done();
    }
    case 'ReportUnitReadiness':
      return out
        .emit('UnitReadinessReported', {
          unit: command.unit,
          officersReady: command.officersReady,
          status: command.status,
          note: command.note ?? null,
        })
        .done();
    case 'PrepareReconnaissanceTeam':
      if (factHolds(state, 'reconnaissance-team-prepared')) {
        throw new DomainError('reconnaissance-team-already-prepared');
      }
      return out
        .emit('ReconnaissanceTeamPrepared', {
          teamSize: command.teamSize,
          leadUnit: command.leadUnit ?? null,
          note: command.note ?? null,
        })
        .done();
    case 'CompleteReconnaissance': {
      if (factHolds(state, 'reconnaissance-completed')) {
        throw new DomainError('reconnaissance-already-completed');
      }
      const prepared = switchRecord(state.facts, 'reconnaissance-team-prepared');
      if (prepared === undefined || !prepared.current) {
        throw new DomainError('reconnaissance-team-not-prepared');
      }
      // Prepared first in time too, not only in the order recorded: a completion dated before
      // the preparation would make the reconnaissance complete before it had a team.
      const preparedAt = vecLast(prepared.points)?.at ?? Number.NEGATIVE_INFINITY;
      if (toMs(command.occurredAt, 'occurredAt') < preparedAt) {
        throw new DomainError('reconnaissance-team-not-prepared', {
          occurredAt: canonicalInstant(command.occurredAt),
          preparedAt: toIso(preparedAt),
        });
      }
      return out.emit('ReconnaissanceCompleted', { summary: command.summary }).done();
    }
    case 'SuspendDeployment':
      if (blockerActive(state, 'suspension')) {
        throw new DomainError('deployment-already-suspended');
      }
      requireNotBeforeLatest(switchRecord(state.blockers, 'suspension'), command, 'suspension');
      return out.emit('DeploymentSuspended', { reason: command.reason }).done();
    case 'ResumeDeployment':
      if (!blockerActive(state, 'suspension')) {
        throw new DomainError('deployment-not-suspended');
      }
      requireNotBeforeLatest(switchRecord(state.blockers, 'suspension'), command, 'suspension');
      return out.emit('DeploymentResumed', { reason: command.reason }).done();
    case 'AuthoriseDeployment':
      return authoriseDeployment(command, state, out);
    default: {
      const unreachable: never = command;
      throw new DomainError('invalid-command', { type: (unreachable as { type: string }).type });
    }
  }
}

function authoriseDeployment(
  command: CommandOf<'AuthoriseDeployment'>,
  state: MissionState,
  out: Emitter,
): MissionEvent[] {
  const verdict = evaluate(state, command.occurredAt);
  const phase = verdict.phases.find((candidate) => candidate.phase === command.phase);
  if (phase === undefined || verdict.policyVersion === null) {
    throw new DomainError('phase-not-found', {
      phase: command.phase,
      policyVersion: verdict.policyVersion,
      phases: verdict.phases.map((candidate) => candidate.phase),
    });
  }
  if (mapGet(state.authorisations, command.phase) !== undefined) {
    throw new DomainError('phase-already-authorised', { phase: command.phase });
  }
  const unmet = phase.preconditions.filter((precondition) => !precondition.met);
  if (unmet.length > 0 && command.override === undefined) {
    throw new DomainError('phase-not-ready', {
      phase: command.phase,
      status: phase.status,
      at: verdict.at,
      policyVersion: verdict.policyVersion,
      unmet: unmet.map(({ id, kind, title, missing }) => ({ id, kind, title, missing })),
    });
  }
  return out
    .emit('DeploymentAuthorised', {
      phase: command.phase,
      policyVersion: verdict.policyVersion,
      statusAtAuthorisation: phase.status,
      unmet: unmet.map((precondition) => precondition.id),
      override: command.override === undefined ? null : { justification: command.override.justification },
    })
    .done();
}
