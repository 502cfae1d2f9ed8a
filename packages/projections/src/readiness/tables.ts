import type { SqlDialect } from '@muster/event-store';
import type { ProjectionTable } from '../projection.js';

/**
 * The readiness read models. Every column is derived from the log (and, for the changes time
 * alone causes, from how far the clock went): no wall-clock columns, so that a rebuild from zero
 * writes the same bytes. Instants are epoch milliseconds (BIGINT) in both dialects.
 */
export const MISSIONS = 'readiness_missions';
export const VERDICTS = 'readiness_verdicts';
export const HISTORY = 'readiness_history';
export const SNAPSHOTS = 'readiness_snapshots';
export const SNAPSHOT_PARTS = 'readiness_snapshot_parts';

const integer = (dialect: SqlDialect) => (dialect === 'postgres' ? 'BIGINT' : 'INTEGER');

export const readinessTables: readonly ProjectionTable[] = [
  {
    name: MISSIONS,
    create: (dialect, table, suffix) => `CREATE TABLE IF NOT EXISTS ${table} (
      mission_id TEXT PRIMARY KEY,
      name TEXT,
      lead_nation TEXT,
      base_currency TEXT,
      template TEXT,
      defined_at BIGINT,
      created_position TEXT,
      created_recorded_at BIGINT,
      revision ${integer(dialect)} NOT NULL,
      last_position TEXT NOT NULL,
      last_recorded_at BIGINT NOT NULL,
      max_recorded_at BIGINT NOT NULL,
      max_pledge_at BIGINT,
      recorded_monotonic ${integer(dialect)} NOT NULL,
      evaluated_at BIGINT,
      next_change_at BIGINT,
      policy_version ${integer(dialect)},
      history_seq ${integer(dialect)} NOT NULL,
      skipped_events ${integer(dialect)} NOT NULL
    );
    CREATE INDEX IF NOT EXISTS ${MISSIONS}_next${suffix} ON ${table} (next_change_at)`,
  },
  {
    name: VERDICTS,
    create: (dialect, table) => `CREATE TABLE IF NOT EXISTS ${table} (
      mission_id TEXT NOT NULL,
      phase TEXT NOT NULL,
      ord ${integer(dialect)} NOT NULL,
      title TEXT NOT NULL,
      status TEXT NOT NULL,
      policy_version ${integer(dialect)},
      verdict TEXT NOT NULL,
      PRIMARY KEY (mission_id, phase)
    )`,
  },
  {
    name: HISTORY,
    create: (dialect, table) => `CREATE TABLE IF NOT EXISTS ${table} (
      mission_id TEXT NOT NULL,
      seq ${integer(dialect)} NOT NULL,
      phase TEXT NOT NULL,
      title TEXT NOT NULL,
      from_status TEXT,
      to_status TEXT,
      occurred_at BIGINT NOT NULL,
      recorded_at BIGINT NOT NULL,
      evaluated_at BIGINT NOT NULL,
      cause TEXT NOT NULL,
      cause_event_id TEXT,
      cause_event_type TEXT,
      cause_revision ${integer(dialect)},
      cause_position TEXT,
      policy_version ${integer(dialect)},
      unmet_before TEXT NOT NULL,
      unmet_after TEXT NOT NULL,
      change_id TEXT NOT NULL,
      PRIMARY KEY (mission_id, seq)
    )`,
  },
  {
    // A cache of folded states for restarts and time travel, not a read model: which revisions it
    // holds depends on batching and shutdowns, so it is left out of determinism comparisons.
    name: SNAPSHOTS,
    create: (dialect, table) => `CREATE TABLE IF NOT EXISTS ${table} (
      mission_id TEXT NOT NULL,
      revision ${integer(dialect)} NOT NULL,
      position TEXT NOT NULL,
      recorded_at BIGINT NOT NULL,
      max_recorded_at BIGINT NOT NULL,
      state TEXT NOT NULL,
      PRIMARY KEY (mission_id, revision)
    )`,
  },
  {
    // The rest of a large snapshot's text, after the part its row holds, in order (see
    // `jsonParts`): written and read part by part, a state of many megabytes is never one string.
    name: SNAPSHOT_PARTS,
    create: (dialect, table) => `CREATE TABLE IF NOT EXISTS ${table} (
      mission_id TEXT NOT NULL,
      revision ${integer(dialect)} NOT NULL,
      part ${integer(dialect)} NOT NULL,
      state TEXT NOT NULL,
      PRIMARY KEY (mission_id, revision, part)
    )`,
  },
];

export const MISSION_COLUMNS = [
  'mission_id',
  'name',
  'lead_nation',
  'base_currency',
  'template',
  'defined_at',
  'created_position',
  'created_recorded_at',
  'revision',
  'last_position',
  'last_recorded_at',
  'max_recorded_at',
  'max_pledge_at',
  'recorded_monotonic',
  'evaluated_at',
  'next_change_at',
  'policy_version',
  'history_seq',
  'skipped_events',
] as const;

export const VERDICT_COLUMNS = [
  'mission_id',
  'phase',
  'ord',
  'title',
  'status',
  'policy_version',
  'verdict',
] as const;

export const HISTORY_COLUMNS = [
  'mission_id',
  'seq',
  'phase',
  'title',
  'from_status',
  'to_status',
  'occurred_at',
  'recorded_at',
  'evaluated_at',
  'cause',
  'cause_event_id',
  'cause_event_type',
  'cause_revision',
  'cause_position',
  'policy_version',
  'unmet_before',
  'unmet_after',
  'change_id',
] as const;

export const SNAPSHOT_COLUMNS = [
  'mission_id',
  'revision',
  'position',
  'recorded_at',
  'max_recorded_at',
  'state',
] as const;

export const SNAPSHOT_PART_COLUMNS = ['mission_id', 'revision', 'part', 'state'] as const;
