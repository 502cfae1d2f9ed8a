import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SqlClient } from '@muster/event-store';
import { openPostgresSql } from '@muster/event-store-postgres';
import { openSqliteSql } from '@muster/event-store-sqlite';

/**
 * The SQL backends the planner and dispatcher tests run on: a fresh SQLite file per test, always;
 * a fresh PostgreSQL database per test on the server named by DATABASE_URL. Without it the
 * PostgreSQL tests skip with the reason in their name, unless MUSTER_REQUIRE_POSTGRES=1, where a
 * missing server fails them.
 */
export interface OpenedSql {
  sql: SqlClient;
  /** Another connection (pool) to the same database, as a second process would have. */
  openAnother(): Promise<SqlClient & { close(): Promise<void> }>;
  path?: string;
  url?: string;
  close(): Promise<void>;
}

export interface Backend {
  name: 'sqlite' | 'postgres';
  skip: string | undefined;
  open(): Promise<OpenedSql>;
}

const postgresRequired = process.env.MUSTER_REQUIRE_POSTGRES === '1';
const adminUrl = process.env.DATABASE_URL;

if (postgresRequired && !adminUrl) {
  throw new Error('MUSTER_REQUIRE_POSTGRES=1 but DATABASE_URL is not set: the PostgreSQL tests cannot run');
}

export const sqliteBackend: Backend = {
  name: 'sqlite',
  skip: undefined,
  async open() {
    const dir = mkdtempSync(join(tmpdir(), 'muster-webhooks-'));
    const path = join(dir, 'webhooks.db');
    const sql = openSqliteSql(path);
    const others: Array<{ close(): Promise<void> }> = [];
    return {
      sql,
      path,
      openAnother: async () => {
        const other = openSqliteSql(path);
        others.push(other);
        return other;
      },
      close: async () => {
        for (const o of others) await o.close();
        await sql.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  },
};

export const postgresBackend: Backend = {
  name: 'postgres',
  skip: adminUrl ? undefined : 'DATABASE_URL is not set',
  async open() {
    if (!adminUrl) throw new Error('DATABASE_URL is not set');
    const name = `muster_webhooks_${randomBytes(6).toString('hex')}`;
    const admin = await openPostgresSql(adminUrl, { poolSize: 1 });
    try {
      await admin.execute(`CREATE DATABASE ${name} ENCODING 'UTF8' TEMPLATE template0`);
    } finally {
      await admin.close();
    }
    const url = new URL(adminUrl);
    url.pathname = `/${name}`;
    const sql = await openPostgresSql(url.toString(), { poolSize: 10 });
    const others: Array<{ close(): Promise<void> }> = [];
    return {
      sql,
      url: url.toString(),
      openAnother: async () => {
        const other = await openPostgresSql(url.toString(), { poolSize: 10 });
        others.push(other);
        return other;
      },
      close: async () => {
        for (const o of others) await o.close();
        await sql.close();
        const cleanup = await openPostgresSql(adminUrl, { poolSize: 1 });
        try {
          await cleanup.execute(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
        } finally {
          await cleanup.close();
        }
      },
    };
  },
};

export const backends: readonly Backend[] = [sqliteBackend, postgresBackend];
