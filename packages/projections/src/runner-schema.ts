import type { SqlClient, SqlDialect, SqlMigration } from '@muster/event-store';

/**
 * The runner's own tables. A checkpoint row per projection (its position, the code version and
 * table generation it was built with, and how far time-driven work has gone); a lease row per
 * projection (and per rebuild) naming the one process allowed to write; a row per rebuild in
 * progress, whose position is the shadow tables' own checkpoint.
 */
export const runnerMigrations: readonly SqlMigration[] = [
  {
    id: 'projections:runner:001',
    sqlite: `CREATE TABLE IF NOT EXISTS projection_checkpoints (
      name TEXT PRIMARY KEY,
      position TEXT,
      version INTEGER NOT NULL,
      generation INTEGER NOT NULL,
      watermark BIGINT,
      updated_at BIGINT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS projection_leases (
      name TEXT PRIMARY KEY,
      owner TEXT NOT NULL,
      expires_at BIGINT NOT NULL,
      term BIGINT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS projection_rebuilds (
      name TEXT PRIMARY KEY,
      generation INTEGER NOT NULL,
      version INTEGER NOT NULL,
      status TEXT NOT NULL,
      position TEXT,
      events BIGINT NOT NULL,
      started_at BIGINT NOT NULL,
      updated_at BIGINT NOT NULL
    );`,
    postgres: `CREATE TABLE IF NOT EXISTS projection_checkpoints (
      name TEXT PRIMARY KEY,
      position TEXT,
      version INTEGER NOT NULL,
      generation INTEGER NOT NULL,
      watermark BIGINT,
      updated_at BIGINT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS projection_leases (
      name TEXT PRIMARY KEY,
      owner TEXT NOT NULL,
      expires_at BIGINT NOT NULL,
      term BIGINT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS projection_rebuilds (
      name TEXT PRIMARY KEY,
      generation INTEGER NOT NULL,
      version INTEGER NOT NULL,
      status TEXT NOT NULL,
      position TEXT,
      events BIGINT NOT NULL,
      started_at BIGINT NOT NULL,
      updated_at BIGINT NOT NULL
    );`,
  },
];

/** `column` equals `param`, nulls included. */
export function sameAs(dialect: SqlDialect, column: string, param: string): string {
  return dialect === 'postgres' ? `${column} IS NOT DISTINCT FROM ${param}` : `${column} IS ${param}`;
}

export interface CheckpointRow {
  name: string;
  position: string | null;
  version: number;
  generation: number;
  watermark: number | null;
}

export async function readCheckpoint(sql: SqlClient, name: string): Promise<CheckpointRow | null> {
  const [row] = await sql.query<{
    name: string;
    position: string | null;
    version: number | string;
    generation: number | string;
    watermark: number | string | null;
  }>('SELECT name, position, version, generation, watermark FROM projection_checkpoints WHERE name = $1', [
    name,
  ]);
  if (!row) return null;
  return {
    name: row.name,
    position: row.position,
    version: Number(row.version),
    generation: Number(row.generation),
    watermark: row.watermark === null ? null : Number(row.watermark),
  };
}

export async function readCheckpoints(sql: SqlClient): Promise<Map<string, CheckpointRow>> {
  const rows = await sql.query<{
    name: string;
    position: string | null;
    version: number | string;
    generation: number | string;
    watermark: number | string | null;
  }>('SELECT name, position, version, generation, watermark FROM projection_checkpoints');
  return new Map(
    rows.map((row) => [
      row.name,
      {
        name: row.name,
        position: row.position,
        version: Number(row.version),
        generation: Number(row.generation),
        watermark: row.watermark === null ? null : Number(row.watermark),
      },
    ]),
  );
}

export interface RebuildRow {
  name: string;
  generation: number;
  version: number;
  status: 'building' | 'ready';
  position: string | null;
  events: number;
  startedAt: number;
}

export async function readRebuild(sql: SqlClient, name: string): Promise<RebuildRow | null> {
  const [row] = await sql.query<Record<string, unknown>>(
    'SELECT name, generation, version, status, position, events, started_at FROM projection_rebuilds WHERE name = $1',
    [name],
  );
  return row ? rebuildRowOf(name, row) : null;
}

/** A `projection_rebuilds` row as read from either dialect (numbers may come back as strings). */
export function rebuildRowOf(name: string, row: Record<string, unknown>): RebuildRow {
  return {
    name,
    generation: Number(row.generation),
    version: Number(row.version),
    status: row.status === 'ready' ? 'ready' : 'building',
    position: row.position === null ? null : String(row.position),
    events: Number(row.events),
    startedAt: Number(row.started_at),
  };
}
