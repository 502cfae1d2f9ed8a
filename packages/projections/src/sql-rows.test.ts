import type { SqlClient } from '@muster/event-store';
import { describe, expect, it } from 'vitest';
import { chunkLength, insertRows } from './sql-rows.js';

describe('insertRows', () => {
  it('splits rows into 200s, then powers of two, so that statements come in few shapes', () => {
    expect([1, 2, 3, 7, 199, 200, 201, 1000].map((n) => chunkLength(n))).toEqual([
      1, 2, 2, 4, 128, 200, 200, 200,
    ]);
    expect(chunkLength(150, 100)).toBe(100);
  });

  it('writes every row once, in order, with statements of at most nine lengths', async () => {
    const texts = new Set<string>();
    const written: unknown[] = [];
    const tx = {
      execute: async (text: string, params: unknown[]) => {
        texts.add(text);
        written.push(...params);
        return 0;
      },
    } as unknown as SqlClient;
    for (let n = 1; n <= 450; n++) {
      written.length = 0;
      const rows = Array.from({ length: n }, (_, i) => [i, `r${i}`]);
      await insertRows(tx, 't', ['a', 'b'], rows);
      expect(written).toEqual(rows.flat());
    }
    expect(texts.size).toBeLessThanOrEqual(9);
  });
});
