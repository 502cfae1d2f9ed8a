import type { EventFilter, RecordedEvent, SqlClient, SqlDialect, SqlMigration } from '@muster/event-store';
import type { ReadinessChange } from './change-feed.js';
import type { Logger } from './logger.js';

/**
 * A projection the runner feeds: its events arrive in batches, in log order, each batch with
 * the projection's writes and its checkpoint committed in one transaction. Its tables are
 * declared rather than created by hand, so that a rebuild can create a fresh generation of them
 * under shadow names, fill it from position zero while the live ones keep serving, and rename it
 * into place.
 */
export interface ProjectionTable {
  /** The live name, e.g. `readiness_missions`. */
  readonly name: string;
  /**
   * DDL creating the table as `table`; every index, constraint or other object it creates must end
   * its name with `suffix` (unique per generation), so that two generations can live side by side.
   */
  create(dialect: SqlDialect, table: string, suffix: string): string;
}

export type ProjectionMode = 'live' | 'rebuild';

export interface ProjectionContext {
  readonly projection: string;
  /** `live` writes the live tables and the change feed; `rebuild` writes shadow tables only. */
  readonly mode: ProjectionMode;
  readonly generation: number;
  /** The physical name of one of the projection's tables in this context. */
  table(name: string): string;
  /**
   * In-memory state of this context (caches). Dropped by the runner whenever it cannot vouch for
   * it: a failed batch, a new lease term, a swap.
   */
  readonly memory: Map<string, unknown>;
  readonly logger: Logger;
  readonly clock: () => Date;
  /**
   * In a rebuild: the instant up to which the live generation has recorded the changes time alone
   * causes (its watermark, as of this transaction), or null when unknown. The swap advances the
   * shadow at least that far, and no event appended from now on can be recorded before it (the
   * scheduler advances only once the log is processed), so a mission whose stream has no event
   * left past its state may be advanced to it early.
   */
  readonly liveWatermark?: () => number | null;
  /** Change-feed rows written by this transaction, handed to `onChanges` listeners after commit. */
  publish(changes: readonly ReadinessChange[]): void;
}

export interface Projection {
  readonly name: string;
  /** Bump when the code computes something else: the runner then rebuilds the tables in the background. */
  readonly version: number;
  readonly filter?: EventFilter;
  readonly tables: readonly ProjectionTable[];
  /** Tables shared by every generation and never rebuilt (the change feed). */
  readonly migrations?: readonly SqlMigration[];
  handle(events: readonly RecordedEvent[], tx: SqlClient, ctx: ProjectionContext): Promise<void>;
  /**
   * Work that time alone causes, for every instant up to `until` (epoch ms). Called by the lease
   * holder once the projection has processed everything in the log, and on the shadow tables before
   * a swap, up to the instant the live ones had reached.
   */
  advanceTime?(until: number, tx: SqlClient, ctx: ProjectionContext): Promise<void>;
  /** The earliest instant at which `advanceTime` has work, or null. */
  nextDue?(sql: SqlClient, ctx: ProjectionContext): Promise<number | null>;
  /** Persists what only memory holds (snapshots) before the runner lets the projection go. */
  flush?(tx: SqlClient, ctx: ProjectionContext): Promise<void>;
  /** Told of each new live context (a new lease term, a swapped-in generation), and of none (null). */
  attach?(ctx: ProjectionContext | null): void;
}

export function generationSuffix(generation: number): string {
  return `__g${generation}`;
}

/** Live tables keep their plain names; a generation being built lives under `<name>__g<n>`. */
export function physicalName(table: string, generation: number, mode: ProjectionMode): string {
  return mode === 'live' ? table : `${table}${generationSuffix(generation)}`;
}

export function dropTables(projection: Projection, generation: number, mode: ProjectionMode): string {
  return projection.tables
    .map((t) => `DROP TABLE IF EXISTS ${physicalName(t.name, generation, mode)}`)
    .join(';\n');
}

export function createTables(
  projection: Projection,
  dialect: SqlDialect,
  generation: number,
  mode: ProjectionMode,
): string {
  return projection.tables
    .map((t) => t.create(dialect, physicalName(t.name, generation, mode), generationSuffix(generation)))
    .join(';\n');
}
