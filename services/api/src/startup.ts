import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { uuidv7 } from '@muster/event-store';
import { DomainError, parseCommand } from '@muster/readiness';
import type { RegisterAgency } from './auth/agencies.js';
import type { Config } from './config.js';
import { ApiError } from './errors.js';
import type { Services } from './services.js';

/**
 * What happens once at start-up, before listening: the configured administrator key is
 * registered, and in demo mode the `mss-haiti` mission and a few agencies with keys exist.
 */
export async function bootstrapAdmin(services: Services, config: Readonly<Config>): Promise<void> {
  if (!config.bootstrapAdminKey) return;
  const result = await services.agencies.bootstrapAdmin(config.bootstrapAdminKey);
  if (result.revoked) {
    services.logger.warn(
      { agency: result.agencyId, keyId: result.keyId },
      'MUSTER_BOOTSTRAP_ADMIN_KEY names a key that was revoked; it stays revoked (unset the variable, or set a new key)',
    );
    return;
  }
  services.logger.info(
    { agency: result.agencyId, keyId: result.keyId, created: result.created },
    'bootstrap admin key registered',
  );
}

const DEMO_AGENCIES: RegisterAgency[] = [
  { id: 'demo-admin', name: 'Demo administrators', roles: ['admin'], missions: ['*'] },
  {
    id: 'kenya',
    name: 'Kenya, Ministry of Interior and National Administration',
    roles: ['coordinator'],
    missions: ['mss-haiti'],
  },
  {
    id: 'united-states',
    name: 'United States, Department of State',
    roles: ['donor'],
    missions: ['mss-haiti'],
  },
  { id: 'canada', name: 'Canada, Global Affairs', roles: ['donor'], missions: ['mss-haiti'] },
  {
    id: 'haiti',
    name: 'Haiti, transitional authorities',
    roles: ['host-authority'],
    missions: ['mss-haiti'],
  },
  { id: 'caricom', name: 'Caribbean Community (CARICOM)', roles: ['regional-body'], missions: ['mss-haiti'] },
  {
    id: 'un-security-council',
    name: 'United Nations Security Council',
    roles: ['un'],
    missions: ['mss-haiti'],
  },
  { id: 'auditor', name: 'Independent auditor', roles: ['auditor'], missions: ['*'] },
];

export interface DemoInfo {
  missionId: string;
  keys: Record<string, string>;
  keysFile: string;
}

/**
 * Demo mode: defines `mss-haiti` from its template the first time, registers the demo agencies
 * and keeps their keys in a file beside the data (mode 0600) so that every start prints the same
 * working keys. Never for production: the keys sit on disk in clear.
 */
export async function loadDemo(services: Services, config: Readonly<Config>): Promise<DemoInfo> {
  const dataDir =
    config.store === 'sqlite' ? dirname(config.sqlitePath) : dirname(config.readModelSqlitePath);
  const keysFile = join(dataDir, 'demo-keys.json');
  const keys: Record<string, string> = existsSync(keysFile) ? JSON.parse(readFileSync(keysFile, 'utf8')) : {};
  const system = { agency: 'system', keyId: 'demo' };
  let changed = false;
  for (const agency of DEMO_AGENCIES) {
    if (!services.registry.agency(agency.id)) {
      // Two replicas starting the demo at once both see the agency missing; the second loses the
      // race, which is fine: the agency exists either way.
      await services.agencies.register(agency, system).catch((error: unknown) => {
        if (!(error instanceof ApiError && error.code === 'conflict')) throw error;
      });
      // The registry learns the other replica's registration from the log, shortly.
      for (let i = 0; i < 100 && !services.registry.agency(agency.id); i++) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
    const known = keys[agency.id] ? services.registry.authenticate(keys[agency.id] as string) : null;
    if (!known) {
      const issued = await services.agencies.issueKey(agency.id, { label: 'demo key' }, system);
      keys[agency.id] = issued.key;
      changed = true;
    }
  }
  if (changed) {
    mkdirSync(dataDir, { recursive: true });
    writeFileSync(keysFile, `${JSON.stringify(keys, null, 2)}\n`, { mode: 0o600 });
    chmodSync(keysFile, 0o600);
  }
  const missionId = 'mss-haiti';
  const mission = await services.readModel.getMission(missionId);
  if (!mission) {
    await services.writer
      .execute(
        parseCommand({
          type: 'DefineMission',
          missionId,
          commandId: `demo-define-${missionId}`,
          occurredAt: services.clock().toISOString(),
          template: 'mss-haiti',
        }),
        { actor: { agency: 'kenya', keyId: 'demo' }, correlationId: uuidv7() },
      )
      .then(
        () => services.logger.info({ missionId }, 'demo mission defined'),
        (error: unknown) => {
          // Another replica defined it first.
          if (!(error instanceof DomainError && error.code === 'mission-already-defined')) throw error;
        },
      );
  }
  return { missionId, keys, keysFile };
}

export function demoBanner(info: DemoInfo, baseUrl: string): string {
  const key = (agency: string) => info.keys[agency] ?? '(missing)';
  return [
    '',
    '  Muster demo is running.',
    `  Mission: ${info.missionId}   API docs: ${baseUrl}/docs`,
    `  Demo API keys (also in ${info.keysFile}):`,
    ...Object.keys(info.keys).map((agency) => `    ${agency.padEnd(20)} ${key(agency)}`),
    '',
    '  Try:',
    `    curl -s -H "Authorization: Bearer ${key('kenya')}" ${baseUrl}/v1/missions/${info.missionId}/readiness`,
    `    curl -s -X POST -H "Authorization: Bearer ${key('united-states')}" -H "Content-Type: application/json" \\`,
    `      -d '{"pledgeId":"us-airlift","pledger":"united-states","capability":"airlift","quantity":2,"unit":"aircraft"}' \\`,
    `      ${baseUrl}/v1/missions/${info.missionId}/commands/pledge-logistics`,
    '',
  ].join('\n');
}
