import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type RecordedEvent, verifyStream } from '@muster/event-store';
import { openSqliteEventStore } from '@muster/event-store-sqlite';
import { afterAll, describe, expect, it } from 'vitest';
import { call, createStore, type ServiceProcess, type StoreHandle, startService } from './harness.js';

const CLI = fileURLToPath(new URL('../../../services/cli/dist/main.js', import.meta.url));
const MISSION = 'backup-mission';
const dir = mkdtempSync(join(tmpdir(), 'muster-e2e-backup-'));
const cleanups: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  rmSync(dir, { recursive: true, force: true });
});

function muster(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { PATH: process.env.PATH ?? '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

async function readAll(path: string): Promise<RecordedEvent[]> {
  const store = await openSqliteEventStore({ path });
  const events: RecordedEvent[] = [];
  for await (const event of store.readAll()) events.push(event);
  await store.close();
  return events;
}

describe('muster backup against the running service', () => {
  it('copies the store while commands keep landing: a verified prefix of the log that serves', async () => {
    const store: StoreHandle = await createStore('sqlite');
    cleanups.push(() => store.dispose());
    const service: ServiceProcess = await startService(store);
    cleanups.push(() => service.stop());
    const defined = await call(service, 'POST', '/v1/missions', {
      body: { id: MISSION, template: 'mss-haiti', occurredAt: '2024-03-01T09:00:00Z' },
    });
    expect(defined.status).toBe(201);

    const acknowledged: { ids: string[]; at: number }[] = [];
    let writing = true;
    const writer = (async () => {
      for (let i = 0; writing; i++) {
        const res = await call(service, 'POST', `/v1/missions/${MISSION}/commands/report-unit-readiness`, {
          body: { unit: ['RDU', 'ASTU', 'GSU', 'BPU'][i % 4], officersReady: 100 + i, status: 'standby' },
        });
        expect(res.status).toBe(201);
        acknowledged.push({ ids: res.json().events.map((e: { id: string }) => e.id), at: Date.now() });
      }
    })();
    while (acknowledged.length < 200) await new Promise((resolve) => setTimeout(resolve, 20));

    const started = Date.now();
    const before = acknowledged.length;
    const destination = join(dir, 'copy.db');
    const run = await muster(['backup', destination], store.env);
    const ended = Date.now();
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout);
    expect(report).toMatchObject({ path: destination, check: 'ok' });
    while (acknowledged.length < before + 100) await new Promise((resolve) => setTimeout(resolve, 20));
    writing = false;
    await writer;
    // The service kept answering while the CLI ran.
    expect(acknowledged.filter((a) => a.at > started && a.at < ended).length).toBeGreaterThan(0);
    await service.stop();

    const original = await readAll(store.env.MUSTER_SQLITE_PATH as string);
    const copy = await readAll(destination);
    expect(copy.length).toBe(report.events);
    expect(copy.length).toBeLessThan(original.length);
    expect(copy).toEqual(original.slice(0, copy.length));
    const copied = new Set(copy.map((e) => e.id));
    const acknowledgedBefore = acknowledged.slice(0, before).flatMap((a) => a.ids);
    expect(acknowledgedBefore.filter((id) => !copied.has(id))).toEqual([]);
    expect(await verifyStream(copy.filter((e) => e.stream === `mission-${MISSION}`))).toMatchObject({
      ok: true,
    });

    // The copy is a store the service starts on, with its keys and read models.
    const restored = await startService({
      kind: 'sqlite',
      env: { MUSTER_STORE: 'sqlite', MUSTER_SQLITE_PATH: destination },
      dispose: async () => {},
    });
    cleanups.push(() => restored.stop());
    const mission = await call(restored, 'GET', `/v1/missions/${MISSION}`);
    expect(mission.status).toBe(200);
    const missionEvents = copy.filter((e) => e.stream === `mission-${MISSION}`);
    expect(mission.headers.get('etag')).toBe(`"${missionEvents[missionEvents.length - 1]?.revision}"`);
    expect((await call(restored, 'GET', `/v1/missions/${MISSION}/readiness`)).status).toBe(200);
  });

  it('refuses another store, or a destination that exists', async () => {
    const onPostgres = await muster(['backup', join(dir, 'x.db')], {
      MUSTER_STORE: 'postgres',
      DATABASE_URL: 'postgres://u@127.0.0.1:1/db',
    });
    expect(onPostgres.code).toBe(2);
    expect(onPostgres.stderr).toContain('use pg_dump');
    const existing = await muster(['backup', dir], { MUSTER_SQLITE_PATH: join(dir, 'copy.db') });
    expect(existing.code).toBe(2);
    expect(existing.stderr).toContain('never writes over a file');
  });
});
