import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { commandCatalog, missionTemplates, mssHaitiScenario } from '@muster/readiness';
import { Ajv2020 } from 'ajv/dist/2020.js';
import formats from 'ajv-formats';
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestService, type TestService } from './testing/harness.js';

/**
 * Clients are generated from the document, so every answer the service gives must be in it: the
 * status for that operation, the content type, a body the declared schema accepts, and the
 * headers a client acts on. This drives every operation with valid calls and the usual mistakes
 * and collects every mismatch, so that one run shows them all.
 */

type Schema = Record<string, unknown>;
interface MediaType {
  schema?: Schema;
}
interface ResponseObject {
  description: string;
  headers?: Record<string, unknown>;
  content?: Record<string, MediaType>;
}
interface Parameter {
  name: string;
  in: string;
}
interface Operation {
  operationId?: string;
  summary?: string;
  security?: unknown[];
  parameters?: Parameter[];
  requestBody?: unknown;
  responses: Record<string, ResponseObject>;
}
interface Document {
  paths: Record<string, Record<string, Operation>>;
  components: Record<string, unknown> & { securitySchemes?: Record<string, unknown> };
  security?: unknown[];
  webhooks?: Record<
    string,
    Record<string, Operation & { requestBody?: { content: Record<string, MediaType> } }>
  >;
}

/** Headers a client reads or branches on: each must be declared on the response that carries it. */
const ACTED_ON_HEADERS = [
  'etag',
  'location',
  'retry-after',
  'allow',
  'idempotent-replayed',
  'content-disposition',
  'www-authenticate',
  'x-request-id',
  'ratelimit-limit',
  'ratelimit-remaining',
  'ratelimit-reset',
  'ratelimit-policy',
];

const UNKNOWN_KEY = 'mk_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';

const pledge = (id: string) => ({
  pledgeId: id,
  pledger: 'united-states',
  capability: 'airlift',
  quantity: 2,
  unit: 'aircraft',
  occurredAt: '2024-03-02T10:00:00Z',
});

/** A valid body for every command: the scenario's, and for the commands it does not issue, these. */
function sampleBodies(): Map<string, Record<string, unknown>[]> {
  const samples = new Map<string, Record<string, unknown>[]>();
  const add = (type: string, body: Record<string, unknown>) =>
    samples.set(type, [...(samples.get(type) ?? []), body]);
  for (const step of mssHaitiScenario.steps) {
    const { type, missionId: _, ...body } = step.command as { type: string; missionId: string } & Schema;
    add(type, body);
  }
  add('AmendPolicy', {
    policy: missionTemplates['mss-haiti'].policy,
    effectiveFrom: '2024-04-01T00:00:00Z',
    reason: 'new threshold',
  });
  add('RecordPledgeFulfilled', { pledgeId: 'airlift-us', note: 'delivered' });
  add('WithdrawPledge', { pledgeId: 'airlift-us', reason: 'aircraft needed elsewhere' });
  add('DissolveCouncil', { reason: 'dissolved by decree' });
  add('RecordApproval', { body: 'parliament', nation: 'kenya', decision: 'granted', reference: 'vote-12' });
  add('RecordCourtOrder', {
    reference: 'HCCHRPET/E234/2023',
    court: 'High Court of Kenya',
    effect: 'barring',
  });
  return samples;
}

/** Closes every object that names its properties, so that a field the document does not name shows. */
function closed(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(closed);
  if (typeof schema !== 'object' || schema === null) return schema;
  const out: Schema = {};
  for (const [key, value] of Object.entries(schema)) {
    out[key] =
      key === 'properties'
        ? Object.fromEntries(Object.entries(value as Schema).map(([k, v]) => [k, closed(v)]))
        : closed(value);
  }
  if (out.properties !== undefined && out.additionalProperties === undefined)
    out.additionalProperties = false;
  return out;
}

const mediaType = (value: string) =>
  value
    .split(';')
    .map((part) => part.trim().toLowerCase())
    .filter((part) => part !== '' && !part.startsWith('charset='))
    .join('; ');

/** JSON and its `+json` kinds; not NDJSON, which is a stream of JSON texts. */
const isJsonType = (value: string) =>
  /^[a-z]+\/([a-z.+-]+\+)?json$/.test(mediaType(value).split(';')[0] as string);

