import type { MissionCommand } from './commands.js';
import { mapGet } from './pmap.js';
import type { MissionState } from './state.js';

/**
 * The party a command acts for, so the API can hold a donor to acting only as itself: the
 * pledger named by a pledge, or, for confirming, fulfilling or withdrawing one, the pledger of
 * that pledge (undefined when the pledge is unknown; decide then refuses the command). Other
 * commands act for no particular party.
 */
export function actingParty(command: MissionCommand, state: MissionState): string | undefined {
  switch (command.type) {
    case 'PledgeLogistics':
    case 'PledgeFunding':
    case 'PledgePersonnel':
      return command.pledger;
    case 'ConfirmPledge':
    case 'RecordPledgeFulfilled':
    case 'WithdrawPledge':
      return mapGet(state.pledges, command.pledgeId)?.pledger;
    case 'DefineMission':
    case 'AmendPolicy':
    case 'AnnounceCouncil':
    case 'ApproveCouncil':
    case 'DissolveCouncil':
    case 'RecordHostAdministrationStatus':
    case 'RecordMandate':
    case 'SignAgreement':
    case 'RecordCourtOrder':
    case 'RecordApproval':
    case 'ReportUnitReadiness':
    case 'PrepareReconnaissanceTeam':
    case 'CompleteReconnaissance':
    case 'SuspendDeployment':
    case 'ResumeDeployment':
    case 'AuthoriseDeployment':
      return undefined;
    default: {
      const unreachable: never = command;
      throw new TypeError(`unknown command ${(unreachable as { type: string }).type}`);
    }
  }
}
