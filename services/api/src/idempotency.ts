import { hash as cryptoHash } from 'node:crypto';
import { canonicalJson, migrate, type SqlClient, type SqlMigration } from '@muster/event-store';

/**
 * Idempotency keys, per agency, stored in the same database as the events so that they survive
 * a restart. A key is claimed before the command runs (`in-progress`, with a lock that expires)
 * and completed with the response, which later requests with the same key and the same request
 * get back verbatim. A key whose holder died before completing is taken over once its lock
 * expires; the command id stored with the claim then lets the service recognise events the dead
 * attempt already appended, and a re-run appends under the same id.
 */
export const IDEMPOTENCY_KEY_PATTERN = /^[\x21-\x7e]{1,255}$/;

/** Keys are kept at least this long (the cleanup deletes only older ones). */
export const IDEMPOTENCY_RETENTION_MS = 48 * 60 * 60 * 1000;

const migrations: SqlMigration[] = [
  {
    id: 'api:idempotency:001',
    sqlite: `CREATE TABLE IF NOT EXISTS idempotency_keys (
      agency_id TEXT NOT NULL,
      idempotency_key TEXT NOT NULL,
      request_hash TEXT NOT NULL,
      state TEXT NOT NULL,
      mission_id TEXT,
      command_id TEXT NOT NULL,
      base_revision BIGINT,
      locked_until BIGINT NOT NULL,
      status INTEGER,
      response_body TEXT,
      response_headers TEXT,
      created_at BIGINT NOT NULL,
      PRIMARY KEY (agency_id, idempotency_key)
    );
    CREATE INDEX IF NOT EXISTS idempotency_keys_created ON idempotency_keys (created_at);`,
    postgres: `CREATE TABLE IF NOT EXISTS idempotency_keys (
      agency_id TEXT NOT NULL,
      idempotency_key TEXT NOT NULL,
      request_hash TEXT NOT NULL,
      state TEXT NOT NULL,
      mission_id TEXT,
      command_id TEXT NOT NULL,
      base_revision BIGINT,
      locked_until BIGINT NOT NULL,
      status INTEGER,
      response_body TEXT,
      response_headers TEXT,
      created_at BIGINT NOT NULL,
      PRIMARY KEY (agency_id, idempotency_key)
    );
    CREATE INDEX IF NOT EXISTS idempotency_keys_created ON idempotency_keys (created_at);`,
  },
  {
    id: 'api:idempotency:002',
    sqlite: `ALTER TABLE idempotency_keys ADD COLUMN owner TEXT;
    CREATE TABLE IF NOT EXISTS service_instances (instance_id TEXT PRIMARY KEY, heartbeat_at BIGINT NOT NULL);`,
    postgres: `ALTER TABLE idempotency_keys ADD COLUMN IF NOT EXISTS owner TEXT;
    CREATE TABLE IF NOT EXISTS service_instances (instance_id TEXT PRIMARY KEY, heartbeat_at BIGINT NOT NULL);`,
  },
];

/** A process that has not beaten its heart for this long is dead: its claims can be taken over. */
export const INSTANCE_DEAD_AFTER_MS = 8_000;
export const HEARTBEAT_EVERY_MS = 2_000;

export interface StoredResponse {
  status: number;
  body: string;
  headers: Record<string, string>;
}

export type Claim =
  | { kind: 'claimed'; commandId: string }
  /** The holder died: re-run, but first look for what it appended after `baseRevision`. */
  | { kind: 'recovered'; commandId: string; missionId: string | null; baseRevision: number | null }
  | { kind: 'replay'; response: StoredResponse }
  | { kind: 'mismatch' }
  | { kind: 'in-progress'; retryAfterSeconds: number };

interface Row {
  owner: string | null;
  request_hash: string;
  state: string;
  mission_id: string | null;
  command_id: string;
  base_revision: number | string | null;
  locked_until: number | string;
  status: number | null;
  response_body: string | null;
  response_headers: string | null;
}

