import { DEFAULT_HEAP_GROWTH_PERCENT, MAX_HEAP_GROWTH_PERCENT } from '@muster/projections';
import { z } from 'zod';

/**
 * The service's whole configuration, parsed once from the environment at start-up. This is the
 * only module that reads `process.env`; everything else receives the frozen result.
 */

const booleanFlag = z
  .enum(['1', '0', 'true', 'false', 'yes', 'no', 'on', 'off', ''])
  .optional()
  .transform((v) => v === '1' || v === 'true' || v === 'yes' || v === 'on');

/**
 * A whole number in plain decimal; blank counts as unset (as it does for strings, and as `.env`
 * files write it), so the default applies. `z.coerce.number()` read `PORT=` as 0 (a random port),
 * `MUSTER_RATE_LIMIT_PER_MINUTE=` as 0 (no limit), and `0x50` or `1e3` as numbers.
 */
const wholeNumber = (min: number, max: number, fallback: number) =>
  z.preprocess(
    (value) => {
      if (typeof value !== 'string') return value;
      const text = value.trim();
      if (text === '') return undefined;
      return /^\d{1,16}$/.test(text) ? Number(text) : text;
    },
    z
      .int({ error: `must be a whole number from ${min} to ${max}` })
      .min(min, `must be a whole number from ${min} to ${max}`)
      .max(max, `must be a whole number from ${min} to ${max}`)
      .default(fallback),
  );
/** The longest delay a Node timer takes; longer ones fire at once. */
const MAX_TIMER_MS = 2_147_483_647;
const port = (fallback: number) => wholeNumber(0, 65535, fallback);
const positiveInt = (fallback: number, max = Number.MAX_SAFE_INTEGER) => wholeNumber(1, max, fallback);

const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v.trim()));

const cidrList = z
  .string()
  .optional()
  .transform((v) =>
    (v ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s.length > 0),
  );

