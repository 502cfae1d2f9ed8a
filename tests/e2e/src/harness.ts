import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

/**
 * Starts the built service (`services/api/dist/server.js`) as a real process and talks to it
 * over HTTP. Stores: a temp SQLite file, or a fresh database on the PostgreSQL server named by
 * DATABASE_URL (CI always has one; MUSTER_REQUIRE_POSTGRES=1 turns its absence into a failure).
 */
const here = dirname(fileURLToPath(import.meta.url));
export const SERVER = join(here, '../../../services/api/dist/server.js');
export const ADMIN_KEY = `e2e-admin-${randomBytes(24).toString('hex')}`;

export type StoreKind = 'sqlite' | 'postgres';

export function postgresAvailability(): { available: boolean; reason: string } {
  if (process.env.DATABASE_URL) return { available: true, reason: '' };
  if (process.env.MUSTER_REQUIRE_POSTGRES === '1') {
    throw new Error(
      'MUSTER_REQUIRE_POSTGRES=1 but DATABASE_URL is not set: the PostgreSQL end-to-end suite cannot run',
    );
  }
  return { available: false, reason: 'DATABASE_URL is not set' };
}

/** A store the service processes of one test share: a SQLite file or a fresh PostgreSQL database. */
export interface StoreHandle {
  kind: StoreKind;
  env: Record<string, string>;
  dispose(): Promise<void>;
}

export async function createStore(kind: StoreKind): Promise<StoreHandle> {
  if (kind === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'muster-e2e-'));
    return {
      kind,
      env: { MUSTER_STORE: 'sqlite', MUSTER_SQLITE_PATH: join(dir, 'muster.db') },
      dispose: async () => rmSync(dir, { recursive: true, force: true }),
    };
  }
  const base = process.env.DATABASE_URL as string;
  const name = `muster_e2e_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: base });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(base);
  url.pathname = `/${name}`;
  return {
    kind,
    env: { MUSTER_STORE: 'postgres', DATABASE_URL: url.toString() },
    dispose: async () => {
      const client = new pg.Client({ connectionString: base });
      await client.connect();
      await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await client.end();
    },
  };
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

export interface ServiceProcess {
  url: string;
  port: number;
  child: ChildProcess;
  output: string[];
  /** Resolves with the exit code once the process ends. */
  exited: Promise<number | null>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export async function startService(
  store: StoreHandle,
  env: Record<string, string> = {},
  /** The service's entry point: the workspace's build unless another is given. */
  server: string = SERVER,
): Promise<ServiceProcess> {
  const port = await freePort();
  const child = spawn(process.execPath, [server], {
    env: {
      PATH: process.env.PATH ?? '',
      HOST: '127.0.0.1',
      PORT: String(port),
      LOG_LEVEL: 'info',
      MUSTER_BOOTSTRAP_ADMIN_KEY: ADMIN_KEY,
      ...store.env,
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  child.stdout?.on('data', (chunk: Buffer) => output.push(chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => output.push(chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null)
      throw new Error(`service exited with ${child.exitCode}:\n${output.join('')}`);
    try {
      const res = await fetch(`${url}/health/ready`);
      if (res.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`service did not become ready:\n${output.join('')}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return {
    url,
    port,
    child,
    output,
    exited,
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode === null) child.kill(signal);
      return exited;
    },
  };
}

export interface ApiResponse {
  status: number;
  headers: Headers;
  body: string;
  // biome-ignore lint/suspicious/noExplicitAny: tests read whatever JSON the service answered, field by field.
  json(): any;
}

export async function call(
  service: { url: string },
  method: string,
  path: string,
  options: { key?: string | null; body?: unknown; headers?: Record<string, string> } = {},
): Promise<ApiResponse> {
  const key = options.key === undefined ? ADMIN_KEY : options.key;
  const headers: Record<string, string> = {
    ...(key ? { authorization: `Bearer ${key}` } : {}),
    ...(options.body !== undefined ? { 'content-type': 'application/json' } : {}),
    ...options.headers,
  };
  const text =
    options.body === undefined
      ? undefined
      : typeof options.body === 'string'
        ? options.body
        : JSON.stringify(options.body);
  if (text !== undefined && text.length > EARLY_ANSWER_BYTES)
    return callEarly(service, method, path, headers, text);
  const res = await fetch(`${service.url}${path}`, {
    method,
    headers,
    ...(text !== undefined ? { body: text } : {}),
  });
  const body = await res.text();
  return { status: res.status, headers: res.headers, body, json: () => JSON.parse(body) };
}

