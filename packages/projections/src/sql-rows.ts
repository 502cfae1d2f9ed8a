import type { SqlClient } from '@muster/event-store';

const ROWS_PER_STATEMENT = 200;

/**
 * How many of `left` rows the next statement takes: `max` (200) while there are that many, then the
 * largest power of two that fits. Each distinct list length is a statement SQLite prepares and
 * keeps (a 200-row upsert weighs about a quarter of a megabyte of native memory), so lengths
 * from a small set keep that cache at a few megabytes instead of hundreds; at most eight more
 * statements per call.
 */
export function chunkLength(left: number, max = ROWS_PER_STATEMENT): number {
  if (left >= max) return max;
  let length = 1;
  while (length * 2 <= left) length *= 2;
  return length;
}

/**
 * Inserts rows with multi-row VALUES lists: one round trip per 200 rows on PostgreSQL (a few
 * more for the remainder), one prepared statement per list length on SQLite. `onConflict` is
 * appended as is (an upsert clause).
 */
export async function insertRows(
  tx: SqlClient,
  table: string,
  columns: readonly string[],
  rows: readonly (readonly unknown[])[],
  onConflict = '',
): Promise<void> {
  for (let start = 0; start < rows.length; ) {
    const length = chunkLength(rows.length - start);
    const chunk = rows.slice(start, start + length);
    start += length;
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
