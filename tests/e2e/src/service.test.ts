import { randomBytes } from 'node:crypto';
import { mssHaitiScenario } from '@muster/readiness';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  call,
  createStore,
  kebab,
  postgresAvailability,
  registerAgency,
  type ServiceProcess,
  type StoreHandle,
  type StoreKind,
  startService,
} from './harness.js';

const postgres = postgresAvailability();
const stores: Array<{ kind: StoreKind; skip: string | null }> = [
  { kind: 'sqlite', skip: null },
  { kind: 'postgres', skip: postgres.available ? null : postgres.reason },
];

for (const { kind, skip } of stores) {
  const suite = skip ? describe.skip : describe;
  if (skip) process.stderr.write(`[e2e] ${kind} suite skipped: ${skip}\n`);

  suite(`the service as a process on ${kind}`, () => {
    let store: StoreHandle;
    let service: ServiceProcess;

    beforeAll(async () => {
      store = await createStore(kind);
      service = await startService(store);
    });
    afterAll(async () => {
      await service?.stop();
      await store?.dispose();
    });

    it('replays the MSS Haiti story and reaches the expected verdict after every step', async () => {
      const { missionId, steps } = mssHaitiScenario;
      for (const [index, step] of steps.entries()) {
        const {
          type,
          missionId: _mission,
          ...body
        } = step.command as { type: string; missionId: string } & Record<string, unknown>;
        const path =
          type === 'DefineMission' ? '/v1/missions' : `/v1/missions/${missionId}/commands/${kebab(type)}`;
        const res = await call(service, 'POST', path, {
          body: type === 'DefineMission' ? { id: missionId, ...body } : body,
        });
        const label = `step ${index + 1}: ${step.title}`;
        if (step.expected.error) {
          expect({ label, code: res.json().code }).toEqual({ label, code: step.expected.error });
          expect(res.headers.get('content-type')).toContain('application/problem+json');
        } else {
          expect({ label, status: res.status, body: res.status === 201 ? '' : res.body }).toEqual({
            label,
            status: 201,
            body: '',
          });
        }
        const readiness = await call(
          service,
          'GET',
          `/v1/missions/${missionId}/readiness?asOf=${step.expected.at}`,
        );
        expect(readiness.status).toBe(200);
        const phases = readiness
          .json()
          .phases.map(
            (p: { phase: string; status: string; preconditions: Array<{ id: string; met: boolean }> }) => ({
              phase: p.phase,
              status: p.status,
              unmet: p.preconditions.filter((c) => !c.met).map((c) => c.id),
            }),
          );
        expect({ label, phases }).toEqual({ label, phases: step.expected.phases });
      }

      const second = await call(service, 'POST', '/v1/missions', {
        body: { id: 'a-later-mission', template: 'mss-haiti', occurredAt: '2024-03-01T09:00:00Z' },
      });
      expect(second.status).toBe(201);
      const first = (await call(service, 'GET', '/v1/missions?limit=1')).json();
      expect(first).toMatchObject({ missions: [{ missionId }], next: missionId });
      const last = (await call(service, 'GET', `/v1/missions?limit=1&after=${first.next}`)).json();
      expect(last).toMatchObject({ missions: [{ missionId: 'a-later-mission' }], next: null });
    });

    it('reports a start-up failure as one fatal line and exits 1, without a stack', async () => {
      for (const [label, env, said] of [
        ['its port taken', { PORT: String(service.port) }, /could not listen on 127\.0\.0\.1:\d+/],
        ['a bad webhook range', { MUSTER_WEBHOOK_ALLOW_CIDRS: '10.0.0.0/99' }, /could not start the service/],
      ] as const) {
        const error = await startService(store, env).then(
          () => null,
          (e: unknown) => e as Error,
        );
        const output = error?.message ?? '';
        expect({ label, exited: /service exited with 1/.test(output) }).toEqual({ label, exited: true });
        expect({ label, said: said.test(output) }).toEqual({ label, said: true });
        expect({ label, stack: /\n\s+at /.test(output) }).toEqual({ label, stack: false });
      }
    });

    it('warns at start of webhook secrets kept in clear and of links naming localhost, only when so', async () => {
      const said = (output: string[]) => {
        const text = output.join('');
        return {
          clearSecrets: text.includes('MUSTER_WEBHOOK_SECRET_KEY is not set'),
          localhostLinks: text.includes('MUSTER_PUBLIC_URL is not set'),
        };
      };
      // A store of its own: a second live process on the suite's SQLite file would take its leases.
      const own = await createStore(kind);
      const exposed = await startService(own, { HOST: '0.0.0.0' });
      await exposed.stop();
      expect(said(exposed.output)).toEqual({ clearSecrets: true, localhostLinks: true });
      const configured = await startService(own, {
        HOST: '0.0.0.0',
        MUSTER_PUBLIC_URL: 'https://muster.example.org',
        MUSTER_WEBHOOK_SECRET_KEY: randomBytes(32).toString('base64'),
      });
      await configured.stop();
      expect(said(configured.output)).toEqual({ clearSecrets: false, localhostLinks: false });
      // On loopback nobody else follows the links: no warning about them.
      const local = await startService(own, { HOST: '127.0.0.1' });
      await local.stop();
      await own.dispose();
      expect(said(local.output)).toEqual({ clearSecrets: true, localhostLinks: false });
    });

    it.skipIf(kind !== 'sqlite')(
      'exits at once on a second signal while the first waits for a request in flight',
      async () => {
        // A read that waits (up to 2 s) for a position the log has not reached holds the shutdown.
        const hold = (s: ServiceProcess) =>
          call(s, 'GET', '/v1/missions/mss-haiti/readiness', {
            headers: { 'muster-min-position': '99999999' },
          }).catch(() => null);
        const own = await createStore(kind);
        const patient = await startService(own);
        const waited = hold(patient);
        await new Promise((resolve) => setTimeout(resolve, 300));
        patient.child.kill('SIGTERM');
        expect({ code: await patient.exited, answer: (await waited)?.status }).toEqual({
          code: 0,
          answer: 503,
        });

        const hurried = await startService(own);
        const cut = hold(hurried);
        await new Promise((resolve) => setTimeout(resolve, 300));
        hurried.child.kill('SIGTERM');
        await new Promise((resolve) => setTimeout(resolve, 300));
        hurried.child.kill('SIGTERM');
        expect(await hurried.exited).toBe(1);
        expect(hurried.output.join('')).toContain('second signal during shutdown: exiting now');
        expect(await cut).toBeNull();
        await own.dispose();
      },
    );

    it('answers every kind of bad input with a 4xx problem and appends nothing', async () => {
      const before = (await call(service, 'GET', '/v1/missions/mss-haiti')).json().revision;
      const url = '/v1/missions/mss-haiti/commands/pledge-funding';
      const cases: Array<[string, Parameters<typeof call>[3], number]> = [
        ['malformed JSON', { body: '{"pledgeId": ' }, 400],
        [
          'wrong types',
          { body: { pledgeId: 1, pledger: 2, amount: 'lots', currency: 'usd', baseCurrencyAmount: -5 } },
          400,
        ],
        ['missing fields', { body: {} }, 400],
        [
          'a huge body',
          { body: JSON.stringify({ pledgeId: 'x', purpose: 'y'.repeat(3 * 1024 * 1024) }) },
          413,
        ],
        [
          'not JSON',
          { body: 'amount=5', headers: { 'content-type': 'application/x-www-form-urlencoded' } },
          415,
        ],
        ['no key', { key: null, body: {} }, 401],
      ];
      for (const [name, options, status] of cases) {
        const res = await call(service, 'POST', url, options);
        expect({ name, status: res.status }).toEqual({ name, status });
        expect(res.headers.get('content-type')).toContain('application/problem+json');
        expect(res.json().code).toEqual(expect.any(String));
      }
      const unknown = await call(service, 'POST', '/v1/missions/mss-haiti/commands/launch', { body: {} });
      expect(unknown.status).toBe(404);
      expect(unknown.json().knownCommands).toContain('pledge-funding');
      expect((await call(service, 'GET', '/v1/missions/mss-haiti')).json().revision).toBe(before);
    });

    it('refuses a commandId given again for another command at once, and appends nothing', async () => {
      const url = '/v1/missions/mss-haiti/commands/report-unit-readiness';
      const commandId = '0190a6c4-58a4-7a53-8b1a-2b7c4c3e2f11';
      const report = (officersReady: number) =>
        call(service, 'POST', url, { body: { unit: 'RDU', officersReady, status: 'standby', commandId } });
      expect((await report(10)).status).toBe(201);
      const before = (await call(service, 'GET', '/v1/missions/mss-haiti')).json().revision;
      const again = await report(20);
      expect({ status: again.status, code: again.json().code }).toEqual({
        status: 409,
        code: 'command-id-reused',
      });
      expect((await call(service, 'GET', '/v1/missions/mss-haiti')).json().revision).toBe(before);
    });

    it('keeps idempotency keys across a restart', async () => {
      const donor = await registerAgency(service, 'canada', ['donor'], ['mss-haiti']);
      const body = {
        pledgeId: 'ca-medical-e2e',
        pledger: 'canada',
        capability: 'medical',
        quantity: 1,
        unit: 'teams',
      };
      const first = await call(service, 'POST', '/v1/missions/mss-haiti/commands/pledge-logistics', {
        key: donor,
        body,
        headers: { 'idempotency-key': 'e2e-restart' },
      });
      expect(first.status).toBe(201);
      expect(await service.stop()).toBe(0);
      service = await startService(store);
      const again = await call(service, 'POST', '/v1/missions/mss-haiti/commands/pledge-logistics', {
        key: donor,
        body,
        headers: { 'idempotency-key': 'e2e-restart' },
      });
      expect(again.status).toBe(201);
      expect(again.body).toBe(first.body);
      expect(again.headers.get('idempotent-replayed')).toBe('true');
      const other = await call(service, 'POST', '/v1/missions/mss-haiti/commands/pledge-logistics', {
        key: donor,
        body: { ...body, quantity: 2 },
        headers: { 'idempotency-key': 'e2e-restart' },
      });
      expect(other.status).toBe(422);
    });

    it('finishes in-flight commands on SIGTERM and loses nothing it acknowledged', async () => {
      let answered = 0;
      let signalled: () => void = () => {};
      const tenAnswered = new Promise<void>((resolve) => {
        signalled = resolve;
      });
      const requests = Array.from({ length: 200 }, (_, i) =>
        call(service, 'POST', '/v1/missions/mss-haiti/commands/report-unit-readiness', {
          body: { unit: 'GSU', officersReady: 100 + i, status: 'standby' },
        })
          .catch((error: unknown) => ({ status: 0, error }))
          .finally(() => {
            if (++answered === 10) signalled();
          }),
      );
      // Stop while most of the requests are still in flight.
      await tenAnswered;
      const exit = service.stop('SIGTERM');
      const results = await Promise.all(requests);
      const code = await exit;
      expect(code).toBe(0);
      const acknowledged = results
        .filter((r): r is Awaited<ReturnType<typeof call>> => r.status === 201)
        .map((r) => r.json().events[0].id as string);
      expect(acknowledged.length).toBeGreaterThan(0);
      for (const r of results) expect([0, 201, 503]).toContain(r.status);
      service = await startService(store);
      const events: string[] = [];
      let after = -1;
      for (;;) {
        const page = (
          await call(service, 'GET', `/v1/missions/mss-haiti/events?afterRevision=${after}&limit=1000`)
        ).json();
        events.push(...page.events.map((e: { id: string }) => e.id));
        if (page.nextAfterRevision === null) break;
        after = page.nextAfterRevision;
      }
      const stored = new Set(events);
      expect(acknowledged.filter((id) => !stored.has(id))).toEqual([]);
    });
  });
}