/** Bodies larger than this may be answered (a 413) before they are sent whole. */
const EARLY_ANSWER_BYTES = 64 * 1024;

/**
 * A request whose answer may come before its body is sent whole: the service refuses a body over
 * its limit at once and closes, and fetch then reports the broken pipe instead of the answer it
 * got. node:http gives the answer.
 */
function callEarly(
  service: { url: string },
  method: string,
  path: string,
  headers: Record<string, string>,
  text: string,
): Promise<ApiResponse> {
  return new Promise((resolve, reject) => {
    let answered = false;
    const req = httpRequest(`${service.url}${path}`, { method, headers }, (res) => {
      answered = true;
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        const responseHeaders = new Headers();
        for (const [name, value] of Object.entries(res.headers)) {
          if (value !== undefined) responseHeaders.set(name, Array.isArray(value) ? value.join(', ') : value);
        }
        resolve({
          status: res.statusCode ?? 0,
          headers: responseHeaders,
          body,
          json: () => JSON.parse(body),
        });
      });
      res.on('error', reject);
    });
    // The broken pipe can be reported before the answer that came with it is parsed.
    req.on('error', (error) => {
      setTimeout(() => {
        if (!answered) reject(error);
      }, 250);
    });
    req.end(text);
  });
}

export async function registerAgency(
  service: { url: string },
  id: string,
  roles: string[],
  missions = ['*'],
): Promise<string> {
  const created = await call(service, 'POST', '/v1/agencies', { body: { id, name: id, roles, missions } });
  if (created.status !== 201 && created.status !== 409)
    throw new Error(`agency ${id}: ${created.status} ${created.body}`);
  const key = await call(service, 'POST', `/v1/agencies/${id}/keys`, { body: { label: 'e2e' } });
  if (key.status !== 201) throw new Error(`key for ${id}: ${key.status} ${key.body}`);
  return key.json().key;
}

/** The URL path segment of a command type: `PledgeLogistics` → `pledge-logistics`. */
export const kebab = (type: string) => type.replace(/([a-z0-9])([A-Z])/g, '$1-$2').toLowerCase();

/**
 * A TCP proxy in front of a server (PostgreSQL, for the outage tests): `cut()` drops every
 * connection through it and refuses new ones, as a database that goes away does, for the processes
 * behind the proxy only; `restore()` listens again on the same port.
 */
export class TcpProxy {
  private server: ReturnType<typeof createServer> | null = null;
  private readonly sockets = new Set<import('node:net').Socket>();
  port = 0;

  constructor(
    private readonly targetHost: string,
    private readonly targetPort: number,
  ) {}

  /** A proxy for the server a connection string names. */
  static async forUrl(connectionString: string): Promise<TcpProxy> {
    const target = new URL(connectionString);
    const proxy = new TcpProxy(target.hostname || '127.0.0.1', Number(target.port || 5432));
    await proxy.restore();
    return proxy;
  }

  get listening(): boolean {
    return this.server !== null;
  }

  async restore(): Promise<void> {
    if (this.server) return;
    const { connect } = await import('node:net');
    const server = createServer((client) => {
      const upstream = connect(this.targetPort, this.targetHost);
      for (const socket of [client, upstream]) {
        this.sockets.add(socket);
        socket.on('close', () => this.sockets.delete(socket));
        socket.on('error', () => {
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    const address = server.address();
    if (typeof address === 'object' && address) this.port = address.port;
    this.server = server;
  }

  async cut(): Promise<void> {
    const server = this.server;
    this.server = null;
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** The same connection string, pointed at the proxy. */
  url(connectionString: string): string {
    const url = new URL(connectionString);
    url.hostname = '127.0.0.1';
    url.port = String(this.port);
    return url.toString();
  }
}

/** The events of a mission export (`Accept: application/x-ndjson`): every line after the header. */
export function parseExport<T = Record<string, unknown>>(text: string): T[] {
  return text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as T & { kind?: string })
    .filter((line) => line.kind !== 'muster-export');
}