export function requestHash(method: string, path: string, body: unknown): string {
  return cryptoHash('sha256', canonicalJson({ method, path, body: body ?? null }), 'hex');
}

export class IdempotencyStore {
  constructor(
    private readonly sql: SqlClient,
    private readonly clock: () => Date,
    private readonly lockMs: number,
    /** This process: its claims carry it, and its heartbeat tells other replicas it is alive. */
    private readonly instanceId: string,
  ) {}

  /**
   * The keys this process is working on now. A claim of this process that is not among them was
   * left when a release could not be written (the database was away): it is free at once, not
   * after its lock runs out.
   */
  private readonly active = new Set<string>();
  private readonly slot = (agencyId: string, key: string) => `${agencyId}\u0000${key}`;

  /**
   * A durable write whose wait for the disk leaves the event loop free: on SQLite an autocommit
   * statement is an fsync on this thread, two per keyed command (claim and completion), which had
   * held keyed commands to about a third of the others' rate. Synced on the thread pool instead,
   * commits share their fsyncs with the appends around them. PostgreSQL never blocks the thread,
   * and a transaction there would only add two round trips.
   */
  private write(text: string, params: readonly unknown[]): Promise<number> {
    if (this.sql.dialect === 'postgres') return this.sql.execute(text, params);
    return this.sql.transaction((tx) => tx.execute(text, params), { syncInBackground: true });
  }

  async migrate(): Promise<void> {
    await migrate(this.sql, migrations);
  }

  async heartbeat(): Promise<void> {
    await this.sql.execute(
      `INSERT INTO service_instances (instance_id, heartbeat_at) VALUES ($1, $2)
       ON CONFLICT (instance_id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at`,
      [this.instanceId, this.clock().getTime()],
    );
  }

  async retire(): Promise<void> {
    await this.sql.execute('DELETE FROM service_instances WHERE instance_id = $1', [this.instanceId]);
  }

  private async ownerAlive(owner: string | null): Promise<boolean> {
    if (owner === null) return true;
    const [row] = await this.sql.query<{ heartbeat_at: number | string }>(
      'SELECT heartbeat_at FROM service_instances WHERE instance_id = $1',
      [owner],
    );
    return row !== undefined && Number(row.heartbeat_at) > this.clock().getTime() - INSTANCE_DEAD_AFTER_MS;
  }

  async claim(
    agencyId: string,
    key: string,
    hash: string,
    missionId: string | null,
    baseRevision: number | null,
    /** The command's id, stored with a new claim; a claim taken over gives back the one stored. */
    commandId: string,
  ): Promise<Claim> {
    const now = this.clock().getTime();
    const inserted = await this.write(
      `INSERT INTO idempotency_keys (agency_id, idempotency_key, request_hash, state, mission_id, command_id, base_revision, locked_until, created_at, owner)
       VALUES ($1, $2, $3, 'in-progress', $4, $5, $6, $7, $8, $9) ON CONFLICT (agency_id, idempotency_key) DO NOTHING`,
      [agencyId, key, hash, missionId, commandId, baseRevision, now + this.lockMs, now, this.instanceId],
    );
    if (inserted === 1) {
      this.active.add(this.slot(agencyId, key));
      return { kind: 'claimed', commandId };
    }
    const [row] = await this.sql.query<Row & Record<string, unknown>>(
      'SELECT request_hash, state, mission_id, command_id, base_revision, locked_until, status, response_body, response_headers, owner FROM idempotency_keys WHERE agency_id = $1 AND idempotency_key = $2',
      [agencyId, key],
    );
    if (!row) return this.claim(agencyId, key, hash, missionId, baseRevision, commandId);
    if (row.request_hash !== hash) return { kind: 'mismatch' };
    if (row.state === 'done') {
      return {
        kind: 'replay',
        response: {
          status: Number(row.status),
          body: row.response_body ?? '',
          headers: JSON.parse(row.response_headers ?? '{}'),
        },
      };
    }
    const lockedUntil = Number(row.locked_until);
    const holderAlive =
      row.owner === this.instanceId
        ? this.active.has(this.slot(agencyId, key))
        : await this.ownerAlive(row.owner);
    if (lockedUntil > now && holderAlive) {
      return {
        kind: 'in-progress',
        retryAfterSeconds: Math.max(1, Math.min(5, Math.ceil((lockedUntil - now) / 1000))),
      };
    }
    // Take over a key whose holder died (or timed out), unless another request took it over first.
    const taken = await this.write(
      `UPDATE idempotency_keys SET locked_until = $1, owner = $2 WHERE agency_id = $3 AND idempotency_key = $4 AND state = 'in-progress' AND locked_until = $5`,
      [now + this.lockMs, this.instanceId, agencyId, key, lockedUntil],
    );
    if (taken !== 1) return this.claim(agencyId, key, hash, missionId, baseRevision, commandId);
    this.active.add(this.slot(agencyId, key));
    return {
      kind: 'recovered',
      commandId: row.command_id,
      missionId: row.mission_id,
      baseRevision: row.base_revision === null ? null : Number(row.base_revision),
    };
  }

