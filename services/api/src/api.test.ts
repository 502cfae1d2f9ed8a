import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { commandCatalog } from '@muster/readiness';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ROLES } from './auth/roles.js';
import { startTestService, type TestService } from './testing/harness.js';

const pledge = (id: string, pledger = 'united-states') => ({
  pledgeId: id,
  pledger,
  capability: 'airlift',
  quantity: 2,
  unit: 'aircraft',
  occurredAt: '2024-03-02T10:00:00Z',
});

const expectProblem = (
  res: { statusCode: number; headers: Record<string, unknown>; json(): unknown },
  status: number,
  code: string,
) => {
  expect(res.statusCode).toBe(status);
  expect(String(res.headers['content-type'])).toContain('application/problem+json');
  const body = res.json() as Record<string, unknown>;
  expect(body).toMatchObject({ status, code, type: `urn:muster:problem:${code}` });
  expect(JSON.stringify(body)).not.toMatch(/\bat .*\.(ts|js):\d+/);
  return body;
};

describe('the readiness API', () => {
  let svc: TestService;
  let kenya: string;
  let us: string;

  beforeEach(async () => {
    svc = await startTestService();
    kenya = await svc.agency('kenya', ['coordinator'], ['mss-haiti']);
    us = await svc.agency('united-states', ['donor'], ['mss-haiti']);
    const defined = await svc.request('POST', '/v1/missions', {
      key: kenya,
      body: { id: 'mss-haiti', template: 'mss-haiti', occurredAt: '2024-03-01T09:00:00Z' },
    });
    expect(defined.statusCode).toBe(201);
  });

  afterEach(async () => {
    await svc.close();
  });

  describe('authentication', () => {
    it('needs a valid key on every /v1 call', async () => {
      expectProblem(await svc.request('GET', '/v1/missions', { key: null }), 401, 'unauthorized');
      const wrong = await svc.request('GET', '/v1/missions', {
        key: 'mk_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
      });
      expectProblem(wrong, 401, 'unauthorized');
      expect(wrong.headers['www-authenticate']).toContain('Bearer');
      expectProblem(
        await svc.request('GET', '/v1/missions', { key: 'not a key at all' }),
        401,
        'unauthorized',
      );
      expect((await svc.request('GET', '/v1/missions', { key: kenya })).statusCode).toBe(200);
    });

    it('refuses a caller without a key, or without the rights, before reading its body', async () => {
      const before = await svc.eventCount();
      const command = '/v1/missions/mss-haiti/commands/pledge-logistics';
      const auditor = await svc.agency('the-auditor', ['auditor']);
      const bodies: Array<[string, string, string]> = [
        ['malformed JSON', '{bad', 'application/json'],
        ['not JSON at all', 'pledge', 'text/plain'],
        ['a body over the limit', `{"note":"${'x'.repeat(1_100_000)}"}`, 'application/json'],
      ];
      for (const [label, payload, type] of bodies) {
        const anonymous = await svc.request('POST', command, {
          key: null,
          body: payload,
          headers: { 'content-type': type },
        });
        expect({ label, status: anonymous.statusCode }).toEqual({ label, status: 401 });
        const readOnly = await svc.request('POST', command, {
          key: auditor,
          body: payload,
          headers: { 'content-type': type },
        });
        expect({ label, status: readOnly.statusCode }).toEqual({ label, status: 403 });
      }
      const notAdmin = await svc.request('POST', '/v1/agencies', { key: kenya, body: { id: 'x' } });
      expectProblem(notAdmin, 403, 'forbidden');
      const othersKey = await svc.request('POST', '/v1/agencies/united-states/keys', {
        key: kenya,
        body: { label: 7 },
      });
      expectProblem(othersKey, 403, 'forbidden');
      expect(await svc.eventCount()).toBe(before + 2); // the auditor agency and its key
    });

    it('a revoked key stops working at once', async () => {
      const issued = (
        await svc.request('POST', '/v1/agencies/kenya/keys', { key: kenya, body: { label: 'second' } })
      ).json();
      expect(issued.key).toMatch(/^mk_[a-z0-9]{16}_[A-Za-z0-9_-]{43}$/);
      expect((await svc.request('GET', '/v1/me', { key: issued.key })).json()).toMatchObject({
        agencyId: 'kenya',
        keyId: issued.keyId,
      });
      const revoked = await svc.request('DELETE', `/v1/agencies/kenya/keys/${issued.keyId}`, { key: kenya });
      expect(revoked.statusCode).toBe(204);
      expectProblem(await svc.request('GET', '/v1/me', { key: issued.key }), 401, 'unauthorized');
    });

    it('a key may expire: refused if born expired, working until its instant, then not', async () => {
      const past = new Date(svc.clock.now.getTime() - 1000).toISOString();
      const born = await svc.request('POST', '/v1/agencies/kenya/keys', {
        key: kenya,
        body: { expiresAt: past },
      });
      expect(expectProblem(born, 400, 'validation-failed').errors).toEqual([
        expect.objectContaining({ path: 'expiresAt' }),
      ]);
      const until = new Date(svc.clock.now.getTime() + 60_000).toISOString();
      const issued = (
        await svc.request('POST', '/v1/agencies/kenya/keys', { key: kenya, body: { expiresAt: until } })
      ).json();
      expect(issued.expiresAt).toBe(until);
      expect((await svc.request('GET', '/v1/me', { key: issued.key })).statusCode).toBe(200);
      svc.clock.now = new Date(svc.clock.now.getTime() + 60_000);
      expectProblem(await svc.request('GET', '/v1/me', { key: issued.key }), 401, 'unauthorized');
    });

    it('a key that expires cannot issue its agency a key that outlives it', async () => {
      const until = new Date(svc.clock.now.getTime() + 60_000).toISOString();
      const short = (
        await svc.request('POST', '/v1/agencies/kenya/keys', { key: kenya, body: { expiresAt: until } })
      ).json();
      const before = await svc.eventCount();
      const later = new Date(svc.clock.now.getTime() + 3_600_000).toISOString();
      for (const body of [{ label: 'forever' }, { label: 'later', expiresAt: later }]) {
        const res = await svc.request('POST', '/v1/agencies/kenya/keys', { key: short.key, body });
        expect(expectProblem(res, 403, 'forbidden').expiresAt).toBe(until);
      }
      expect(await svc.eventCount()).toBe(before);
      const sooner = new Date(svc.clock.now.getTime() + 30_000).toISOString();
      const child = await svc.request('POST', '/v1/agencies/kenya/keys', {
        key: short.key,
        body: { expiresAt: sooner },
      });
      expect(child.statusCode).toBe(201);
      // A key without an expiry, and an administrator for another agency, are not bound by it.
      expect(
        (await svc.request('POST', '/v1/agencies/kenya/keys', { key: kenya, body: { label: 'x' } }))
          .statusCode,
      ).toBe(201);
    });

    it('refuses an agency whose rights would not mean what they say', async () => {
      const count = await svc.eventCount();
      for (const [label, body, path] of [
        [
          'an auditor with a scope',
          { id: 'aud-x', name: 'A', roles: ['auditor'], missions: ['m-one'] },
          'missions',
        ],
        [
          'an admin with a scope',
          { id: 'adm-x', name: 'A', roles: ['admin'], missions: ['m-one', '*'] },
          'missions',
        ],
        ['a role twice', { id: 'don-x', name: 'A', roles: ['donor', 'donor'] }, 'roles'],
        [
          'a mission twice',
          { id: 'don-y', name: 'A', roles: ['donor'], missions: ['m-one', 'm-one'] },
          'missions',
        ],
        ['a blank name', { id: 'don-z', name: '   ', roles: ['donor'] }, 'name'],
      ] as const) {
        const problem = expectProblem(
          await svc.request('POST', '/v1/agencies', { body }),
          400,
          'validation-failed',
        );
        expect({ label, paths: (problem.errors as Array<{ path: string }>).map((e) => e.path) }).toEqual({
          label,
          paths: [path],
        });
      }
      expect(await svc.eventCount()).toBe(count);
      expect(
        (await svc.request('POST', '/v1/agencies', { body: { id: 'aud-ok', name: 'A', roles: ['auditor'] } }))
          .statusCode,
      ).toBe(201);
    });

    it('lists keys without ever showing them, and keeps agencies apart', async () => {
      const listed = await svc.request('GET', '/v1/agencies/kenya/keys', { key: kenya });
      expect(listed.statusCode).toBe(200);
      expect(listed.body).not.toContain(kenya.slice(20));
      expect(listed.json().keys[0]).toEqual(
        expect.objectContaining({ keyId: expect.any(String), revokedAt: null }),
      );
      expectProblem(await svc.request('GET', '/v1/agencies/kenya/keys', { key: us }), 403, 'forbidden');
      expectProblem(
        await svc.request('POST', '/v1/agencies/kenya/keys', { key: us, body: {} }),
        403,
        'forbidden',
      );
      const kenyaKeyId = listed.json().keys[0].keyId;
      expectProblem(
        await svc.request('DELETE', `/v1/agencies/kenya/keys/${kenyaKeyId}`, { key: us }),
        403,
        'forbidden',
      );
      expectProblem(
        await svc.request('POST', '/v1/agencies', {
          key: kenya,
          body: { id: 'x1', name: 'x', roles: ['admin'] },
        }),
        403,
        'forbidden',
      );
      expect(
        (await svc.request('GET', '/v1/agencies', { key: us }))
          .json()
          .agencies.map((a: { id: string }) => a.id),
      ).toEqual(['united-states']);
    });

    it('records agencies and keys as events, with who did it, and keeps only a hash of each key', async () => {
      const events = [];
      for await (const e of svc.store.readAll({ filter: { streamPrefixes: ['agency-'] } })) events.push(e);
      const issued = events.filter((e) => e.type === 'ApiKeyIssued');
      expect(issued.length).toBeGreaterThanOrEqual(3);
      for (const e of issued) {
        expect(JSON.stringify(e)).not.toContain(kenya.slice(20));
        expect((e.data as { secretHash: string }).secretHash).toMatch(/^[0-9a-f]{64}$/);
      }
      const kenyaRegistered = events.find(
        (e) => e.type === 'AgencyRegistered' && e.stream === 'agency-kenya',
      );
      expect(kenyaRegistered?.metadata.actor).toEqual({
        agency: 'muster-admin',
        keyId: expect.stringMatching(/^boot/),
      });
    });
  });

  describe('commands', () => {
    it('appends events, answers 201 with them, the revision, the position and an ETag, and records who', async () => {
      const res = await svc.request('POST', '/v1/missions/mss-haiti/commands/pledge-logistics', {
        key: us,
        body: pledge('us-airlift'),
      });
      expect(res.statusCode).toBe(201);
      const body = res.json();
      expect(body).toMatchObject({
        missionId: 'mss-haiti',
        command: 'pledge-logistics',
        revision: 1,
        replayed: false,
      });
      expect(body.events).toHaveLength(1);
      expect(body.events[0]).toMatchObject({
        type: 'LogisticsPledged',
        revision: 1,
        occurredAt: '2024-03-02T10:00:00.000Z',
      });
      expect(res.headers.etag).toBe('"1"');
      const [stored] = await collect(svc.store.readStream('mission-mss-haiti', { fromRevision: 1 }));
      expect(stored?.metadata).toMatchObject({
        actor: { agency: 'united-states', keyId: expect.any(String) },
        commandId: body.commandId,
      });
      expect(stored?.position).toBe(body.position);
      // The 201 is a receipt: the event's link in the chain, as the log holds it.
      expect(body.events[0].hash).toMatch(/^[0-9a-f]{64}$/);
      expect(body.events[0].hash).toBe(stored?.hash);
    });

    it('serves readiness that reflects the commands, now and as of an earlier instant', async () => {
      const before = (await svc.request('GET', '/v1/missions/mss-haiti/readiness', { key: kenya })).json();
      expect(before.phases.map((p: { phase: string }) => p.phase)).toEqual([
        'reconnaissance',
        'main-deployment',
      ]);
      const unmet = (json: typeof before, phase: string) =>
        json.phases
          .find((p: { phase: string }) => p.phase === phase)
          .preconditions.filter((p: { met: boolean }) => !p.met)
          .map((p: { id: string }) => p.id);
      expect(unmet(before, 'reconnaissance')).toContain('viable-administration');
      svc.clock.now = new Date('2024-05-01T00:00:00Z');
      await svc.request('POST', '/v1/missions/mss-haiti/commands/record-host-administration-status', {
        key: await svc.agency('haiti', ['host-authority'], ['mss-haiti']),
        body: {
          status: 'viable',
          administration: 'Transitional Presidential Council',
          occurredAt: '2024-04-25T12:00:00Z',
        },
      });
      const after = (await svc.request('GET', '/v1/missions/mss-haiti/readiness', { key: kenya })).json();
      expect(unmet(after, 'reconnaissance')).not.toContain('viable-administration');
      const asOf = (
        await svc.request('GET', '/v1/missions/mss-haiti/readiness?asOf=2024-04-01T00:00:00Z', { key: kenya })
      ).json();
      expect(asOf.basis).toBe('asOf');
      expect(unmet(asOf, 'reconnaissance')).toContain('viable-administration');
      // Record time: on 2024-04-30 the service had not yet been told of the new administration.
      const known = (
        await svc.request('GET', '/v1/missions/mss-haiti/readiness?knownAt=2024-04-30T00:00:00Z', {
          key: kenya,
        })
      ).json();
      expect(known.basis).toBe('knownAt');
      expect(unmet(known, 'reconnaissance')).toContain('viable-administration');
      const knownLater = (
        await svc.request('GET', '/v1/missions/mss-haiti/readiness?knownAt=2024-05-01T00:00:00Z', {
          key: kenya,
        })
      ).json();
      expect(unmet(knownLater, 'reconnaissance')).not.toContain('viable-administration');
      expectProblem(
        await svc.request('GET', '/v1/missions/mss-haiti/readiness?asOf=yesterday', { key: kenya }),
        400,
        'validation-failed',
      );
      // A date that does not exist is refused, not read as the next month's first days.
      expectProblem(
        await svc.request('GET', '/v1/missions/mss-haiti/readiness?knownAt=2024-02-30T00:00:00Z', {
          key: kenya,
        }),
        400,
        'validation-failed',
      );
      expectProblem(
        await svc.request(
          'GET',
          '/v1/missions/mss-haiti/readiness?asOf=2024-04-01T00:00:00Z&knownAt=2024-04-01T00:00:00Z',
          { key: kenya },
        ),
        400,
        'validation-failed',
      );
    });

    it('If-Match: a stale revision gets 412 with the current one, and nothing is appended', async () => {
      const first = await svc.request('POST', '/v1/missions/mss-haiti/commands/pledge-logistics', {
        key: us,
        body: pledge('p1'),
        headers: { 'if-match': '"0"' },
      });
      expect(first.statusCode).toBe(201);
      const count = await svc.eventCount();
      const stale = await svc.request('POST', '/v1/missions/mss-haiti/commands/pledge-logistics', {
        key: us,
        body: pledge('p2'),
        headers: { 'if-match': '"0"' },
      });
      const problem = expectProblem(stale, 412, 'precondition-failed');
      expect(problem.currentRevision).toBe(1);
      expect(await svc.eventCount()).toBe(count);
      expectProblem(
        await svc.request('POST', '/v1/missions/mss-haiti/commands/pledge-logistics', {
          key: us,
          body: pledge('p3'),
          headers: { 'if-match': 'banana' },
        }),
        400,
        'invalid-header',
      );
    });

    it('If-Match compares strongly: weak or other opaque tags never match; non-tags are refused', async () => {
      const send = (ifMatch: string, id: string) =>
        svc.request('POST', '/v1/missions/mss-haiti/commands/pledge-logistics', {
          key: us,
          body: pledge(id),
          headers: { 'if-match': ifMatch },
        });
      const count = await svc.eventCount();
      // The mission is at revision 0: each of these names it in a form that must not match.
      for (const [i, tag] of ['W/"0"', '"00"', '"r0"'].entries()) {
        const problem = expectProblem(await send(tag, `weak${i}`), 412, 'precondition-failed');
        expect({ tag, current: problem.currentRevision }).toEqual({ tag, current: 0 });
      }
      for (const [i, tag] of ['0', '"0', '0"', '"0 "', '"0", "1"', 'W/0', '""x'].entries()) {
        expect({ tag, status: (await send(tag, `bad${i}`)).statusCode }).toEqual({ tag, status: 400 });
      }
      expect(await svc.eventCount()).toBe(count);
      expect((await send(' "0" ', 'ok')).statusCode).toBe(201);
    });

    it('a commandId given twice: the second command is refused as such, not retried as a race', async () => {
      const commandId = '0190a6c4-58a4-7a53-8b1a-2b7c4c3e2f10';
      const first = await svc.request('POST', '/v1/missions/mss-haiti/commands/pledge-logistics', {
        key: us,
        body: { ...pledge('p-first'), commandId },
      });
      expect(first.statusCode).toBe(201);
      const count = await svc.eventCount();
      const second = await svc.request('POST', '/v1/missions/mss-haiti/commands/pledge-logistics', {
        key: us,
        body: { ...pledge('p-second'), commandId },
      });
      expect(expectProblem(second, 409, 'command-id-reused').commandId).toBe(commandId);
      expect(await svc.eventCount()).toBe(count);
      // The mission is not stuck: the next command with an id of its own lands.
      const third = await svc.request('POST', '/v1/missions/mss-haiti/commands/pledge-logistics', {
        key: us,
        body: pledge('p-third'),
      });
      expect(third.statusCode).toBe(201);
    });

    it('the same command sent again with its commandId is answered with the events it wrote', async () => {
      const commandId = '0190a6c4-58a4-7a53-8b1a-2b7c4c3e2f11';
      const body = { unit: 'GSU', officersReady: 400, status: 'standby', commandId };
      const url = '/v1/missions/mss-haiti/commands/report-unit-readiness';
      const first = await svc.request('POST', url, { key: kenya, body });
      expect(first.statusCode).toBe(201);
      const count = await svc.eventCount();
      const again = await svc.request('POST', url, { key: kenya, body });
      expect(again.statusCode).toBe(201);
      expect(again.json()).toMatchObject({ replayed: true, commandId });
      expect(again.json().events.map((e: { id: string }) => e.id)).toEqual(
        first.json().events.map((e: { id: string }) => e.id),
      );
      expect(await svc.eventCount()).toBe(count);
    });

    it('If-Match: * asks only that the mission exists', async () => {
      const any = await svc.request('POST', '/v1/missions/mss-haiti/commands/pledge-logistics', {
        key: us,
        body: pledge('p-any'),
        headers: { 'if-match': '*' },
      });
      expect(any.statusCode).toBe(201);
      const count = await svc.eventCount();
      const missing = await svc.request('POST', '/v1/missions/no-such-mission/commands/pledge-logistics', {
        body: pledge('p-none'),
        headers: { 'if-match': '*' },
      });
      expect(expectProblem(missing, 412, 'precondition-failed').currentRevision).toBeNull();
      expect(await svc.eventCount()).toBe(count);
    });

    it('Idempotency-Key: the same request returns the original response; another body gets 422', async () => {
      const send = (body: unknown) =>
        svc.request('POST', '/v1/missions/mss-haiti/commands/pledge-logistics', {
          key: us,
          body,
          headers: { 'idempotency-key': 'abc-1' },
        });
      const first = await send(pledge('idem-1'));
      expect(first.statusCode).toBe(201);
      // A keyed command gets a version-7 id too, so its events' ids keep its time (version 8).
      expect(first.json().events[0].id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab]/);
      const count = await svc.eventCount();
      const again = await send(pledge('idem-1'));
      expect(again.statusCode).toBe(201);
      expect(again.body).toBe(first.body);
      expect(again.headers['idempotent-replayed']).toBe('true');
      expect(again.headers.etag).toBe(first.headers.etag);
      expect(await svc.eventCount()).toBe(count);
      expectProblem(await send(pledge('idem-2')), 422, 'idempotency-key-reused');
      // Keys are per agency: the same key from another agency is another request.
      const other = await svc.request('POST', '/v1/missions/mss-haiti/commands/pledge-logistics', {
        key: kenya,
        body: pledge('idem-3', 'canada'),
        headers: { 'idempotency-key': 'abc-1' },
      });
      expect(other.statusCode).toBe(201);
    });

    it('Idempotency-Key where it is not kept is refused, so a retry cannot act twice unnoticed', async () => {
      const count = await svc.eventCount();
      const headers = { 'idempotency-key': 'retry-me' };
      for (const [method, url, body] of [
        ['POST', '/v1/agencies/kenya/keys', { label: 'second' }],
        ['POST', '/v1/agencies', { id: 'new-agency', name: 'New', roles: ['donor'], missions: ['*'] }],
        ['POST', '/v1/webhooks', { url: 'https://example.org/hook' }],
        ['DELETE', '/v1/agencies/kenya/keys/nokey', undefined],
      ] as const) {
        const problem = expectProblem(
          await svc.request(method, url, { headers, ...(body ? { body } : {}) }),
          400,
          'invalid-header',
        );
        expect(problem.detail).toContain('Idempotency-Key is not supported');
      }
      expect(await svc.eventCount()).toBe(count);
      expect((await svc.request('GET', '/v1/missions', { headers })).statusCode).toBe(200);
    });

    it('Idempotency-Key: a refused command is refused again the same way', async () => {
      const send = () =>
        svc.request('POST', '/v1/missions/mss-haiti/commands/confirm-pledge', {
          key: kenya,
          body: { pledgeId: 'nope' },
          headers: { 'idempotency-key': 'k-refused' },
        });
      const first = await send();
      expectProblem(first, 404, 'pledge-not-found');
      const again = await send();
      expect(again.statusCode).toBe(404);
      expect(again.body).toBe(first.body);
    });

    it('commands on one mission from many clients at once all land, in one contiguous stream', async () => {
      const results = await Promise.all(
        Array.from({ length: 60 }, (_, i) =>
          svc.request('POST', '/v1/missions/mss-haiti/commands/pledge-logistics', {
            key: us,
            body: pledge(`burst-${i}`),
          }),
        ),
      );
      expect(results.map((r) => r.statusCode)).toEqual(Array(60).fill(201));
      const events = await collect(svc.store.readStream('mission-mss-haiti'));
      expect(events.map((e) => e.revision)).toEqual(Array.from({ length: 61 }, (_, i) => i));
      expect(new Set(results.map((r) => r.json().revision)).size).toBe(60);
    });

    it('domain refusals are typed problems: a withdrawn pledge cannot be confirmed', async () => {
      await svc.request('POST', '/v1/missions/mss-haiti/commands/pledge-logistics', {
        key: us,
        body: pledge('w1'),
      });
      const withdrawn = await svc.request('POST', '/v1/missions/mss-haiti/commands/withdraw-pledge', {
        key: us,
        body: { pledgeId: 'w1', reason: 'budget cut' },
      });
      expect(withdrawn.statusCode).toBe(201);
      const confirm = await svc.request('POST', '/v1/missions/mss-haiti/commands/confirm-pledge', {
        key: us,
        body: { pledgeId: 'w1' },
      });
      expectProblem(confirm, 409, 'pledge-withdrawn');
    });

    it('a donor pledges only as itself, and confirms only its own pledges', async () => {
      expectProblem(
        await svc.request('POST', '/v1/missions/mss-haiti/commands/pledge-logistics', {
          key: us,
          body: pledge('c1', 'canada'),
        }),
        403,
        'forbidden',
      );
      await svc.request('POST', '/v1/missions/mss-haiti/commands/pledge-logistics', {
        key: kenya,
        body: pledge('c2', 'canada'),
      });
      expectProblem(
        await svc.request('POST', '/v1/missions/mss-haiti/commands/confirm-pledge', {
          key: us,
          body: { pledgeId: 'c2' },
        }),
        403,
        'forbidden',
      );
    });
  });

  describe('bad input is a 4xx problem and appends nothing', () => {
    const url = '/v1/missions/mss-haiti/commands/pledge-logistics';
    it.each([
      ['malformed JSON', { body: '{"pledgeId":', headers: {} }, 400, 'malformed-json'],
      ['wrong types', { body: { ...pledge('t1'), quantity: 'two' }, headers: {} }, 400, 'validation-failed'],
      ['missing fields', { body: { pledgeId: 'x' }, headers: {} }, 400, 'validation-failed'],
      ['an unknown field', { body: { ...pledge('t2'), extra: true }, headers: {} }, 400, 'validation-failed'],
      [
        'a negative quantity',
        { body: { ...pledge('t3'), quantity: -1 }, headers: {} },
        400,
        'validation-failed',
      ],
      [
        'a bad instant',
        { body: { ...pledge('t4'), occurredAt: '2024-13-45' }, headers: {} },
        400,
        'validation-failed',
      ],
      [
        '__proto__ keys',
        { body: '{"__proto__":{"admin":true},"pledgeId":"p"}', headers: {} },
        400,
        'validation-failed',
      ],
      ['a JSON array', { body: '[1,2,3]', headers: {} }, 400, 'validation-failed'],
      [
        'JSON in another charset',
        {
          body: JSON.stringify(pledge('t6')),
          headers: { 'content-type': 'application/json; charset=latin1' },
        },
        415,
        'unsupported-media-type',
      ],
      [
        'text/plain',
        { body: 'hello', headers: { 'content-type': 'text/plain' } },
        415,
        'unsupported-media-type',
      ],
      [
        'a huge body',
        { body: JSON.stringify({ ...pledge('t5'), description: 'x'.repeat(2 * 1024 * 1024) }), headers: {} },
        413,
        'payload-too-large',
      ],
    ])('%s', async (_name, input, status, code) => {
      const count = await svc.eventCount();
      const res = await svc.request('POST', url, {
        key: us,
        body: input.body,
        headers: input.headers as Record<string, string>,
      });
      const problem = expectProblem(res, status, code);
      if (code === 'validation-failed' && typeof input.body === 'object') {
        expect((problem.errors as unknown[]).length).toBeGreaterThan(0);
      }
      expect(await svc.eventCount()).toBe(count);
    });

    it('names a key that could reach a prototype, however it is written, apart from bad syntax', async () => {
      for (const [body, path] of [
        ['{"pledgeId":"p","__proto__":{"admin":true}}', '__proto__'],
        ['{"pledgeId":"p","\\u005f_proto__":{}}', '__proto__'],
        ['{"pledgeId":"p","details":[{"constructor":{"prototype":{}}}]}', 'details[0].constructor'],
      ]) {
        const problem = expectProblem(
          await svc.request('POST', url, { key: us, body }),
          400,
          'validation-failed',
        );
        expect({ body, errors: problem.errors }).toEqual({
          body,
          errors: [
            {
              path,
              message: 'a key that could reach an object prototype',
              code: 'forbidden-key',
              in: 'body',
            },
          ],
        });
      }
      // A key merely named like one, and a value that says it, are ordinary content.
      const named = await svc.request('POST', url, {
        key: us,
        body: { ...pledge('n1'), unit: 'constructor' },
      });
      expect(named.statusCode).toBe(201);
      expect(
        expectProblem(
          await svc.request('POST', url, { key: us, body: '{"pledgeId":"p",}' }),
          400,
          'malformed-json',
        ).detail,
      ).toBe('The body is not valid JSON');
      expect(
        expectProblem(
          await svc.request('POST', url, {
            key: us,
            body: '',
            headers: { 'content-type': 'application/json' },
          }),
          400,
          'malformed-json',
        ).detail,
      ).toBe('The body is empty but the content type is application/json');
    });

    it('lists every bad field with its path', async () => {
      const res = await svc.request('POST', url, {
        key: us,
        body: { pledgeId: 'BAD ID', quantity: 0, capability: 'rockets' },
      });
      const problem = expectProblem(res, 400, 'validation-failed');
      const paths = (problem.errors as Array<{ path: string }>).map((e) => e.path).sort();
      expect(paths).toEqual(
        expect.arrayContaining(['capability', 'pledgeId', 'pledger', 'quantity', 'unit']),
      );
    });

    it('names an unknown field, or query parameter, at its own path and says which part it is in', async () => {
      const body = expectProblem(
        await svc.request('POST', url, { key: us, body: { ...pledge('u1'), extra: 1, other: 2 } }),
        400,
        'validation-failed',
      );
      expect(body.errors).toEqual([
        expect.objectContaining({ path: 'extra', in: 'body' }),
        expect.objectContaining({ path: 'other', in: 'body' }),
      ]);
      expect(body.detail).toBe('2 fields are not valid');
      const query = expectProblem(
        await svc.request('GET', '/v1/missions/mss-haiti/readiness?foo=1'),
        400,
        'validation-failed',
      );
      expect(query.errors).toEqual([expect.objectContaining({ path: 'foo', in: 'query' })]);
    });

    it('takes integer query parameters in plain decimal only', async () => {
      for (const bad of [
        'afterRevision=',
        'afterRevision=0x1',
        'limit=1e2',
        'limit=',
        'limit=1.5',
        'limit=1&limit=2',
      ]) {
        const problem = expectProblem(
          await svc.request('GET', `/v1/missions/mss-haiti/events?${bad}`),
          400,
          'validation-failed',
        );
        expect({ bad, in: (problem.errors as Array<{ in: string }>)[0]?.in }).toEqual({ bad, in: 'query' });
      }
      const far = await svc.request(
        'GET',
        `/v1/missions/mss-haiti/events?afterRevision=${Number.MAX_SAFE_INTEGER - 1}`,
      );
      expect(far.statusCode).toBe(200);
      expect(far.json().events).toEqual([]);
      expectProblem(
        await svc.request('GET', `/v1/missions/mss-haiti/events?afterRevision=${Number.MAX_SAFE_INTEGER}`),
        400,
        'validation-failed',
      );
      const first = await svc.request('GET', '/v1/missions/mss-haiti/events?afterRevision=-1&limit=1');
      expect(first.json().events[0].revision).toBe(0);
    });

    it('answers every bad webhook body with the webhook code, listing every problem', async () => {
      const problem = expectProblem(
        await svc.request('POST', '/v1/webhooks', { key: kenya, body: { url: 5, foo: 1 } }),
        400,
        'webhook-validation-failed',
      );
      const paths = JSON.stringify(problem);
      expect(paths).toContain('"url"');
      expect(paths).toContain('"foo"');
      expectProblem(
        await svc.request('GET', '/v1/webhooks?limit=0', { key: kenya }),
        400,
        'webhook-validation-failed',
      );
    });

    it('an unknown command gets 404 with the known ones', async () => {
      const problem = expectProblem(
        await svc.request('POST', '/v1/missions/mss-haiti/commands/launch-rockets', { key: kenya, body: {} }),
        404,
        'unknown-command',
      );
      expect(problem.knownCommands).toEqual(commandCatalog.map((c) => c.name));
    });

    it('OPTIONS on a path that exists lists its methods; on one that does not, 404', async () => {
      const options = await svc.request('OPTIONS', '/v1/missions/mss-haiti/commands/pledge-logistics');
      expect(options.statusCode).toBe(204);
      expect(options.headers.allow).toBe('POST, OPTIONS');
      expect((await svc.request('OPTIONS', '/v1/missions')).headers.allow).toBe('GET, HEAD, POST, OPTIONS');
      expectProblem(await svc.request('OPTIONS', '/v1/nowhere'), 404, 'not-found');
    });

    it('a trailing slash names the same resource', async () => {
      const list = await svc.request('GET', '/v1/missions/');
      expect(list.statusCode).toBe(200);
      expect(list.json().missions.map((m: { missionId: string }) => m.missionId)).toEqual(['mss-haiti']);
      expect((await svc.request('GET', '/v1/missions/mss-haiti/readiness/')).statusCode).toBe(200);
    });

    it('an unknown mission gets 404; a malformed mission id 400', async () => {
      expectProblem(
        await svc.request('GET', '/v1/missions/nowhere/readiness', {
          key: await svc.agency('aud', ['auditor']),
        }),
        404,
        'mission-not-found',
      );
      expectProblem(await svc.request('GET', '/v1/missions/NOT_VALID/readiness'), 400, 'validation-failed');
    });
  });

  describe('the role matrix', () => {
    it('every command × every role: allowed, or 403 before anything else', async () => {
      const keys: Record<string, string> = {};
      for (const role of ROLES)
        keys[role] = await svc.agency(
          `role-${role}`,
          [role],
          role === 'admin' || role === 'auditor' ? ['*'] : ['mss-haiti'],
        );
      const count = await svc.eventCount();
      const allowed: Record<string, string[]> = {
        admin: commandCatalog.map((c) => c.name),
        coordinator: commandCatalog
          .map((c) => c.name)
          .filter(
            (n) =>
              ![
                'announce-council',
                'approve-council',
                'dissolve-council',
                'record-host-administration-status',
                'record-mandate',
              ].includes(n),
          ),
        donor: [
          'pledge-logistics',
          'pledge-funding',
          'pledge-personnel',
          'confirm-pledge',
          'record-pledge-fulfilled',
          'withdraw-pledge',
        ],
        'host-authority': [
          'announce-council',
          'approve-council',
          'dissolve-council',
          'record-host-administration-status',
          'sign-agreement',
          'record-approval',
        ],
        'regional-body': ['announce-council', 'approve-council', 'dissolve-council', 'sign-agreement'],
        un: ['record-mandate'],
        auditor: [],
      };
      for (const role of ROLES) {
        for (const command of commandCatalog) {
          // An empty body: an allowed command is refused by validation or the domain (never 403,
          // never appended); a forbidden one is refused with 403 before anything else.
          const res = await svc.request('POST', `/v1/missions/mss-haiti/commands/${command.name}`, {
            key: keys[role] as string,
            body: {},
          });
          const expected = allowed[role]?.includes(command.name) ? 'allowed' : 'forbidden';
          const got =
            res.statusCode === 403
              ? 'forbidden'
              : res.statusCode >= 400 && res.statusCode < 500
                ? 'allowed'
                : `status ${res.statusCode}`;
          expect({ role, command: command.name, got }).toEqual({
            role,
            command: command.name,
            got: expected,
          });
        }
      }
      expect(await svc.eventCount()).toBe(count);
    });

    it('the auditor reads every mission; others only their own', async () => {
      const auditor = await svc.agency('the-auditor', ['auditor']);
      const outsider = await svc.agency('outsider', ['donor'], ['other-mission']);
      expect(
        (await svc.request('GET', '/v1/missions/mss-haiti/readiness', { key: auditor })).statusCode,
      ).toBe(200);
      expectProblem(
        await svc.request('GET', '/v1/missions/mss-haiti/readiness', { key: outsider }),
        403,
        'forbidden',
      );
      expect((await svc.request('GET', '/v1/missions', { key: outsider })).json().missions).toEqual([]);
      expect(
        (await svc.request('GET', '/v1/missions', { key: auditor }))
          .json()
          .missions.map((m: { missionId: string }) => m.missionId),
      ).toEqual(['mss-haiti']);
    });
  });

  describe('queries', () => {
    it('pages the missions in the order they were defined, within the key’s scope', async () => {
      // Ids out of alphabetical order, so a page ordered by id would show it.
      for (const id of ['zulu-mission', 'alpha-mission', 'mike-mission', 'bravo-mission']) {
        const res = await svc.request('POST', '/v1/missions', {
          body: { id, template: 'mss-haiti', occurredAt: '2024-03-01T09:00:00Z' },
        });
        expect(res.statusCode).toBe(201);
      }
      const ids = (page: { missions: Array<{ missionId: string }> }) => page.missions.map((m) => m.missionId);
      const seen: string[] = [];
      let next: string | null = null;
      let pages = 0;
      do {
        const res = await svc.request('GET', `/v1/missions?limit=2${next ? `&after=${next}` : ''}`);
        expect(res.statusCode).toBe(200);
        const page = res.json();
        expect(page.missions.length).toBeLessThanOrEqual(2);
        seen.push(...ids(page));
        next = page.next;
        pages++;
      } while (next !== null && pages < 10);
      expect(seen).toEqual(['mss-haiti', 'zulu-mission', 'alpha-mission', 'mike-mission', 'bravo-mission']);
      expect(pages).toBe(3);
      expect((await svc.request('GET', '/v1/missions')).json()).toMatchObject({ next: null });

      const scoped = await svc.agency('scoped', ['donor'], ['bravo-mission', 'zulu-mission']);
      const first = (await svc.request('GET', '/v1/missions?limit=1', { key: scoped })).json();
      expect([ids(first), first.next]).toEqual([['zulu-mission'], 'zulu-mission']);
      const second = (
        await svc.request('GET', '/v1/missions?limit=1&after=zulu-mission', { key: scoped })
      ).json();
      expect([ids(second), second.next]).toEqual([['bravo-mission'], null]);

      for (const [query, key] of [
        ['after=no-such-mission', undefined],
        ['after=alpha-mission', scoped],
        ['after=Not_A_Slug', undefined],
        ['limit=0', undefined],
        ['limit=1001', undefined],
        ['cursor=x', undefined],
      ] as const) {
        const body = expectProblem(
          await svc.request('GET', `/v1/missions?${query}`, key ? { key } : {}),
          400,
          'validation-failed',
        );
        expect({ query, paths: (body.errors as Array<{ path: string }>).map((e) => e.path) }).toMatchObject({
          query,
          paths: [expect.stringMatching(/^(after|limit|\(body\)|cursor)$/)],
        });
      }
    });

    it('answers a mission whose policy is not yet in effect the same way on every basis', async () => {
      const defined = await svc.request('POST', '/v1/missions', {
        body: { id: 'later-mission', template: 'mss-haiti', occurredAt: '2099-06-01T00:00:00Z' },
      });
      expect(defined.statusCode).toBe(201);
      const position = defined.json().position as string;
      const now = svc.clock.now.toISOString();
      for (const query of ['', `?asOf=${now}`, `?knownAt=${now}`, `?atPosition=${position}`]) {
        const res = await svc.request('GET', `/v1/missions/later-mission/readiness${query}`);
        expect({ query, status: res.statusCode }).toEqual({ query, status: 200 });
        expect(res.json()).toMatchObject({ policyVersion: null, phases: [] });
      }
      const before = await svc.request(
        'GET',
        '/v1/missions/later-mission/readiness?knownAt=2000-01-01T00:00:00Z',
      );
      expectProblem(before, 404, 'mission-not-found');
    });

    it('pages the event log and exports it as NDJSON with hashes', async () => {
      for (let i = 0; i < 5; i++) {
        await svc.request('POST', '/v1/missions/mss-haiti/commands/pledge-logistics', {
          key: us,
          body: pledge(`e${i}`),
        });
      }
      const page = (await svc.request('GET', '/v1/missions/mss-haiti/events?limit=4', { key: kenya })).json();
      expect(page.events.map((e: { revision: number }) => e.revision)).toEqual([0, 1, 2, 3]);
      expect(page.nextAfterRevision).toBe(3);
      const next = (
        await svc.request('GET', `/v1/missions/mss-haiti/events?afterRevision=${page.nextAfterRevision}`, {
          key: kenya,
        })
      ).json();
      expect(next.events.map((e: { revision: number }) => e.revision)).toEqual([4, 5]);
      expect(next.nextAfterRevision).toBeNull();
      const exported = await svc.request('GET', '/v1/missions/mss-haiti/events', {
        key: kenya,
        headers: { accept: 'application/x-ndjson' },
      });
      expect(exported.headers['content-type']).toContain('application/x-ndjson');
      const [header, ...events] = exported.body
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      expect(header).toMatchObject({ kind: 'muster-export', missionId: 'mss-haiti', events: 6 });
      expect(events).toHaveLength(6);
      expect(events[1].previousHash).toBe(events[0].hash);
    });

    it('GET mission carries the revision as ETag', async () => {
      const res = await svc.request('GET', '/v1/missions/mss-haiti', { key: kenya });
      expect(res.statusCode).toBe(200);
      expect(res.json()).toMatchObject({ missionId: 'mss-haiti', leadNation: 'kenya', revision: 0 });
      expect(res.headers.etag).toBe('"0"');
      // Asked again with that ETag: 304 and no body, until a command moves the revision.
      const same = await svc.request('GET', '/v1/missions/mss-haiti', {
        key: kenya,
        headers: { 'if-none-match': 'W/"0"' },
      });
      expect({ status: same.statusCode, body: same.body, etag: same.headers.etag }).toEqual({
        status: 304,
        body: '',
        etag: '"0"',
      });
      await svc.request('POST', '/v1/missions/mss-haiti/commands/pledge-logistics', {
        key: us,
        body: pledge('p-etag'),
      });
      const moved = await svc.request('GET', '/v1/missions/mss-haiti', {
        key: kenya,
        headers: { 'if-none-match': '"0"' },
      });
      expect(moved.statusCode).toBe(200);
      expect(moved.json().revision).toBe(1);
    });

    it('tags a readiness answer by what it says, so that time alone can move the tag', async () => {
      const readiness = (tag?: string) =>
        svc.request('GET', '/v1/missions/mss-haiti/readiness', {
          key: kenya,
          ...(tag ? { headers: { 'if-none-match': tag } } : {}),
        });
      const expiry = new Date(svc.clock.now.getTime() + 60_000).toISOString();
      const mandate = await svc.request('POST', '/v1/missions/mss-haiti/commands/record-mandate', {
        body: {
          mandateId: 'unsc-2699',
          issuingBody: 'UN Security Council',
          reference: 'S/RES/2699 (2023)',
          validFrom: '2023-10-02T00:00:00Z',
          validUntil: expiry,
          occurredAt: '2024-03-01T10:00:00Z',
        },
      });
      expect(mandate.statusCode).toBe(201);
      const first = await readiness();
      const tag = first.headers.etag as string;
      expect(tag).toMatch(/^W\/"[A-Za-z0-9_-]{22}"$/);
      // The same verdict a moment later: the instant differs, the tag does not, and it revalidates.
      svc.clock.now = new Date(svc.clock.now.getTime() + 1000);
      const again = await readiness(tag);
      expect({ status: again.statusCode, body: again.body, etag: again.headers.etag }).toEqual({
        status: 304,
        body: '',
        etag: tag,
      });
      // The mandate expires: no event, the same revision, another verdict and another tag.
      svc.clock.now = new Date(Date.parse(expiry) + 1000);
      const expired = await readiness(tag);
      expect(expired.statusCode).toBe(200);
      expect(expired.json().revision).toBe(first.json().revision);
      expect(expired.json().phases).not.toEqual(first.json().phases);
      expect(expired.headers.etag).not.toBe(tag);
      // A tag of the answer under other rules (the revision, as the mission's ETag) never matches.
      expect((await readiness(`"${first.json().revision}"`)).statusCode).toBe(200);
    });
  });
});

