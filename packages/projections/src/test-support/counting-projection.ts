import type { RecordedEvent, SqlClient } from '@muster/event-store';
import type { Projection, ProjectionContext } from '../projection.js';

/**
 * A projection that writes one row per event, keyed by event id: a second write of the same
 * event fails the batch, so "exactly once" is checked by the database itself.
 */
export interface CountingOptions {
  name?: string;
  owner?: string;
  /** Called inside the transaction, after the rows are written and before the checkpoint moves. */
  inside?: (events: readonly RecordedEvent[], tx: SqlClient) => Promise<void> | void;
  /** Called after each commit by the runner (as seen from the projection: after handle returned). */
  handled?: (events: readonly RecordedEvent[]) => void;
  filter?: Projection['filter'];
}

export function countingProjection(options: CountingOptions = {}): Projection {
  const name = options.name ?? 'counting';
  const table = `${name}_rows`;
  return {
    name,
    version: 1,
    ...(options.filter ? { filter: options.filter } : {}),
    tables: [
      {
        name: table,
        create: (_dialect, physical) =>
          `CREATE TABLE IF NOT EXISTS ${physical} (event_id TEXT PRIMARY KEY, stream TEXT NOT NULL, position TEXT NOT NULL, owner TEXT NOT NULL)`,
      },
    ],
    async handle(events: readonly RecordedEvent[], tx: SqlClient, ctx: ProjectionContext) {
      for (const event of events) {
        await tx.execute(
          `INSERT INTO ${ctx.table(table)} (event_id, stream, position, owner) VALUES ($1, $2, $3, $4)`,
          [event.id, event.stream, event.position, options.owner ?? 'test'],
        );
      }
      await options.inside?.(events, tx);
      options.handled?.(events);
    },
  };
}