  /** Stores the answer, unless another process took the claim over meanwhile (it answers instead). */
  async complete(agencyId: string, key: string, response: StoredResponse): Promise<void> {
    this.active.delete(this.slot(agencyId, key));
    await this.write(
      `UPDATE idempotency_keys SET state = 'done', status = $1, response_body = $2, response_headers = $3 WHERE agency_id = $4 AND idempotency_key = $5 AND owner = $6`,
      [response.status, response.body, JSON.stringify(response.headers), agencyId, key, this.instanceId],
    );
  }

  /**
   * Gives up a claim whose request failed for a reason a retry may not meet (5xx, store down): the
   * next request with the key takes it over at once, as from a dead holder, with the same command
   * id. Deleting it instead let a retry run the command again under a new id after an append
   * whose answer was lost had committed: the log got it twice.
   */
  async release(agencyId: string, key: string): Promise<void> {
    this.active.delete(this.slot(agencyId, key));
    await this.sql.execute(
      `UPDATE idempotency_keys SET locked_until = 0 WHERE agency_id = $1 AND idempotency_key = $2 AND state = 'in-progress' AND owner = $3`,
      [agencyId, key, this.instanceId],
    );
  }

  /**
   * Leases a previous service process held (on the embedded store it is dead: one service per
   * file), freed at start so that projections and webhook sending resume at once instead of after
   * the lease's remaining life (up to 15 s and 60 s). Only leases whose owner is a service
   * instance: a CLI rebuild running beside is not one, and keeps its lease.
   */
  async freeLeasesOfOtherInstances(): Promise<number> {
    let freed = 0;
    for (const table of ['projection_leases', 'webhook_leases']) {
      const [exists] = await this.sql.query(
        "SELECT 1 AS found FROM sqlite_master WHERE type = 'table' AND name = $1",
        [table],
      );
      if (!exists) continue;
      freed += await this.sql.execute(
        `UPDATE ${table} SET expires_at = 0 WHERE expires_at > 0 AND owner <> $1
           AND owner IN (SELECT instance_id FROM service_instances)`,
        [this.instanceId],
      );
    }
    return freed;
  }

  /** Claims held by a process that no longer exists (the embedded store has only one). */
  async expireInProgress(): Promise<number> {
    return this.sql.execute(`UPDATE idempotency_keys SET locked_until = 0 WHERE state = 'in-progress'`);
  }

  async purgeExpired(): Promise<number> {
    return this.sql.execute('DELETE FROM idempotency_keys WHERE created_at < $1', [
      this.clock().getTime() - IDEMPOTENCY_RETENTION_MS,
    ]);
  }
}