const variables = z.object({
  PORT: port(3000),
  HOST: z.string().min(1).default('127.0.0.1'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  MUSTER_STORE: z.enum(['sqlite', 'postgres', 'esdb']).default('sqlite'),
  MUSTER_SQLITE_PATH: z.string().min(1).default('./data/muster.db'),
  DATABASE_URL: optionalString,
  /** PostgreSQL: a statement unanswered this long gives up its connection (503, retryable); 0: no limit. */
  MUSTER_DATABASE_QUERY_TIMEOUT_MS: wholeNumber(0, MAX_TIMER_MS, 30_000),
  ESDB_CONNECTION_STRING: optionalString,
  /** Where read models, checkpoints, idempotency keys and the outbox live when events are in EventStoreDB. */
  MUSTER_READ_MODEL_STORE: z.enum(['sqlite', 'postgres']).default('sqlite'),
  MUSTER_READ_MODEL_SQLITE_PATH: z.string().min(1).default('./data/muster-read-models.db'),
  MUSTER_DEMO: booleanFlag,
  MUSTER_BOOTSTRAP_ADMIN_KEY: optionalString,
  MUSTER_BODY_LIMIT_BYTES: positiveInt(1024 * 1024, 64 * 1024 * 1024),
  MUSTER_MAX_EVENT_BYTES: positiveInt(1024 * 1024, 64 * 1024 * 1024),
  MUSTER_SHUTDOWN_TIMEOUT_MS: positiveInt(15_000, MAX_TIMER_MS),
  MUSTER_REQUEST_TIMEOUT_MS: positiveInt(30_000, MAX_TIMER_MS),
  MUSTER_RATE_LIMIT_PER_MINUTE: wholeNumber(0, 100_000_000, 6000),
  MUSTER_STATE_CACHE_EVENTS: wholeNumber(1000, 1_000_000_000, 200_000),
  /** V8's heap growth after each full collection, in percent; 0: V8's own policy (see setHeapGrowthPercent). */
  MUSTER_HEAP_GROWTH_PERCENT: wholeNumber(0, MAX_HEAP_GROWTH_PERCENT, DEFAULT_HEAP_GROWTH_PERCENT),
  MUSTER_PUBLIC_URL: optionalString,
  MUSTER_WEBHOOK_ALLOW_HTTP: booleanFlag,
  MUSTER_WEBHOOK_ALLOW_CIDRS: cidrList,
  /** Base64 of 32 random bytes: webhook signing secrets are kept encrypted with it. */
  MUSTER_WEBHOOK_SECRET_KEY: optionalString,
});

type Problem = { variable: string; message: string };

/**
 * Rules across variables, checked on the raw strings so that they are reported together with
 * the per-variable problems rather than only once those are fixed.
 */
function crossFieldProblems(env: Record<string, string | undefined>): Problem[] {
  const problems: Problem[] = [];
  const set = (name: string) => (env[name] ?? '').trim() !== '';
  const value = (name: string) => (env[name] ?? '').trim();
  const store = value('MUSTER_STORE') || 'sqlite';
  if (store === 'postgres' && !set('DATABASE_URL')) {
    problems.push({ variable: 'DATABASE_URL', message: 'required when MUSTER_STORE=postgres' });
  }
  if (store === 'esdb' && !set('ESDB_CONNECTION_STRING')) {
    problems.push({ variable: 'ESDB_CONNECTION_STRING', message: 'required when MUSTER_STORE=esdb' });
  }
  if (store === 'esdb' && value('MUSTER_READ_MODEL_STORE') === 'postgres' && !set('DATABASE_URL')) {
    problems.push({
      variable: 'DATABASE_URL',
      message: 'required when MUSTER_STORE=esdb and MUSTER_READ_MODEL_STORE=postgres',
    });
  }
  if (set('DATABASE_URL') && !/^postgres(ql)?:\/\//.test(value('DATABASE_URL'))) {
    problems.push({ variable: 'DATABASE_URL', message: 'must start with postgres:// or postgresql://' });
  }
  if (
    set('ESDB_CONNECTION_STRING') &&
    !/^(esdb|kurrentdb)(\+discover)?:\/\//.test(value('ESDB_CONNECTION_STRING'))
  ) {
    problems.push({
      variable: 'ESDB_CONNECTION_STRING',
      message: 'must start with esdb://, esdb+discover://, kurrentdb:// or kurrentdb+discover://',
    });
  }
  if (
    set('MUSTER_WEBHOOK_SECRET_KEY') &&
    Buffer.from(value('MUSTER_WEBHOOK_SECRET_KEY'), 'base64').length !== 32
  ) {
    problems.push({
      variable: 'MUSTER_WEBHOOK_SECRET_KEY',
      message: 'must be the base64 of 32 random bytes',
    });
  }
  if (set('MUSTER_BOOTSTRAP_ADMIN_KEY') && value('MUSTER_BOOTSTRAP_ADMIN_KEY').length < 32) {
    problems.push({
      variable: 'MUSTER_BOOTSTRAP_ADMIN_KEY',
      message: 'must be at least 32 characters (use a random key of 256 bits or more)',
    });
  }
  return problems;
}

export interface Config {
  port: number;
  host: string;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  store: 'sqlite' | 'postgres' | 'esdb';
  sqlitePath: string;
  databaseUrl: string | undefined;
  /** PostgreSQL only: how long a statement may go unanswered before its connection is replaced (0: no limit). */
  databaseQueryTimeoutMs: number;
  esdbConnectionString: string | undefined;
  readModelStore: 'sqlite' | 'postgres';
  readModelSqlitePath: string;
  demo: boolean;
  bootstrapAdminKey: string | undefined;
  bodyLimitBytes: number;
  maxEventBytes: number;
  shutdownTimeoutMs: number;
  requestTimeoutMs: number;
  rateLimitPerMinute: number;
  /** Most events held in memory by each cache of mission states (the writer's, the projection's). */
  stateCacheEvents: number;
  /** Applied by server.ts at start (0: V8's own policy). */
  heapGrowthPercent: number;
  publicUrl: string | undefined;
  webhookAllowHttp: boolean;
  webhookAllowCidrs: readonly string[];
  webhookSecretKey: string | undefined;
}

/** Every problem with the environment at once, one line per variable. */
export class ConfigError extends Error {
  readonly problems: readonly Problem[];

  constructor(problems: Problem[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  ${p.variable}: ${p.message}`).join('\n')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

export function loadConfig(env: Record<string, string | undefined> = process.env): Readonly<Config> {
  const parsed = variables.safeParse(env);
  const problems = [
    ...(parsed.success
      ? []
      : parsed.error.issues.map((issue) => ({
          variable: String(issue.path[0] ?? '(environment)'),
          message: issue.message,
        }))),
    ...crossFieldProblems(env),
  ];
  if (problems.length > 0 || !parsed.success) throw new ConfigError(problems);
  const e = parsed.data;
  return Object.freeze({
    port: e.PORT,
    host: e.HOST,
    logLevel: e.LOG_LEVEL,
    store: e.MUSTER_STORE,
    sqlitePath: e.MUSTER_SQLITE_PATH,
    databaseUrl: e.DATABASE_URL,
    databaseQueryTimeoutMs: e.MUSTER_DATABASE_QUERY_TIMEOUT_MS,
    esdbConnectionString: e.ESDB_CONNECTION_STRING,
    readModelStore: e.MUSTER_READ_MODEL_STORE,
    readModelSqlitePath: e.MUSTER_READ_MODEL_SQLITE_PATH,
    demo: e.MUSTER_DEMO,
    bootstrapAdminKey: e.MUSTER_BOOTSTRAP_ADMIN_KEY,
    bodyLimitBytes: e.MUSTER_BODY_LIMIT_BYTES,
    maxEventBytes: e.MUSTER_MAX_EVENT_BYTES,
    shutdownTimeoutMs: e.MUSTER_SHUTDOWN_TIMEOUT_MS,
    requestTimeoutMs: e.MUSTER_REQUEST_TIMEOUT_MS,
    rateLimitPerMinute: e.MUSTER_RATE_LIMIT_PER_MINUTE,
    stateCacheEvents: e.MUSTER_STATE_CACHE_EVENTS,
    heapGrowthPercent: e.MUSTER_HEAP_GROWTH_PERCENT,
    publicUrl: e.MUSTER_PUBLIC_URL,
    webhookAllowHttp: e.MUSTER_WEBHOOK_ALLOW_HTTP,
    webhookAllowCidrs: Object.freeze([...e.MUSTER_WEBHOOK_ALLOW_CIDRS]),
    webhookSecretKey: e.MUSTER_WEBHOOK_SECRET_KEY,
  });
}

/** The variables the service reads, with their meaning; the README table mirrors this. */
export const CONFIG_VARIABLES: readonly string[] = Object.freeze(Object.keys(variables.shape));

/**
 * `MUSTER_` variables the service does not read: most likely a misspelling (`MUSTER_SQLITE_PTH`)
 * whose intended setting is silently at its default. Reported as a warning at start.
 */
export function unknownVariables(env: Record<string, string | undefined> = process.env): string[] {
  const known = new Set(CONFIG_VARIABLES);
  return Object.keys(env)
    .filter((name) => name.startsWith('MUSTER_') && !known.has(name))
    .sort();
}

/**
 * The base URL of links (webhook payloads) when `MUSTER_PUBLIC_URL` is not set: the address the
 * service listens on, `localhost` for a wildcard (`0.0.0.0`, `::`), an IPv6 address in brackets.
 * The start-up warning names this same URL.
 */
export function defaultPublicUrl(config: Pick<Config, 'host' | 'port'>): string {
  const wildcard = config.host === '0.0.0.0' || config.host === '::' || config.host === '[::]';
  const host = wildcard
    ? 'localhost'
    : config.host.includes(':') && !config.host.startsWith('[')
      ? `[${config.host}]`
      : config.host;
  return `http://${host}:${config.port}`;
}