describe('idempotency keys survive a restart', () => {
  const dir = mkdtempSync(join(tmpdir(), 'muster-api-idem-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('replays the original response after the service restarts on the same file', async () => {
    const path = join(dir, 'muster.db');
    const first = await startTestService({ path });
    const kenya = await first.agency('kenya', ['coordinator']);
    const send = (svc: TestService, body: unknown) =>
      svc.request('POST', '/v1/missions', {
        key: kenya,
        body,
        headers: { 'idempotency-key': 'define-once' },
      });
    const created = await send(first, {
      id: 'mss-haiti',
      template: 'mss-haiti',
      occurredAt: '2024-03-01T09:00:00Z',
    });
    expect(created.statusCode).toBe(201);
    const count = await first.eventCount();
    await first.close();

    const second = await startTestService({ path });
    const replayed = await send(second, {
      id: 'mss-haiti',
      template: 'mss-haiti',
      occurredAt: '2024-03-01T09:00:00Z',
    });
    expect(replayed.statusCode).toBe(201);
    expect(replayed.body).toBe(created.body);
    expect(await second.eventCount()).toBe(count);
    expect((await send(second, { id: 'mss-haiti', template: 'mss-haiti' })).statusCode).toBe(422);
    await second.close();
  });

  it('keeps a revoked bootstrap admin key revoked across restarts with the variable still set', async () => {
    const path = join(dir, 'bootstrap.db');
    const first = await startTestService({ path });
    const operator = await first.agency('operators', ['admin']);
    const { agencyId, keyId } = (await first.request('GET', '/v1/me')).json();
    expect(
      (await first.request('DELETE', `/v1/agencies/${agencyId}/keys/${keyId}`, { key: operator })).statusCode,
    ).toBe(204);
    expect((await first.request('GET', '/v1/me')).statusCode).toBe(401);
    await first.close();

    const second = await startTestService({ path });
    expect((await second.request('GET', '/v1/me')).statusCode).toBe(401);
    expect((await second.request('GET', '/v1/me', { key: operator })).statusCode).toBe(200);
    expect(second.logs.join('\n')).toContain('names a key that was revoked');
    await second.close();
  });
});

async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}
