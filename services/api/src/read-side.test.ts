import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { commandCatalog, mssHaitiScenario } from '@muster/readiness';
import { Webhook } from 'standardwebhooks';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { startTestService, type TestService } from './testing/harness.js';

/** Drives the MSS Haiti story through the API, step by step, with the service clock at each step. */
async function replayScenario(svc: TestService, steps = mssHaitiScenario.steps) {
  for (const step of steps) {
    const { type, missionId, ...body } = step.command as { type: string; missionId: string } & Record<
      string,
      unknown
    >;
    svc.clock.now = new Date(Math.max(svc.clock.now.getTime(), Date.parse(step.expected.at)));
    const name = commandCatalog.find((c) => c.type === type)?.name as string;
    const res =
      type === 'DefineMission'
        ? await svc.request('POST', '/v1/missions', { body: { id: missionId, ...body } })
        : await svc.request('POST', `/v1/missions/${missionId}/commands/${name}`, { body });
    if (step.expected.error) expect(res.json().code).toBe(step.expected.error);
    else expect(res.statusCode).toBe(201);
  }
}

describe('the read side: history, audit, projections', () => {
  let svc: TestService;
  beforeEach(async () => {
    svc = await startTestService();
  });
  afterEach(() => svc.close());

  it('serves the history of verdict changes with their causes, and an audit that finds nothing wrong', async () => {
    await replayScenario(svc);
    const history = await svc.request('GET', '/v1/missions/mss-haiti/readiness/history?limit=1000');
    expect(history.statusCode).toBe(200);
    const entries = history.json().entries as Array<{
      phase: string;
      from: string | null;
      to: string;
      cause: string;
      causeEventId: string | null;
      unmetAfter: string[];
    }>;
    expect(entries.length).toBeGreaterThan(3);
    const main = entries.filter((e) => e.phase === 'main-deployment');
    expect(main.at(-1)?.to).toBe(
      mssHaitiScenario.steps.at(-1)?.expected.phases.find((p) => p.phase === 'main-deployment')?.status,
    );
    for (const e of entries.filter((e) => e.cause === 'event'))
      expect(e.causeEventId).toMatch(/^[0-9a-f-]{36}$/);
    const audit = await svc.request('GET', '/v1/missions/mss-haiti/audit');
    expect(audit.statusCode).toBe(200);
    expect(audit.json()).toMatchObject({ ok: true, mismatches: [], chain: { ok: true } });
  });

  it('answers knownAt and atPosition from the read models', async () => {
    await replayScenario(svc, mssHaitiScenario.steps.slice(0, 6));
    const events = (await svc.request('GET', '/v1/missions/mss-haiti/events?limit=1000')).json()
      .events as Array<{ position: string; recordedAt: string }>;
    const third = events[2] as { position: string; recordedAt: string };
    const at = await svc.request('GET', `/v1/missions/mss-haiti/readiness?atPosition=${third.position}`);
    expect(at.statusCode).toBe(200);
    expect(at.json()).toMatchObject({ basis: 'atPosition', revision: 2, position: third.position });
    // The same position without its leading zeros is the same position, not one past the log's end.
    const short = await svc.request(
      'GET',
      `/v1/missions/mss-haiti/readiness?atPosition=${BigInt(third.position).toString()}`,
    );
    expect(short.json()).toMatchObject({ revision: 2, position: third.position });
    const before = await svc.request(
      'GET',
      `/v1/missions/mss-haiti/readiness?atPosition=${BigInt(events[0]?.position as string) - 1n}`,
    );
    expect(before.statusCode).toBe(404);
    for (const bad of ['abc', 'Z', '1-2', '123456789012345678901']) {
      const refused = await svc.request('GET', `/v1/missions/mss-haiti/readiness?atPosition=${bad}`);
      expect(refused.statusCode, bad).toBe(400);
      expect(refused.headers['content-type']).toContain('application/problem+json');
      expect(refused.json().code, bad).toBe('invalid-position');
    }
    const known = await svc.request('GET', `/v1/missions/mss-haiti/readiness?knownAt=${third.recordedAt}`);
    expect(known.json()).toMatchObject({ basis: 'knownAt' });
    expect(known.json().revision).toBeGreaterThanOrEqual(2);
  });

  it('rebuilds a projection online and reports its status; only administrators may', async () => {
    await replayScenario(svc, mssHaitiScenario.steps.slice(0, 8));
    const auditor = await svc.agency('auditor', ['auditor']);
    const listed = await svc.request('GET', '/v1/admin/projections', { key: auditor });
    expect(listed.statusCode).toBe(200);
    const [readiness] = listed.json().projections;
    expect(readiness).toMatchObject({ name: expect.any(String), behind: false });
    expect(
      (await svc.request('POST', `/v1/admin/projections/${readiness.name}/rebuild`, { key: auditor }))
        .statusCode,
    ).toBe(403);
    const before = (await svc.request('GET', '/v1/missions/mss-haiti/readiness/history?limit=1000')).body;
    const started = await svc.request('POST', `/v1/admin/projections/${readiness.name}/rebuild`);
    expect(started.statusCode).toBe(202);
    expect(started.json().status).toBe('started');
    // Asked again while it runs (it takes about half a second here): the same rebuild, said so.
    const again = await svc.request('POST', `/v1/admin/projections/${readiness.name}/rebuild`);
    expect(again.statusCode).toBe(202);
    expect(again.json().status).toBe('in-progress');
    for (let i = 0; i < 100; i++) {
      const [status] = (await svc.request('GET', '/v1/admin/projections')).json().projections;
      if (status.generation > readiness.generation && status.rebuild === null) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const [after] = (await svc.request('GET', '/v1/admin/projections')).json().projections;
    expect(after.generation).toBeGreaterThan(readiness.generation);
    expect((await svc.request('GET', '/v1/missions/mss-haiti/readiness/history?limit=1000')).body).toBe(
      before,
    );
    expect((await svc.request('POST', '/v1/admin/projections/nope/rebuild')).statusCode).toBe(404);
  });

  it('reports muster_store_writable 0 when a keyed command fails for lack of space', async () => {
    const defined = await svc.request('POST', '/v1/missions', {
      body: { id: 'full-disk', template: 'mss-haiti' },
    });
    expect(defined.statusCode).toBe(201);
    // No more pages than the file has: the next write needs space SQLite cannot get (SQLITE_FULL).
    const [pages] = await svc.app.services.sql.query<{ page_count: number }>('PRAGMA page_count');
    await svc.app.services.sql.query(`PRAGMA max_page_count = ${pages?.page_count}`);
    // Until the free pages inside the file are used up.
    let status = 201;
    for (let i = 0; i < 500 && status === 201; i++) {
      const res = await svc.request('POST', '/v1/missions/full-disk/commands/report-unit-readiness', {
        body: { unit: 'RDU', officersReady: 100 + i, status: 'standby' },
        headers: { 'idempotency-key': `full-disk-${i}` },
      });
      status = res.statusCode;
    }
    expect(status).toBe(507);
    // The key is claimed before anything is appended, so the claim is what meets the full disk.
    expect((await svc.request('GET', '/metrics', { key: null })).body).toMatch(/^muster_store_writable 0$/m);
  });

  it('stays ready on a replica that lost its projection lease: another process leads', async () => {
    await svc.request('POST', '/v1/missions', { body: { id: 'leased', template: 'mss-haiti' } });
    await vi.waitFor(async () => {
      const [status] = await svc.app.services.projections.status();
      expect(status?.caughtUp).toBe(true);
    });
    // Another replica takes the lease, as after this one's lease expired.
    await svc.app.services.sql.execute(
      "UPDATE projection_leases SET owner = 'another-replica', term = term + 1, expires_at = $1",
      [svc.clock.now.getTime() + 600_000],
    );
    await svc.request('POST', '/v1/missions/leased/commands/report-unit-readiness', {
      body: { unit: 'RDU', officersReady: 120, status: 'standby' },
    });
    await vi.waitFor(async () => {
      const [status] = await svc.app.services.projections.status();
      expect(status).toMatchObject({ isLeader: false, lastError: { code: 'lease-lost' } });
    });
    const ready = await svc.request('GET', '/health/ready', { key: null });
    expect({ status: ready.statusCode, projection: ready.json().checks.projections[0].status }).toEqual({
      status: 200,
      projection: 'catching-up',
    });
  });

  it('reports projection lag in /metrics and the projections in /health/ready', async () => {
    // Scraped before any readiness probe: the store is up, and the gauge says so.
    expect((await svc.request('GET', '/metrics', { key: null })).body).toMatch(/^muster_store_up 1$/m);
    const ready = await svc.request('GET', '/health/ready', { key: null });
    expect(ready.json().checks.projections[0]).toMatchObject({ status: 'up' });
    const metrics = await svc.request('GET', '/metrics', { key: null });
    expect(metrics.body).toMatch(/muster_projection_lag_events\{projection="[^"]+"\} \d+/);
    expect(metrics.body).toContain('muster_commands_total');
    expect(metrics.body).toContain('muster_http_request_duration_seconds_bucket');
  });
});

describe('webhooks through the service', () => {
  let svc: TestService;
  let receiver: Server;
  const received: Array<{ headers: IncomingHttpHeaders; body: string; path: string }> = [];

  beforeEach(async () => {
    received.length = 0;
    receiver = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk) => {
        body += chunk;
      });
      req.on('end', () => {
        received.push({ headers: req.headers, body, path: req.url ?? '' });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    svc = await startTestService({
      env: { MUSTER_WEBHOOK_ALLOW_HTTP: '1', MUSTER_WEBHOOK_ALLOW_CIDRS: '127.0.0.0/8' },
    });
  });
  afterEach(async () => {
    await svc.close();
    await new Promise((resolve) => receiver.close(resolve));
  });

  it('sends an agency only the missions it may read, and refuses a subscription to others', async () => {
    const port = (receiver.address() as AddressInfo).port;
    const france = await svc.agency('france', ['donor'], ['mss-haiti']);
    const subscribe = (key: string | undefined, path: string, missions?: unknown) =>
      svc.request('POST', '/v1/webhooks', {
        ...(key ? { key } : {}),
        body: { url: `http://127.0.0.1:${port}${path}`, ...(missions ? { missions } : {}) },
      });
    const everything = await subscribe(france, '/france');
    expect(everything.statusCode).toBe(201);
    expect((await subscribe(undefined, '/admin')).statusCode).toBe(201);
    const refused = await subscribe(france, '/nope', ['mss-haiti', 'elsewhere']);
    expect(refused.statusCode).toBe(403);
    expect(refused.json()).toMatchObject({
      code: 'forbidden',
      detail: expect.stringContaining("'elsewhere'"),
    });
    const widened = await svc.request('PATCH', `/v1/webhooks/${everything.json().id}`, {
      key: france,
      body: { missions: ['elsewhere'] },
    });
    expect(widened.statusCode).toBe(403);

    await replayScenario(svc, mssHaitiScenario.steps.slice(0, 4));
    const defined = await svc.request('POST', '/v1/missions', {
      body: { id: 'elsewhere', template: 'mss-haiti', occurredAt: '2024-03-01T09:00:00Z' },
    });
    expect(defined.statusCode).toBe(201);
    const missionsAt = (path: string) =>
      new Set(
        received
          .filter((r) => r.path === path)
          .map((r) => (JSON.parse(r.body) as { data: { missionId: string } }).data.missionId),
      );
    for (let i = 0; i < 200 && !missionsAt('/admin').has('elsewhere'); i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect([...missionsAt('/admin')].sort()).toEqual(['elsewhere', 'mss-haiti']);
    expect([...missionsAt('/france')]).toEqual(['mss-haiti']);
  });

  it('delivers readiness changes signed by the Standard Webhooks rules, to the owning agency only', async () => {
    const kenya = await svc.agency('kenya', ['coordinator']);
    const other = await svc.agency('other', ['coordinator']);
    const url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
    const created = await svc.request('POST', '/v1/webhooks', {
      key: kenya,
      body: {
        url,
        missions: ['mss-haiti'],
        eventTypes: ['readiness.changed', 'precondition.changed', 'pledge.changed'],
      },
    });
    expect(created.statusCode).toBe(201);
    const { id, secret } = created.json();
    expect(secret).toMatch(/^whsec_/);
    expect((await svc.request('GET', `/v1/webhooks/${id}`, { key: other })).statusCode).toBe(404);
    expect((await svc.request('GET', '/v1/webhooks', { key: other })).json().items).toEqual([]);
    const privateUrl = await svc.request('POST', '/v1/webhooks', {
      key: other,
      body: { url: 'http://10.0.0.1/hook' },
    });
    expect(privateUrl.statusCode).toBe(422);
    expect(privateUrl.json().code).toBe('webhook-url-not-allowed');

    await replayScenario(svc, mssHaitiScenario.steps.slice(0, 10));
    for (let i = 0; i < 200 && received.length === 0; i++)
      await new Promise((resolve) => setTimeout(resolve, 50));
    for (let i = 0; i < 40; i++) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(received.length).toBeGreaterThan(0);
    const verifier = new Webhook(secret);
    const types = new Set<string>();
    // Attempts are stamped by the service clock (moved through 2023-2024 here); the verifier
    // checks the stamp against its own clock, so it is shown the moment of each attempt.
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      for (const r of received) {
        vi.setSystemTime(Number(r.headers['webhook-timestamp']) * 1000);
        const payload = verifier.verify(r.body, r.headers as Record<string, string>) as {
          type: string;
          data: { missionId: string };
        };
        types.add(payload.type);
        expect(payload.data.missionId).toBe('mss-haiti');
      }
      const stranger = new Webhook(`whsec_${Buffer.alloc(32, 7).toString('base64')}`);
      const sample = received[0] as { body: string; headers: Record<string, string> };
      expect(() => stranger.verify(sample.body, sample.headers)).toThrow();
    } finally {
      vi.useRealTimers();
    }
    expect(types.has('readiness.changed') || types.has('precondition.changed')).toBe(true);
    const deliveries = await svc.request('GET', `/v1/webhooks/${id}/deliveries`, { key: kenya });
    expect(deliveries.statusCode).toBe(200);
    expect(deliveries.json().items.length).toBeGreaterThan(0);
    const first = deliveries.json().items[0];
    const attempts = await svc.request('GET', `/v1/webhooks/deliveries/${first.id}/attempts`, { key: kenya });
    expect(attempts.json().attempts[0]).toMatchObject({ outcome: 'succeeded', statusCode: 204 });
    expect(
      (await svc.request('GET', `/v1/webhooks/deliveries/${first.id}/attempts`, { key: other })).statusCode,
    ).toBe(404);

    // A replay from an event position: written without its leading zeros it is the same position.
    const events = (await svc.request('GET', '/v1/missions/mss-haiti/events?limit=1000')).json()
      .events as Array<{ position: string }>;
    const from = events[3]?.position as string;
    const padded = await svc.request('POST', `/v1/webhooks/${id}/replay`, {
      key: kenya,
      body: { fromEventPosition: from },
    });
    expect(padded.statusCode).toBe(202);
    expect(padded.json().replayed + padded.json().alreadyPending).toBeGreaterThan(0);
    const short = await svc.request('POST', `/v1/webhooks/${id}/replay`, {
      key: kenya,
      body: { fromEventPosition: BigInt(from).toString() },
    });
    expect(short.json().replayed + short.json().alreadyPending).toBe(
      padded.json().replayed + padded.json().alreadyPending,
    );
    for (const bad of ['abc', '00000000000000000001-00000000000000000002']) {
      const refused = await svc.request('POST', `/v1/webhooks/${id}/replay`, {
        key: kenya,
        body: { fromEventPosition: bad },
      });
      expect(refused.statusCode, bad).toBe(400);
      expect(refused.json().errors[0].path).toBe('fromEventPosition');
    }
  });
});
