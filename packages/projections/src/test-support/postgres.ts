import { randomBytes } from 'node:crypto';
import pg from 'pg';

/**
 * A database of its own for one test file on the server named by DATABASE_URL, dropped afterwards.
 * Without DATABASE_URL the PostgreSQL tests skip and say why, unless MUSTER_REQUIRE_POSTGRES=1,
 * where a missing or unreachable server fails them.
 */
export const postgresRequired = process.env.MUSTER_REQUIRE_POSTGRES === '1';
export const postgresUrl = process.env.DATABASE_URL;

export const postgresSkipReason =
  postgresUrl || postgresRequired ? null : 'DATABASE_URL is not set: PostgreSQL tests skipped';

export async function createPostgresDatabase(
  label: string,
): Promise<{ url: string; drop: () => Promise<void> }> {
  if (!postgresUrl) {
    throw new Error('MUSTER_REQUIRE_POSTGRES=1 but DATABASE_URL is not set: the PostgreSQL tests cannot run');
  }
  const name = `muster_proj_${label}_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Client({ connectionString: postgresUrl, connectionTimeoutMillis: 5000 });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name} ENCODING 'UTF8' TEMPLATE template0`);
  } finally {
    await admin.end();
  }
  const url = new URL(postgresUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      const client = new pg.Client({ connectionString: postgresUrl, connectionTimeoutMillis: 5000 });
      await client.connect();
      try {
        await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await client.end();
      }
    },
  };
}
