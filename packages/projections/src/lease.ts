import type { SqlClient } from '@muster/event-store';
import { ProjectionError } from './errors.js';

/**
 * One writer per projection across processes that share a database. A lease row names its owner
 * and when it expires; a `term` that grows at every takeover fences the previous owner out: every
 * write transaction first renews the lease with a conditional UPDATE on (owner, term), and gives up
 * when that touches no row. On PostgreSQL the UPDATE also locks the row until commit, so a takeover
 * waits for the holder's transaction and then sees the renewed expiry; on SQLite write
 * transactions are serialised by the database. Either way two processes never both commit.
 */
export interface Lease {
  readonly name: string;
  readonly owner: string;
  readonly term: number;
}

/** Takes the lease when it is free, expired or already ours; null when another process holds it. */
export async function tryAcquireLease(
  sql: SqlClient,
  name: string,
  owner: string,
  now: number,
  ttlMs: number,
): Promise<Lease | null> {
  const rows = await sql.query<{ term: number | string }>(
    `INSERT INTO projection_leases (name, owner, expires_at, term) VALUES ($1, $2, $3, 1)
     ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at,
       term = projection_leases.term + 1
     WHERE projection_leases.expires_at <= $4 OR projection_leases.owner = $2
     RETURNING term`,
    [name, owner, now + ttlMs, now],
  );
  const [row] = rows;
  return row ? { name, owner, term: Number(row.term) } : null;
}

/** Renews the lease inside a write transaction; throws `lease-lost` when another process took it. */
export async function fenceLease(tx: SqlClient, lease: Lease, now: number, ttlMs: number): Promise<void> {
  const changed = await tx.execute(
    'UPDATE projection_leases SET expires_at = $1 WHERE name = $2 AND owner = $3 AND term = $4',
    [now + ttlMs, lease.name, lease.owner, lease.term],
  );
  if (changed !== 1) throw new ProjectionError('lease-lost', { lease: lease.name, owner: lease.owner });
}

/** Lets the lease go at once, so that a standby takes over without waiting for the expiry. */
export async function releaseLease(sql: SqlClient, lease: Lease): Promise<void> {
  await sql.execute(
    'UPDATE projection_leases SET expires_at = 0 WHERE name = $1 AND owner = $2 AND term = $3',
    [lease.name, lease.owner, lease.term],
  );
}

export interface LeaseRow {
  name: string;
  owner: string;
  expiresAt: number;
  term: number;
}

export async function readLeases(sql: SqlClient): Promise<Map<string, LeaseRow>> {
  const rows = await sql.query<{
    name: string;
    owner: string;
    expires_at: number | string;
    term: number | string;
  }>('SELECT name, owner, expires_at, term FROM projection_leases');
  return new Map(
    rows.map((r) => [
      r.name,
      { name: r.name, owner: r.owner, expiresAt: Number(r.expires_at), term: Number(r.term) },
    ]),
  );
}
