import type { SqlClient } from '@muster/event-store';

const ROWS_PER_STATEMENT = 200;

/**
 * Inserts rows with multi-row VALUES lists: one round trip per 200 rows on PostgreSQL, one
 * prepared statement per list length on SQLite. `onConflict` is appended as is (an upsert clause).
 */
export async function insertRows(
  tx: SqlClient,
  table: string,
  columns: readonly string[],
  rows: readonly (readonly unknown[])[],
  onConflict = '',
): Promise<void> {
  for (let start = 0; start < rows.length; start += ROWS_PER_STATEMENT) {
    const chunk = rows.slice(start, start + ROWS_PER_STATEMENT);
    const params: unknown[] = [];
    const tuples = chunk.map((row) => {
      const placeholders = row.map((value) => {
        params.push(value);
        return `$${params.length}`;
      });
      return `(${placeholders.join(', ')})`;
    });
    await tx.execute(
      `INSERT INTO ${table} (${columns.join(', ')}) VALUES ${tuples.join(', ')}${onConflict ? ` ${onConflict}` : ''}`,
      params,
    );
  }
}

/** `ON CONFLICT (key) DO UPDATE SET c = excluded.c, ...` for every column but the key. */
export function upsertClause(key: readonly string[], columns: readonly string[]): string {
  const set = columns.filter((c) => !key.includes(c)).map((c) => `${c} = excluded.${c}`);
  return `ON CONFLICT (${key.join(', ')}) DO UPDATE SET ${set.join(', ')}`;
}

export const num = (value: unknown): number | null =>
  value === null || value === undefined ? null : Number(value);
