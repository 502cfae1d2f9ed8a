import { DEFAULT_HEAP_GROWTH_PERCENT, MAX_HEAP_GROWTH_PERCENT } from '@muster/projections';
import { z } from 'zod';

/**
 * The CLI's configuration: the same variables the service reads to find its store (see
 * services/api/src/config.ts), parsed once with zod and reported whole when wrong. The only module
 * of the CLI that reads `process.env`.
 */
const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v.trim()));

const heapGrowth = z.coerce.number().int().min(0).max(MAX_HEAP_GROWTH_PERCENT);

const variables = z.object({
  MUSTER_STORE: z.enum(['sqlite', 'postgres', 'esdb']).default('sqlite'),
  MUSTER_SQLITE_PATH: z.string().min(1).default('./data/muster.db'),
  DATABASE_URL: optionalString,
  ESDB_CONNECTION_STRING: optionalString,
  MUSTER_READ_MODEL_STORE: z.enum(['sqlite', 'postgres']).default('sqlite'),
  MUSTER_READ_MODEL_SQLITE_PATH: z.string().min(1).default('./data/muster-read-models.db'),
  MUSTER_HEAP_GROWTH_PERCENT: heapGrowth.default(DEFAULT_HEAP_GROWTH_PERCENT),
});

export interface CliConfig {
  store: 'sqlite' | 'postgres' | 'esdb';
  sqlitePath: string;
  databaseUrl: string | undefined;
  esdbConnectionString: string | undefined;
  readModelStore: 'sqlite' | 'postgres';
  readModelSqlitePath: string;
  /** V8's heap growth, applied at start as the service does (0: V8's own policy). */
  heapGrowthPercent: number;
}

export class ConfigError extends Error {
  constructor(readonly problems: readonly { variable: string; message: string }[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  ${p.variable}: ${p.message}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

export function loadConfig(env: Record<string, string | undefined> = process.env): Readonly<CliConfig> {
  const parsed = variables.safeParse(env);
  const problems = parsed.success
    ? []
    : parsed.error.issues.map((issue) => ({
        variable: String(issue.path[0] ?? '(environment)'),
        message: issue.message,
      }));
  const value = (name: string) => (env[name] ?? '').trim();
  const store = value('MUSTER_STORE') || 'sqlite';
  if (store === 'postgres' && !value('DATABASE_URL')) {
    problems.push({ variable: 'DATABASE_URL', message: 'required when MUSTER_STORE=postgres' });
  }
  if (store === 'esdb' && !value('ESDB_CONNECTION_STRING')) {
    problems.push({ variable: 'ESDB_CONNECTION_STRING', message: 'required when MUSTER_STORE=esdb' });
  }
  if (store === 'esdb' && value('MUSTER_READ_MODEL_STORE') === 'postgres' && !value('DATABASE_URL')) {
    problems.push({
      variable: 'DATABASE_URL',
      message: 'required when MUSTER_STORE=esdb and MUSTER_READ_MODEL_STORE=postgres',
    });
  }
  if (value('DATABASE_URL') && !/^postgres(ql)?:\/\//.test(value('DATABASE_URL'))) {
    problems.push({ variable: 'DATABASE_URL', message: 'must start with postgres:// or postgresql://' });
  }
  if (problems.length > 0 || !parsed.success) throw new ConfigError(problems);
  const e = parsed.data;
  return Object.freeze({
    store: e.MUSTER_STORE,
    sqlitePath: e.MUSTER_SQLITE_PATH,
    databaseUrl: e.DATABASE_URL,
    esdbConnectionString: e.ESDB_CONNECTION_STRING,
    readModelStore: e.MUSTER_READ_MODEL_STORE,
    readModelSqlitePath: e.MUSTER_READ_MODEL_SQLITE_PATH,
    heapGrowthPercent: e.MUSTER_HEAP_GROWTH_PERCENT,
  });
}
