import { Writable } from 'node:stream';
import { bootstrapAdmin, buildApp, createLogger, loadConfig } from '@muster/api';
import { openSqliteEventStore, type SqliteEventStore } from '@muster/event-store-sqlite';
import { commandCatalog, mssHaitiScenario } from '@muster/readiness';
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';

/**
 * Hostile requests for every route of the service, and the rules every answer must keep:
 * never a 5xx, a 4xx is always a problem document with a code, a refused request appends
 * nothing, and the process keeps answering.
 */
export const ADMIN_KEY = 'fuzz-admin-key-0123456789abcdefghijklmnopqrstuvwxyz';

export interface FuzzTarget {
  app: FastifyInstance;
  store: SqliteEventStore;
  keys: { admin: string; donor: string; auditor: string };
  close(): Promise<void>;
}

export async function startTarget(): Promise<FuzzTarget> {
  const store = await openSqliteEventStore({ path: ':memory:' });
  const config = loadConfig({
    LOG_LEVEL: 'silent',
    MUSTER_BOOTSTRAP_ADMIN_KEY: ADMIN_KEY,
    MUSTER_RATE_LIMIT_PER_MINUTE: '0',
  });
  const sink = new Writable({ write: (_chunk, _encoding, done) => done() });
  const app = await buildApp({ config, store, sql: store.sql, logger: createLogger(config, sink) });
  await bootstrapAdmin(app.services, config);
  const inject = (method: string, url: string, body?: unknown, key = ADMIN_KEY) =>
    app.inject({
      method: method as 'POST',
      url,
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { payload: JSON.stringify(body) }),
    });
  // A mission with some history, so that routes with valid ids reach deep into the domain.
  for (const step of mssHaitiScenario.steps.slice(0, 12)) {
    const { type, missionId, ...payload } = step.command as { type: string; missionId: string } & Record<
      string,
      unknown
    >;
    const name = commandCatalog.find((c) => c.type === type)?.name as string;
    await inject('POST', `/v1/missions/${missionId}/commands/${name}`, payload);
  }
  const issue = async (id: string, roles: string[]) => {
    // An auditor reads every mission: its scope is '*'.
    const missions = roles.includes('auditor') ? ['*'] : ['mss-haiti'];
    await inject('POST', '/v1/agencies', { id, name: id, roles, missions });
    return (await inject('POST', `/v1/agencies/${id}/keys`, { label: 'fuzz' })).json().key as string;
  };
  const keys = {
    admin: ADMIN_KEY,
    donor: await issue('united-states', ['donor']),
    auditor: await issue('auditor', ['auditor']),
  };
  return {
    app,
    store,
    keys,
    close: async () => {
      await app.close();
      await store.close();
    },
  };
}

export interface HostileRequest {
  method: string;
  url: string;
  headers: Record<string, string>;
  payload?: string | Buffer;
}

const hostileStrings = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.constantFrom(
    '',
    ' ',
    '../../etc/passwd',
    '%00',
    '%E0%A4%A',
    '\u0000',
    'a'.repeat(300),
    '😀',
    '__proto__',
    'constructor',
    'prototype',
    'mss-haiti',
    'MSS-HAITI',
    '1e309',
    'null',
    '<script>',
  ),
);

const hostileNumbers = fc.oneof(
  fc.integer(),
  fc.double(),
  fc.constantFrom(-1, 0, 1e308, -1e308, Number.MAX_SAFE_INTEGER + 2, 2 ** 63, 1e-320),
);

const hostileDates = fc.oneof(
  fc
    .date({ noInvalidDate: false })
    .map((d) => (Number.isNaN(d.getTime()) ? 'Invalid Date' : d.toISOString())),
  fc.constantFrom(
    '0000-01-01T00:00:00Z',
    '9999-12-31T23:59:59Z',
    '+275760-09-13T00:00:00.000Z',
    '-271821-04-20T00:00:00.000Z',
    '2024-02-30T00:00:00Z',
    '2024-03-01T25:00:00Z',
    '2024-03-01',
    '2024-03-01T00:00:00',
    '1e12',
  ),
);

/** A JSON value that tries every type in every place. */
const hostileValue: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    hostileStrings,
    hostileNumbers,
    hostileDates,
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(hostileStrings, tie('value'), { maxKeys: 4 }),
  ),
})).value;