describe('the OpenAPI document against the answers the service gives', () => {
  let svc: TestService;
  let document: Document;
  let receiver: Server;
  const received: Array<{ body: string; headers: Record<string, unknown> }> = [];
  const violations: string[] = [];
  const exercised = new Map<string, Set<string>>();
  let checked = 0;
  const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: true });
  // ajv-formats is CommonJS: under NodeNext its default export is the module object.
  (formats as unknown as { default: (ajv: Ajv2020) => void }).default(ajv);
  const validators = new Map<string, ReturnType<typeof ajv.compile>>();

  const validate = (where: string, schema: Schema, value: unknown, close: boolean): string | null => {
    const key = `${close}:${JSON.stringify(schema)}`;
    let check = validators.get(key);
    if (!check) {
      // Component references resolve against the document, registered once under this id.
      const resolved = JSON.parse(
        JSON.stringify(close ? closed(schema) : schema).replaceAll(
          '"#/components/',
          '"muster-doc#/components/',
        ),
      ) as Schema;
      check = ajv.compile(resolved);
      validators.set(key, check);
    }
    if (check(value)) return null;
    const errors = (check.errors ?? []).map((e) => {
      const extra = (e.params as { additionalProperty?: string }).additionalProperty;
      return `body${e.instancePath} ${e.message}${extra ? ` (${extra})` : ''}`;
    });
    return `${where}: ${[...new Set(errors)].slice(0, 6).join('; ')}`;
  };

  /** The operation fastify routes a path to: a literal segment wins over a parameter. */
  const operationFor = (method: string, path: string) => {
    let best: { template: string; op: Operation; params: number } | null = null;
    for (const [template, operations] of Object.entries(document.paths)) {
      const op = operations[method.toLowerCase()];
      if (!op) continue;
      const source = template
        .split('/')
        .map((part) => (part.startsWith('{') ? '[^/]+' : part.replace(/[.*+?^$()|[\]\\]/g, '\\$&')))
        .join('/');
      const pattern = new RegExp(`^${source}$`);
      if (!pattern.test(path)) continue;
      const params = (template.match(/\{/g) ?? []).length;
      if (!best || params < best.params) best = { template, op, params };
    }
    return best;
  };

  const check = (method: string, url: string, res: LightMyRequestResponse, note: string) => {
    const path = url.split('?')[0] as string;
    const found = operationFor(method, path);
    const label = `${method} ${found?.template ?? path} [${note}]`;
    if (!found) {
      violations.push(`${label}: no operation in the document`);
      return;
    }
    checked++;
    const opId = found.op.operationId ?? label;
    const status = String(res.statusCode);
    exercised.set(opId, (exercised.get(opId) ?? new Set()).add(status));
    const isJson = isJsonType(String(res.headers['content-type'] ?? ''));
    const code = isJson && res.body ? (res.json() as { code?: unknown }).code : undefined;
    const response =
      found.op.responses[status] ?? found.op.responses[`${status[0]}XX`] ?? found.op.responses.default;
    if (!response) {
      violations.push(`${label}: answered ${status}${code ? ` ${String(code)}` : ''}, not declared`);
      return;
    }
    for (const header of ACTED_ON_HEADERS) {
      if (res.headers[header] === undefined) continue;
      const declared = Object.keys(response.headers ?? {}).some((name) => name.toLowerCase() === header);
      if (!declared) violations.push(`${label}: ${status} sends ${header}, not declared`);
    }
    const contentType = res.headers['content-type'];
    if (res.body === '' && contentType === undefined) {
      if (response.content && Object.keys(response.content).length > 0) {
        violations.push(`${label}: ${status} has no body, but the document declares one`);
      }
      return;
    }
    const declaredTypes = Object.keys(response.content ?? {});
    const actual = mediaType(String(contentType));
    const match = declaredTypes.find(
      (type) => mediaType(type) === actual || mediaType(type) === actual.split(';')[0],
    );
    if (!match) {
      violations.push(
        `${label}: ${status} answered ${actual}, declared ${declaredTypes.join(', ') || 'no body'}`,
      );
      return;
    }
    if (!isJsonType(actual)) return;
    const schema = response.content?.[match]?.schema;
    if (!schema) {
      violations.push(`${label}: ${status} ${actual} has no schema`);
      return;
    }
    const error = validate(
      `${label}: ${status}${code ? ` ${String(code)}` : ''}`,
      schema,
      res.json(),
      res.statusCode < 300,
    );
    if (error) violations.push(error);
  };

  /** One call through the harness, checked against the document. */
  let address = 0;
  const call = async (
    method: string,
    url: string,
    options: { key?: string | null; body?: unknown; headers?: Record<string, string> } = {},
    note = 'valid',
  ) => {
    // Failed authentication is limited per address: each anonymous call comes from its own, so
    // that every operation's 401 is seen rather than the limiter's 429.
    const res =
      options.key === null || options.key === UNKNOWN_KEY
        ? await svc.app.inject({
            method: method as 'GET',
            url,
            remoteAddress: `10.9.${(++address >> 8) & 255}.${address & 255}`,
            headers: {
              ...(options.key ? { authorization: `Bearer ${options.key}` } : {}),
              ...options.headers,
            },
          })
        : await svc.request(method, url, options);
    check(method, url, res, note);
    return res;
  };

  beforeAll(async () => {
    receiver = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk) => {
        body += chunk;
      });
      req.on('end', () => {
        received.push({ headers: req.headers, body });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    svc = await startTestService({
      env: { MUSTER_WEBHOOK_ALLOW_HTTP: '1', MUSTER_WEBHOOK_ALLOW_CIDRS: '127.0.0.0/8' },
    });
    document = (await svc.request('GET', '/openapi.json', { key: null })).json();
    ajv.addSchema({ $id: 'muster-doc', components: document.components });
  });
  afterAll(async () => {
    await svc?.close();
    await new Promise((resolve) => receiver?.close(resolve));
  });

  it('names and secures every operation, and declares the headers the routes read', () => {
    const problems: string[] = [];
    const operationIds = new Set<string>();
    expect(document.components.securitySchemes?.apiKey).toMatchObject({ type: 'http', scheme: 'bearer' });
    expect(document.security).toEqual([{ apiKey: [] }]);
    for (const [path, operations] of Object.entries(document.paths)) {
      for (const [method, op] of Object.entries(operations)) {
        const label = `${method.toUpperCase()} ${path}`;
        if (!op.operationId) problems.push(`${label}: no operationId`);
        else if (operationIds.has(op.operationId))
          problems.push(`${label}: operationId ${op.operationId} twice`);
        else operationIds.add(op.operationId);
        if (!op.summary) problems.push(`${label}: no summary`);
        const secured = !(Array.isArray(op.security) && op.security.length === 0);
        if (path.startsWith('/v1/') !== secured) {
          problems.push(`${label}: ${secured ? 'needs a key but is not under /v1' : 'under /v1 but public'}`);
        }
        const headers = new Set((op.parameters ?? []).filter((p) => p.in === 'header').map((p) => p.name));
        const wants = [
          ...(method === 'get' && path.startsWith('/v1/') ? ['Muster-Min-Position'] : []),
          ...(/\/commands\/[a-z-]+$|^\/v1\/missions$/.test(path) && method === 'post'
            ? ['Idempotency-Key', 'If-Match']
            : []),
          ...(['/v1/missions/{missionId}', '/v1/missions/{missionId}/readiness'].includes(path) &&
          method === 'get'
            ? ['If-None-Match']
            : []),
        ];
        for (const name of wants)
          if (!headers.has(name)) problems.push(`${label}: reads ${name}, not declared`);
      }
    }
    const webhookTypes = Object.keys(document.webhooks ?? {}).sort();
    for (const type of ['pledge.changed', 'precondition.changed', 'readiness.changed', 'webhook.test']) {
      if (!webhookTypes.includes(type)) problems.push(`webhooks: ${type} is not described`);
    }
    expect(problems).toEqual([]);
  });

  it(
    'declares every status, content type, header and body the service answers with',
    { timeout: 120_000 },
    async () => {
      const kenya = await svc.agency('kenya', ['coordinator'], ['mss-haiti']);
      const outsider = await svc.agency('outsider', ['donor'], ['elsewhere']);
      const auditor = await svc.agency('the-auditor', ['auditor']);

      // Public operations.
      await call('GET', '/health/live', { key: null });
      await call('GET', '/health/ready', { key: null });
      await call('GET', '/metrics', { key: null });
      await call('GET', '/openapi.json', { key: null });
      // A probe does not wait for a position, nor judge one.
      const probe = await call(
        'GET',
        '/health/live',
        { key: null, headers: { 'muster-min-position': 'not a position' } },
        'Muster-Min-Position on a probe',
      );
      expect(probe.statusCode).toBe(200);

      // Subscribe before the story, so that its changes are delivered and their payloads checked.
      const hookUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
      const created = await call('POST', '/v1/webhooks', {
        key: kenya,
        body: { url: hookUrl, missions: ['mss-haiti'], description: 'ops' },
      });
      const hookId = created.json().id as string;

      // The story, command by command, then every command once more with a valid body.
      const samples = sampleBodies();
      for (const step of mssHaitiScenario.steps) {
        const { type, missionId, ...body } = step.command as { type: string; missionId: string } & Schema;
        svc.clock.now = new Date(Math.max(svc.clock.now.getTime(), Date.parse(step.expected.at)));
        const name = commandCatalog.find((c) => c.type === type)?.name as string;
        if (type === 'DefineMission')
          await call('POST', '/v1/missions', { body: { id: missionId, ...body } }, 'story');
        else await call('POST', `/v1/missions/${missionId}/commands/${name}`, { body }, 'story');
      }
      for (const entry of commandCatalog) {
        const url =
          entry.type === 'DefineMission' ? '/v1/missions' : `/v1/missions/mss-haiti/commands/${entry.name}`;
        for (const body of samples.get(entry.type) ?? []) {
          const sent = entry.type === 'DefineMission' ? { id: 'mss-haiti', ...body } : body;
          await call('POST', url, { body: sent }, 'sample (refused by state or accepted)');
        }
        await call('POST', url, { body: { nonsense: true } }, 'invalid body');
        await call('POST', url, { key: outsider, body: samples.get(entry.type)?.[0] }, 'out of scope');
      }

      // Commands: conflicts, preconditions, idempotency, bodies the parser refuses.
      const pledges = '/v1/missions/mss-haiti/commands/pledge-logistics';
      const revision = (await call('GET', '/v1/missions/mss-haiti')).json().revision as number;
      await call(
        'POST',
        pledges,
        { body: pledge('p-stale'), headers: { 'if-match': `"${revision - 1}"` } },
        'stale If-Match',
      );
      await call(
        'POST',
        pledges,
        { body: pledge('p-weak'), headers: { 'if-match': `W/"${revision}"` } },
        'weak If-Match',
      );
      await call(
        'POST',
        pledges,
        { body: pledge('p-bad'), headers: { 'if-match': 'twelve' } },
        'malformed If-Match',
      );
      await call(
        'POST',
        pledges,
        { body: pledge('p-match'), headers: { 'if-match': `"${revision}"` } },
        'current If-Match',
      );
      await call(
        'POST',
        '/v1/missions/nowhere/commands/pledge-logistics',
        { body: pledge('p-x'), headers: { 'if-match': '*' } },
        'If-Match * on no mission',
      );
      await call(
        'POST',
        '/v1/missions/nowhere/commands/pledge-logistics',
        { body: pledge('p-x') },
        'unknown mission',
      );
      await call(
        'POST',
        '/v1/missions/Not_A_Slug/commands/pledge-logistics',
        { body: pledge('p-x') },
        'bad mission id',
      );
      await call('POST', pledges, { body: pledge('p-match') }, 'pledge exists');
      const keyed = { 'idempotency-key': 'conformance-1' };
      await call('POST', pledges, { body: pledge('p-keyed'), headers: keyed }, 'Idempotency-Key');
      await call('POST', pledges, { body: pledge('p-keyed'), headers: keyed }, 'Idempotency-Key replay');
      await call('POST', pledges, { body: pledge('p-other'), headers: keyed }, 'Idempotency-Key reused');
      await call(
        'POST',
        pledges,
        { body: pledge('p-keyed'), headers: { 'idempotency-key': 'conformance-2' } },
        'Idempotency-Key, refused command',
      );
      await call(
        'POST',
        pledges,
        { body: pledge('p-keyed'), headers: { 'idempotency-key': 'conformance-2' } },
        'Idempotency-Key replay of a refusal',
      );
      await call(
        'POST',
        pledges,
        { body: pledge('p-y'), headers: { 'idempotency-key': 'é' } },
        'bad Idempotency-Key',
      );
      await call('POST', pledges, { body: '{bad' }, 'malformed JSON');
      await call('POST', pledges, { body: 'pledge', headers: { 'content-type': 'text/plain' } }, 'not JSON');
      await call(
        'POST',
        pledges,
        { body: pledge('p-z'), headers: { 'content-type': 'application/json; charset=latin1' } },
        'latin1 JSON',
      );
      await call('POST', pledges, { body: `{"note":"${'x'.repeat(1_100_000)}"}` }, 'body over the limit');
      await call('POST', '/v1/missions/mss-haiti/commands/no-such-command', { body: {} }, 'unknown command');
      await call(
        'POST',
        '/v1/missions/mss-haiti/commands/no-such-command',
        { key: null },
        'unknown command, no key',
      );
      await call(
        'POST',
        '/v1/missions',
        { key: outsider, body: { id: 'elsewhere', template: 'mss-haiti' } },
        'may not define',
      );
      await call(
        'POST',
        '/v1/missions',
        { body: { id: 'second', template: 'mss-haiti', baseCurrency: 'EUR' } },
        'invalid definition',
      );
      await call(
        'POST',
        '/v1/missions',
        { key: kenya, body: { id: 'kenya-own', template: 'mss-haiti' } },
        'define',
      );

      // Missions and their read side.
      await call('GET', '/v1/missions');
      await call('GET', '/v1/missions?limit=1', { key: kenya });
      await call('GET', '/v1/missions?limit=0', {}, 'bad limit');
      await call('GET', '/v1/missions?after=nowhere', {}, 'unknown cursor');
      await call('GET', '/v1/missions?colour=red', {}, 'unknown query');
      const mission = await call('GET', '/v1/missions/mss-haiti', { key: kenya });
      await call(
        'GET',
        '/v1/missions/mss-haiti',
        { key: kenya, headers: { 'if-none-match': String(mission.headers.etag) } },
        'If-None-Match',
      );
      await call('GET', '/v1/missions/nowhere', {}, 'unknown mission');
      await call('GET', '/v1/missions/Not_A_Slug', {}, 'bad id');
      await call('GET', '/v1/missions/mss-haiti', { key: outsider }, 'out of scope');
      const readiness = await call('GET', '/v1/missions/mss-haiti/readiness', { key: kenya });
      await call(
        'GET',
        '/v1/missions/mss-haiti/readiness',
        { key: kenya, headers: { 'if-none-match': String(readiness.headers.etag) } },
        'If-None-Match',
      );
      await call('GET', '/v1/missions/mss-haiti/readiness?asOf=2024-03-05T00:00:00Z');
      await call('GET', '/v1/missions/mss-haiti/readiness?knownAt=2024-03-05T00:00:00Z');
      await call(
        'GET',
        '/v1/missions/mss-haiti/readiness?knownAt=2020-01-01T00:00:00Z',
        {},
        'before the mission',
      );
      await call(
        'GET',
        `/v1/missions/mss-haiti/readiness?atPosition=${encodeURIComponent(String(readiness.json().position))}`,
      );
      await call('GET', '/v1/missions/mss-haiti/readiness?asOf=yesterday', {}, 'bad instant');
      await call(
        'GET',
        '/v1/missions/mss-haiti/readiness?asOf=2024-03-05T00:00:00Z&knownAt=2024-03-05T00:00:00Z',
        {},
        'two bases',
      );
      await call('GET', '/v1/missions/nowhere/readiness', {}, 'unknown mission');
      await call('GET', '/v1/missions/mss-haiti/events?limit=2');
      await call('GET', '/v1/missions/mss-haiti/events?afterRevision=-2', {}, 'bad afterRevision');
      await call(
        'GET',
        '/v1/missions/mss-haiti/events',
        { headers: { accept: 'application/x-ndjson' } },
        'NDJSON export',
      );
      await call(
        'GET',
        '/v1/missions/nowhere/events',
        { headers: { accept: 'application/x-ndjson' } },
        'NDJSON, unknown mission',
      );
      await call('GET', '/v1/missions/nowhere/events', {}, 'unknown mission');
      await call('GET', '/v1/missions/mss-haiti/readiness/history?limit=3');
      await call('GET', '/v1/missions/mss-haiti/readiness/history?afterSeq=x', {}, 'bad afterSeq');
      await call('GET', '/v1/missions/nowhere/readiness/history', {}, 'unknown mission');
      await call('GET', '/v1/missions/mss-haiti/audit', { key: auditor });
      await call('GET', '/v1/missions/nowhere/audit', {}, 'unknown mission');
      await call('GET', '/v1/missions/mss-haiti/audit', { key: outsider }, 'out of scope');

      // Agencies and keys.
      await call('GET', '/v1/me', { key: kenya });
      await call('GET', '/v1/roles', { key: kenya });
      await call('POST', '/v1/agencies', {
        body: { id: 'france', name: 'France', roles: ['donor'], missions: ['mss-haiti'] },
      });
      await call(
        'POST',
        '/v1/agencies',
        { body: { id: 'france', name: 'France', roles: ['donor'], missions: ['mss-haiti'] } },
        'registered already',
      );
      await call('POST', '/v1/agencies', { body: { id: 'France!', roles: ['king'] } }, 'invalid body');
      await call(
        'POST',
        '/v1/agencies',
        { key: kenya, body: { id: 'x-agency', name: 'x', roles: ['donor'], missions: [] } },
        'not an admin',
      );
      await call('GET', '/v1/agencies');
      await call('GET', '/v1/agencies', { key: kenya });
      await call('GET', '/v1/agencies/kenya', { key: kenya });
      await call('GET', '/v1/agencies/nowhere', {}, 'unknown agency');
      await call('GET', '/v1/agencies/france', { key: kenya }, 'another agency');
      await call('GET', '/v1/agencies/Not_An_Id', {}, 'bad id');
      const issued = await call('POST', '/v1/agencies/france/keys', {
        body: { label: 'ops', expiresAt: '2030-01-01T00:00:00Z' },
      });
      await call(
        'POST',
        '/v1/agencies/france/keys',
        { body: { label: 'late', expiresAt: '2000-01-01T00:00:00Z' } },
        'expired at birth',
      );
      await call(
        'POST',
        '/v1/agencies/france/keys',
        { key: issued.json().key, body: { label: 'forever' } },
        'outlives its issuer',
      );
      await call('POST', '/v1/agencies/france/keys', { body: { label: 5 } }, 'invalid body');
      await call('POST', '/v1/agencies/nowhere/keys', { body: { label: 'x' } }, 'unknown agency');
      await call('POST', '/v1/agencies/france/keys', { key: kenya, body: { label: 'x' } }, 'another agency');
      await call('GET', '/v1/agencies/france/keys');
      await call('GET', '/v1/agencies/nowhere/keys', {}, 'unknown agency');
      await call('GET', '/v1/agencies/france/keys', { key: kenya }, 'another agency');
      await call(
        'DELETE',
        `/v1/agencies/france/keys/${issued.json().keyId}`,
        { key: kenya },
        'another agency',
      );
      await call('DELETE', `/v1/agencies/france/keys/${issued.json().keyId}`);
      await call('DELETE', `/v1/agencies/france/keys/${issued.json().keyId}`, {}, 'revoked already');
      await call('DELETE', '/v1/agencies/france/keys/nokey', {}, 'unknown key');
      await call(
        'DELETE',
        '/v1/agencies/france/keys/nokey',
        { headers: { 'idempotency-key': 'k' } },
        'Idempotency-Key where not kept',
      );

      // Webhooks.
      await call('POST', '/v1/webhooks', { key: kenya, body: { url: 5, foo: 1 } }, 'invalid body');
      await call(
        'POST',
        '/v1/webhooks',
        { key: kenya, body: { url: hookUrl, missions: ['elsewhere'] } },
        'mission out of scope',
      );
      await call(
        'POST',
        '/v1/webhooks',
        { key: kenya, body: { url: 'http://10.0.0.1/hook' } },
        'private address',
      );
      await call(
        'POST',
        '/v1/webhooks',
        { key: kenya, body: { url: hookUrl }, headers: { 'idempotency-key': 'k' } },
        'Idempotency-Key where not kept',
      );
      await call('GET', '/v1/webhooks', { key: kenya });
      await call('GET', '/v1/webhooks?limit=1', { key: kenya });
      await call('GET', '/v1/webhooks?limit=0', { key: kenya }, 'bad limit');
      await call('GET', '/v1/webhooks?after=nonsense', { key: kenya }, 'bad cursor');
      await call('GET', `/v1/webhooks/${hookId}`, { key: kenya });
      await call('GET', `/v1/webhooks/${hookId}`, { key: outsider }, 'another agency');
      await call('GET', `/v1/webhooks/${'x'.repeat(101)}`, { key: kenya }, 'id too long');
      await call('PATCH', `/v1/webhooks/${hookId}`, { key: kenya, body: { description: 'ops centre' } });
      await call('PATCH', `/v1/webhooks/${hookId}`, { key: kenya, body: { enabled: 'no' } }, 'invalid body');
      await call(
        'PATCH',
        `/v1/webhooks/${hookId}`,
        { key: kenya, body: { missions: ['elsewhere'] } },
        'mission out of scope',
      );
      await call('PATCH', '/v1/webhooks/wh_nowhere', { key: kenya, body: { description: 'x' } }, 'unknown');
      const spare = (await call('POST', '/v1/webhooks', { key: kenya, body: { url: hookUrl } })).json()
        .id as string;
      await call('POST', `/v1/webhooks/${spare}/rotate-secret`, {
        key: kenya,
        body: { overlapSeconds: 3600 },
      });
      await call('POST', `/v1/webhooks/${spare}/rotate-secret`, { key: kenya });
      await call(
        'POST',
        `/v1/webhooks/${spare}/rotate-secret`,
        { key: kenya, body: { overlapSeconds: 3600 } },
        'three secrets live',
      );
      await call(
        'POST',
        `/v1/webhooks/${spare}/rotate-secret`,
        { key: kenya, body: { overlapSeconds: -1 } },
        'invalid body',
      );
      await call('POST', '/v1/webhooks/wh_nowhere/rotate-secret', { key: kenya, body: {} }, 'unknown');
      const test = await call('POST', `/v1/webhooks/${hookId}/test`, { key: kenya });
      await call('POST', '/v1/webhooks/wh_nowhere/test', { key: kenya }, 'unknown');
      for (let i = 0; i < 100 && received.length < 3; i++)
        await new Promise((resolve) => setTimeout(resolve, 50));
      await call('GET', `/v1/webhooks/${hookId}/deliveries`, { key: kenya });
      await call('GET', `/v1/webhooks/${hookId}/deliveries?status=failed&limit=2`, { key: kenya });
      await call('GET', `/v1/webhooks/${hookId}/deliveries?status=lost`, { key: kenya }, 'bad status');
      await call('GET', '/v1/webhooks/wh_nowhere/deliveries', { key: kenya }, 'unknown');
      await call('POST', `/v1/webhooks/${hookId}/replay`, {
        key: kenya,
        body: { since: '2024-01-01T00:00:00Z' },
      });
      await call('POST', `/v1/webhooks/${hookId}/replay`, { key: kenya, body: { afterChangeSeq: 0 } });
      await call(
        'POST',
        `/v1/webhooks/${hookId}/replay`,
        { key: kenya, body: { since: 'yesterday' } },
        'invalid body',
      );
      await call(
        'POST',
        '/v1/webhooks/wh_nowhere/replay',
        { key: kenya, body: { afterChangeSeq: 0 } },
        'unknown',
      );
      const deliveries = (
        await call('GET', `/v1/webhooks/${hookId}/deliveries?limit=200`, { key: kenya })
      ).json().items as Array<{ id: string }>;
      const deliveryId = test.json().id as string;
      const logged: unknown[] = [];
      for (const d of deliveries)
        logged.push((await call('GET', `/v1/webhooks/deliveries/${d.id}`, { key: kenya })).json().payload);
      await call('GET', '/v1/webhooks/deliveries/dlv_nowhere', { key: kenya }, 'unknown');
      await call('GET', `/v1/webhooks/deliveries/${deliveryId}/attempts`, { key: kenya });
      await call('GET', '/v1/webhooks/deliveries/dlv_nowhere/attempts', { key: kenya }, 'unknown');
      await call('POST', `/v1/webhooks/deliveries/${deliveryId}/replay`, { key: kenya });
      await call('POST', `/v1/webhooks/deliveries/${deliveryId}/replay`, { key: outsider }, 'another agency');
      await call('GET', '/v1/webhooks/events', { key: kenya });
      await call('GET', `/v1/webhooks/events?subscriptionId=${hookId}&limit=5`, { key: kenya });
      await call('GET', '/v1/webhooks/events?limit=x', { key: kenya }, 'bad limit');
      await call('DELETE', `/v1/webhooks/${spare}`, { key: kenya });
      await call('DELETE', `/v1/webhooks/${spare}`, { key: kenya }, 'deleted already');

      // Administration.
      const projections = await call('GET', '/v1/admin/projections', { key: auditor });
      await call('GET', '/v1/admin/projections', { key: kenya }, 'not an operator');
      const projection = projections.json().projections[0].name as string;
      await call('POST', `/v1/admin/projections/${projection}/rebuild`, { key: auditor }, 'not an admin');
      await call('POST', '/v1/admin/projections/nothing/rebuild', {}, 'unknown');

      // What every operation answers without a key, with a key that is not one, and past its read scope.
      const sample: Record<string, string> = {
        missionId: 'mss-haiti',
        agencyId: 'kenya',
        keyId: 'nokey',
        name: projection,
        commandName: 'no-such-command',
      };
      for (const [template, operations] of Object.entries(document.paths)) {
        for (const method of Object.keys(operations)) {
          const url = template.replace(/\{([^}]+)\}/g, (_, name: string) =>
            name === 'id' ? (template.includes('/deliveries/') ? deliveryId : hookId) : (sample[name] ?? 'x'),
          );
          const verb = method.toUpperCase();
          if (template.startsWith('/v1/')) {
            await call(verb, url, { key: null }, 'no key');
            await call(verb, url, { key: UNKNOWN_KEY }, 'unknown key');
          }
          if (verb === 'GET') {
            await call(verb, url, { key: outsider }, 'another agency’s key');
            await call(
              verb,
              url,
              { key: kenya, headers: { 'muster-min-position': 'not a position' } },
              'bad Muster-Min-Position',
            );
          }
        }
      }
      const head = String(readiness.json().position);
      const ahead = (BigInt(head) + 1000n).toString().padStart(head.length, '0');
      await call(
        'GET',
        '/v1/me',
        { key: kenya, headers: { 'muster-min-position': ahead } },
        'position not reached',
      );
      await call('POST', `/v1/admin/projections/${projection}/rebuild`);

      // Every operation was driven at least once, and each answer checked.
      expect(checked).toBeGreaterThan(400);
      const all = Object.values(document.paths).flatMap((ops) =>
        Object.values(ops).map((op) => op.operationId),
      );
      expect(all.filter((id) => id && !exercised.has(id))).toEqual([]);

      // Webhook payloads, as received and as the delivery log keeps them, against the document's webhooks.
      for (let i = 0; i < 100 && received.length < 3; i++)
        await new Promise((resolve) => setTimeout(resolve, 50));
      expect(received.length).toBeGreaterThan(2);
      for (const payload of [...received.map((m) => JSON.parse(m.body)), ...logged] as Array<{
        type: string;
      }>) {
        const schema =
          document.webhooks?.[payload.type]?.post?.requestBody?.content['application/json']?.schema;
        if (!schema) violations.push(`webhook ${payload.type}: not in the document's webhooks`);
        else {
          const error = validate(`webhook ${payload.type}`, schema, payload, false);
          if (error) violations.push(error);
        }
      }

      expect([...new Set(violations)]).toEqual([]);
    },
  );
});
