import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CONFIG_VARIABLES, loadConfig } from '@muster/api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { ADMIN_KEY, createStore, type ServiceProcess, type StoreHandle, startService } from './harness.js';

/**
 * What `infra/` deploys, checked against the service without a container runtime: the bundle the
 * image's build stage assembles (infra/assemble-runtime.sh, run here as the Dockerfile runs it)
 * must start and answer, and the Dockerfile, compose file and Kubernetes manifest must only set
 * what the service reads and probe what it serves.
 */
const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const INFRA = join(ROOT, 'infra');
const dockerfile = readFileSync(join(INFRA, 'Dockerfile'), 'utf8');
// Compose files use YAML merge keys (`<<:`), which YAML 1.2 leaves off unless asked.
const compose = parse(readFileSync(join(INFRA, 'compose.yaml'), 'utf8'), { merge: true }) as {
  services: Record<string, { image?: string; environment?: Record<string, string>; healthcheck?: unknown }>;
};
const manifests = readFileSync(join(INFRA, 'kubernetes/muster.yaml'), 'utf8')
  .split(/^---$/m)
  .map((doc) => parse(doc) as { kind: string; spec: Record<string, unknown> });

interface Container {
  image: string;
  env: { name: string; value?: string }[];
  ports: { name: string; containerPort: number }[];
  readinessProbe: { httpGet: { path: string } };
  livenessProbe: { httpGet: { path: string } };
  startupProbe: { httpGet: { path: string } };
}
const deployment = manifests.find((m) => m.kind === 'Deployment') as unknown as {
  spec: { template: { spec: { terminationGracePeriodSeconds: number; containers: Container[] } } };
};
const pod = deployment.spec.template.spec;
const container = pod.containers[0] as Container;

let bundle = '';
let store: StoreHandle;
let service: ServiceProcess;

beforeAll(async () => {
  bundle = join(mkdtempSync(join(tmpdir(), 'muster-bundle-')), 'app');
  // The Dockerfile's own line, so that this runs what the image runs.
  const line = /^RUN bash (infra\/assemble-runtime\.sh) \/runtime$/m.exec(dockerfile);
  expect(line).not.toBeNull();
  execFileSync('bash', [join(ROOT, line?.[1] as string), bundle], { cwd: ROOT, stdio: 'pipe' });
  store = await createStore('sqlite');
  const command = /^CMD \["node", "([^"]+)"\]$/m.exec(dockerfile)?.[1] as string;
  service = await startService(store, {}, join(bundle, command));
}, 300_000);

afterAll(async () => {
  await service?.stop();
  await store?.dispose();
  if (bundle) rmSync(join(bundle, '..'), { recursive: true, force: true });
});

describe('the runtime bundle (infra/assemble-runtime.sh)', () => {
  it('starts the service from the Dockerfile command, ready and live', async () => {
    for (const path of ['/health/ready', '/health/live']) {
      expect((await fetch(`${service.url}${path}`)).status).toBe(200);
    }
    const agencies = await fetch(`${service.url}/v1/agencies`, {
      headers: { authorization: `Bearer ${ADMIN_KEY}` },
    });
    expect(agencies.status).toBe(200);
  });

  it('carries no development tools', () => {
    const installed = readdirSync(join(bundle, 'node_modules/.pnpm'));
    expect(installed.some((name) => name.startsWith('better-sqlite3@'))).toBe(true);
    for (const tool of ['vitest@', 'typescript@', 'tsx@', 'turbo@', '@biomejs+', 'fast-check@']) {
      expect(installed.filter((name) => name.startsWith(tool))).toEqual([]);
    }
  });

  it('runs the CLI the image puts on PATH against the same store', () => {
    const target = /ln -s \/app\/(\S+) \/usr\/local\/bin\/muster/.exec(dockerfile)?.[1] as string;
    expect(existsSync(join(bundle, target))).toBe(true);
    const out = execFileSync(join(bundle, target), ['projections', 'status'], {
      env: { PATH: process.env.PATH ?? '', ...store.env },
      encoding: 'utf8',
    });
    expect(JSON.parse(out)[0]).toMatchObject({ name: 'readiness' });
  });
});