/** Valid command bodies, then broken: a field dropped, retyped, added, or the whole thing replaced. */
function commandBodies(): fc.Arbitrary<unknown> {
  const samples = mssHaitiScenario.steps.map((s) => {
    const { type: _type, missionId: _missionId, ...payload } = s.command as Record<string, unknown>;
    return payload;
  });
  return fc.oneof(
    fc.constantFrom(...samples),
    fc.tuple(fc.constantFrom(...samples), fc.nat(), hostileValue).map(([body, i, value]) => {
      const keys = Object.keys(body);
      const copy: Record<string, unknown> = { ...body };
      copy[keys[i % Math.max(1, keys.length)] ?? 'x'] = value;
      return copy;
    }),
    fc.tuple(fc.constantFrom(...samples), fc.nat()).map(([body, i]) => {
      const keys = Object.keys(body);
      const copy: Record<string, unknown> = { ...body };
      delete copy[keys[i % Math.max(1, keys.length)] as string];
      return copy;
    }),
    fc
      .tuple(fc.constantFrom(...samples), hostileStrings, hostileValue)
      .map(([body, key, value]) => ({ ...body, [key]: value })),
    hostileValue,
  );
}

function deepNesting(depth: number): string {
  return `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
}

const payloads: fc.Arbitrary<string | Buffer | undefined> = fc.oneof(
  { weight: 6, arbitrary: commandBodies().map((b) => JSON.stringify(b)) },
  { weight: 1, arbitrary: fc.constant(undefined) },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      '',
      '{',
      '{"a":1,}',
      'null',
      '[]',
      '"string"',
      '{"__proto__":{"isAdmin":true}}',
      '{"constructor":{"prototype":{"polluted":true}}}',
      deepNesting(200),
      deepNesting(20_000),
      `[${'1,'.repeat(100_000)}1]`,
      JSON.stringify({ note: 'x'.repeat(2_000_000) }),
    ),
  },
  {
    weight: 1,
    arbitrary: fc.uint8Array({ minLength: 1, maxLength: 64 }).map((bytes) => {
      // Invalid UTF-8 inside otherwise JSON-looking text.
      return Buffer.concat([
        Buffer.from('{"pledgeId":"'),
        Buffer.from(bytes),
        Buffer.from([0xc3, 0x28, 0xff]),
        Buffer.from('"}'),
      ]);
    }),
  },
);

function routeUrls(app: FastifyInstance): fc.Arbitrary<{ method: string; url: string }> {
  const routes = app.routeTable.filter((r: string) => !r.includes('/docs'));
  const segment = fc.oneof(
    {
      weight: 4,
      arbitrary: fc.constantFrom('mss-haiti', 'united-states', 'auditor', 'nowhere', 'muster-admin'),
    },
    { weight: 1, arbitrary: hostileStrings.map((s) => encodeURIComponent(s)) },
  );
  const query = fc.oneof(
    fc.constant(''),
    fc.constantFrom(
      '?asOf=2024-03-10T00:00:00Z',
      '?knownAt=2024-03-10T00:00:00Z',
      '?atPosition=00000000000000000010',
      '?asOf=yesterday',
      '?asOf=2024-03-10T00:00:00Z&knownAt=2024-03-10T00:00:00Z',
      '?limit=-1',
      '?limit=1e9',
      '?afterRevision=abc',
      '?afterRevision=99999999999999999999',
      '?__proto__=1',
      '?limit=1&limit=2',
    ),
    hostileStrings.map((s) => `?asOf=${encodeURIComponent(s)}`),
  );
  return fc.tuple(fc.constantFrom(...routes), segment, segment, query).map(([route, a, b, q]) => {
    const [method, path] = route.split(' ') as [string, string];
    let n = 0;
    const url = path.replace(/:[A-Za-z]+/g, () => (n++ === 0 ? a : b));
    return { method, url: `${url}${q}` };
  });
}

export function hostileRequests(target: FuzzTarget): fc.Arbitrary<HostileRequest> {
  const authorization = fc.oneof(
    { weight: 5, arbitrary: fc.constant(`Bearer ${target.keys.admin}`) },
    { weight: 2, arbitrary: fc.constant(`Bearer ${target.keys.donor}`) },
    { weight: 1, arbitrary: fc.constant(`Bearer ${target.keys.auditor}`) },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        '',
        'Bearer',
        'Bearer ',
        'Basic YWRtaW46YWRtaW4=',
        `Bearer ${'x'.repeat(600)}`,
        'Bearer mk_0000000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
      ),
    },
  );
  const contentType = fc.oneof(
    { weight: 8, arbitrary: fc.constant('application/json') },
    {
      weight: 2,
      arbitrary: fc.constantFrom(
        'application/json; charset=utf-8',
        'application/json; charset=latin1',
        'text/plain',
        'application/x-www-form-urlencoded',
        'multipart/form-data; boundary=x',
        'application/xml',
        '',
        'application/json, text/plain',
      ),
    },
  );
  const extraHeaders = fc.record(
    {
      'if-match': fc.oneof(
        fc.constantFrom('"0"', '"12"', 'W/"3"', '*', '"-1"', '""', 'banana'),
        hostileStrings,
      ),
      'idempotency-key': fc.oneof(fc.constantFrom('k1', 'k2', 'x'.repeat(300), ''), hostileStrings),
      accept: fc.constantFrom('application/json', 'application/x-ndjson', '*/*', 'text/html', 'image/png'),
      'x-request-id': hostileStrings,
    },
    { requiredKeys: [] },
  );
  // Requests aimed at the right command with a body of its own shape (sometimes bent): these reach
  // the domain and the store, where a refusal must still write nothing.
  const aimed = fc
    .tuple(
      fc.constantFrom(...mssHaitiScenario.steps),
      fc.nat(),
      fc.option(hostileValue, { nil: undefined, freq: 3 }),
      fc.constantFrom(target.keys.admin, target.keys.admin, target.keys.donor),
      fc.option(fc.integer({ min: 0, max: 30 }), { nil: undefined }),
    )
    .map(([step, n, bent, key, idempotency]): HostileRequest => {
      const {
        type,
        missionId,
        commandId: _commandId,
        ...payload
      } = step.command as {
        type: string;
        missionId: string;
        commandId: string;
      } & Record<string, unknown>;
      const name = commandCatalog.find((c) => c.type === type)?.name as string;
      const keys = Object.keys(payload);
      if (bent !== undefined && keys.length > 0) payload[keys[n % keys.length] as string] = bent;
      const headers: Record<string, string> = {
        'content-type': 'application/json',
        authorization: `Bearer ${key}`,
      };
      if (idempotency !== undefined) headers['idempotency-key'] = `aimed-${idempotency}`;
      return {
        method: 'POST',
        url: `/v1/missions/${missionId}/commands/${name}`,
        headers,
        payload: JSON.stringify(payload),
      };
    });
  const scattered = fc
    .tuple(routeUrls(target.app), authorization, contentType, extraHeaders, payloads)
    .map(([{ method, url }, auth, type, extra, payload]) => {
      const headers: Record<string, string> = {};
      if (auth) headers.authorization = auth;
      if (payload !== undefined && type) headers['content-type'] = type;
      for (const [name, value] of Object.entries(extra)) {
        // Header values cannot hold control characters or non-Latin-1 text; the client refuses them.
        if (typeof value === 'string' && /^[\x20-\x7e]*$/.test(value)) headers[name] = value;
      }
      return { method, url, headers, ...(payload !== undefined ? { payload } : {}) };
    });
  return fc.oneof({ weight: 3, arbitrary: scattered }, { weight: 1, arbitrary: aimed });
}

export interface Tally {
  requests: number;
  byStatus: Record<string, number>;
  byCode: Record<string, number>;
  violations: Array<{
    request: Omit<HostileRequest, 'payload'> & { payload?: string };
    status: number;
    body: string;
    rule: string;
  }>;
}

export function emptyTally(): Tally {
  return { requests: 0, byStatus: {}, byCode: {}, violations: [] };
}

/** Sends one request and checks the rules; returns the broken rule, if any. */
export async function check(
  target: FuzzTarget,
  request: HostileRequest,
  tally: Tally,
): Promise<string | null> {
  const before = await target.store.headPosition();
  const res = await target.app.inject({
    method: request.method as 'GET',
    url: request.url,
    headers: request.headers,
    ...(request.payload !== undefined ? { payload: request.payload } : {}),
  });
  tally.requests++;
  tally.byStatus[res.statusCode] = (tally.byStatus[res.statusCode] ?? 0) + 1;
  let rule: string | null = null;
  if (res.statusCode >= 500) rule = 'a 5xx answer';
  else if (res.statusCode >= 400) {
    const type = String(res.headers['content-type'] ?? '');
    let code: unknown;
    try {
      code = (JSON.parse(res.body) as { code?: unknown }).code;
    } catch {
      code = undefined;
    }
    if (!type.includes('application/problem+json') || typeof code !== 'string')
      rule = 'a 4xx without a problem body';
    else tally.byCode[code] = (tally.byCode[code] ?? 0) + 1;
    if (/at \S*\.(?:js|ts|mjs|cjs):\d+:\d+/.test(res.body)) rule = 'a stack trace in the body';
    if (!rule && (await target.store.headPosition()) !== before) rule = 'a refused request appended events';
  }
  if (rule) {
    const shown =
      typeof request.payload === 'string'
        ? request.payload.slice(0, 300)
        : request.payload?.toString('base64').slice(0, 300);
    tally.violations.push({
      request: {
        method: request.method,
        url: request.url,
        headers: request.headers,
        ...(shown !== undefined ? { payload: shown } : {}),
      },
      status: res.statusCode,
      body: res.body.slice(0, 500),
      rule,
    });
  }
  return rule;
}
