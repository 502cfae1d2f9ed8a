import type { CommandCatalogEntry } from '@muster/readiness';

/**
 * Who may issue which command. An agency holds one or more roles and a mission scope (`*` or a
 * list of mission ids). The matrix is per command, written out so that it can be read and
 * tested as a table (docs/api-roles.md mirrors it).
 */
export const ROLES = [
  'admin',
  'coordinator',
  'donor',
  'host-authority',
  'regional-body',
  'un',
  'auditor',
] as const;
export type Role = (typeof ROLES)[number];

export const ROLE_DESCRIPTIONS: Readonly<Record<Role, string>> = {
  admin: 'Runs the service: every command on every mission, agencies and API keys.',
  coordinator:
    "The lead nation's coordinating ministry: defines missions and their policy, records pledges for any pledger, agreements, court orders, approvals, unit readiness, reconnaissance, suspensions and authorisations.",
  donor: 'A donor or contributing government: pledges, confirms, fulfils and withdraws its own pledges only.',
  'host-authority':
    "The host country's transitional authorities: the council, the state of the host administration, agreements and approvals.",
  'regional-body':
    'A regional community (e.g. CARICOM): announces, approves and dissolves the council; signs agreements.',
  un: 'The United Nations: records mandates.',
  auditor: 'Reads everything, on every mission, and writes nothing.',
};

const COMMANDS_BY_ROLE: Readonly<Record<Role, ReadonlySet<string> | 'all'>> = {
  admin: 'all',
  coordinator: new Set([
    'define-mission',
    'amend-policy',
    'pledge-logistics',
    'pledge-funding',
    'pledge-personnel',
    'confirm-pledge',
    'record-pledge-fulfilled',
    'withdraw-pledge',
    'sign-agreement',
    'record-court-order',
    'record-approval',
    'report-unit-readiness',
    'prepare-reconnaissance-team',
    'complete-reconnaissance',
    'suspend-deployment',
    'resume-deployment',
    'authorise-deployment',
  ]),
  donor: new Set([
    'pledge-logistics',
    'pledge-funding',
    'pledge-personnel',
    'confirm-pledge',
    'record-pledge-fulfilled',
    'withdraw-pledge',
  ]),
  'host-authority': new Set([
    'announce-council',
    'approve-council',
    'dissolve-council',
    'record-host-administration-status',
    'sign-agreement',
    'record-approval',
  ]),
  'regional-body': new Set(['announce-council', 'approve-council', 'dissolve-council', 'sign-agreement']),
  un: new Set(['record-mandate']),
  auditor: new Set(),
};

/** Roles that may act for any party; the others act only as their own agency. */
const ACTS_FOR_OTHERS: ReadonlySet<Role> = new Set(['admin', 'coordinator']);

export interface Principal {
  agencyId: string;
  keyId: string;
  roles: readonly Role[];
  /** `*` or mission ids. */
  missions: readonly string[];
}

export function canIssue(principal: Principal, command: Pick<CommandCatalogEntry, 'name'>): boolean {
  return principal.roles.some((role) => {
    const allowed = COMMANDS_BY_ROLE[role];
    return allowed === 'all' || allowed.has(command.name);
  });
}

/** Whether the principal may act for `party` with this command (donors only as themselves). */
export function canActFor(
  principal: Principal,
  command: Pick<CommandCatalogEntry, 'name'>,
  party: string,
): boolean {
  if (party === principal.agencyId) return true;
  return principal.roles.some((role) => {
    const allowed = COMMANDS_BY_ROLE[role];
    return ACTS_FOR_OTHERS.has(role) && (allowed === 'all' || allowed.has(command.name));
  });
}

/** The missions these rights may read: every one (an auditor, an admin, a `*` scope) or these. */
export function readScope(rights: Pick<Principal, 'roles' | 'missions'>): '*' | readonly string[] {
  return rights.roles.includes('admin') || rights.roles.includes('auditor') || rights.missions.includes('*')
    ? '*'
    : rights.missions;
}

/** Reading a mission: in scope, or an auditor or admin (who read everything). */
export function canRead(principal: Principal, missionId: string): boolean {
  const scope = readScope(principal);
  return scope === '*' || scope.includes(missionId);
}

export function inScope(principal: Principal, missionId: string): boolean {
  return (
    principal.roles.includes('admin') ||
    principal.missions.includes('*') ||
    principal.missions.includes(missionId)
  );
}

export const isAdmin = (principal: Principal): boolean => principal.roles.includes('admin');