describe('the deployment files', () => {
  const known = new Set(CONFIG_VARIABLES);
  /** The image's ENV, which every container of it starts with. */
  const imageEnv = Object.fromEntries(
    [...dockerfile.matchAll(/^\s*(?:ENV\s+)?([A-Z][A-Z0-9_]*)=(\S+)/gm)].map((m) => [m[1], m[2]]),
  );
  delete imageEnv.NODE_ENV;
  /** What an operator supplies: compose interpolation and the Kubernetes secret, with valid values. */
  const supplied = (name: string, value: string | undefined): string => {
    if (name === 'MUSTER_BOOTSTRAP_ADMIN_KEY') return 'k'.repeat(64);
    if (name === 'MUSTER_WEBHOOK_SECRET_KEY') return Buffer.alloc(32, 7).toString('base64');
    if (name === 'DATABASE_URL' && value === undefined)
      return 'postgres://muster:secret@postgres:5432/muster';
    return value?.startsWith('${') ? '' : (value ?? '');
  };
  const musterServices = Object.entries(compose.services).filter(([, s]) => s.image === 'muster:local');
  const deployments: [string, Record<string, string>][] = [
    ...musterServices.map(([name, s]): [string, Record<string, string>] => [
      `compose ${name}`,
      Object.fromEntries(Object.entries(s.environment ?? {}).map(([k, v]) => [k, supplied(k, String(v))])),
    ]),
    ['kubernetes', Object.fromEntries(container.env.map((e) => [e.name, supplied(e.name, e.value)]))],
  ];

  it('are configurations the service accepts, naming only variables it reads', () => {
    expect(musterServices.map(([name]) => name).sort()).toEqual([
      'muster',
      'muster-esdb',
      'muster-pg-a',
      'muster-pg-b',
    ]);
    for (const [where, env] of deployments) {
      const merged = { ...imageEnv, ...env };
      expect({ where, unknown: Object.keys(merged).filter((name) => !known.has(name)) }).toEqual({
        where,
        unknown: [],
      });
      expect(() => loadConfig(merged), where).not.toThrow();
    }
    const stores = deployments.map(([where, env]) => [where, loadConfig({ ...imageEnv, ...env }).store]);
    expect(new Set(stores.map(([, store]) => store))).toEqual(new Set(['sqlite', 'postgres', 'esdb']));
  });

  it('probe routes that answer, on the port the service listens on', async () => {
    const paths = [container.readinessProbe, container.livenessProbe, container.startupProbe].map(
      (p) => p.httpGet.path,
    );
    paths.push(/HEALTHCHECK[\s\S]*?(\/health\/\w+)/.exec(dockerfile)?.[1] as string);
    for (const path of paths) expect((await fetch(`${service.url}${path}`)).status).toBe(200);
    const port = container.env.find((e) => e.name === 'PORT')?.value;
    expect(container.ports.map((p) => String(p.containerPort))).toEqual([port]);
    expect(dockerfile).toMatch(new RegExp(`EXPOSE ${port}\\b`));
  });

  it('give the service longer to stop than its shutdown timeout', () => {
    const timeoutMs = Number(container.env.find((e) => e.name === 'MUSTER_SHUTDOWN_TIMEOUT_MS')?.value);
    expect(pod.terminationGracePeriodSeconds * 1000).toBeGreaterThan(timeoutMs);
    const timeoutSeconds = Math.ceil(Number(imageEnv.MUSTER_SHUTDOWN_TIMEOUT_MS ?? 15_000) / 1000);
    for (const [, s] of musterServices) {
      const grace = Number.parseInt((s as { stop_grace_period?: string }).stop_grace_period ?? '10', 10);
      expect(grace).toBeGreaterThan(timeoutSeconds);
    }
  });
});
