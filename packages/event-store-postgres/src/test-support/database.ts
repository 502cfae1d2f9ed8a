import { randomBytes } from 'node:crypto';
import pg from 'pg';

/**
 * A database of its own for one test file, created on the server named by DATABASE_URL and dropped
 * afterwards, so that runs never see each other's events. Without DATABASE_URL the tests skip with
 * a reason, unless MUSTER_REQUIRE_POSTGRES=1 (CI), where a missing or unreachable server is an error.
 */
export type TestDatabase =
  | { skip: string; url?: undefined; adminUrl?: undefined; name?: undefined; drop?: undefined }
  | { skip?: undefined; url: string; adminUrl: string; name: string; drop: () => Promise<void> };

export const postgresRequired = process.env.MUSTER_REQUIRE_POSTGRES === '1';

export async function createTestDatabase(label: string): Promise<TestDatabase> {
  const adminUrl = process.env.DATABASE_URL;
  if (!adminUrl) {
    if (postgresRequired) {
      throw new Error(
        'MUSTER_REQUIRE_POSTGRES=1 but DATABASE_URL is not set: the PostgreSQL tests cannot run',
      );
    }
    return { skip: 'DATABASE_URL is not set' };
  }
  const name = `muster_test_${label}_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 5000 });
  try {
    await admin.connect();
    await admin.query(`CREATE DATABASE ${name} ENCODING 'UTF8' TEMPLATE template0`);
  } catch (error) {
    await admin.end().catch(() => {});
    const reason = `PostgreSQL at DATABASE_URL is unreachable or refused CREATE DATABASE: ${(error as Error).message}`;
    if (postgresRequired) throw new Error(`MUSTER_REQUIRE_POSTGRES=1 but ${reason}`, { cause: error });
    return { skip: reason };
  }
  await admin.end();
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    adminUrl,
    name,
    drop: async () => {
      const client = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 5000 });
      await client.connect();
      try {
        await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await client.end();
      }
    },
  };
}

/** A URL for another database on the same server. */
export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}
