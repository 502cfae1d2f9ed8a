import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SqlClient } from '@muster/event-store';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openSqliteEventStore, openSqliteSql, type SqliteEventStore } from './index.js';

describe('a read snapshot on SQLite', () => {
  const dir = mkdtempSync(join(tmpdir(), 'muster-sqlite-sql-'));
  const path = join(dir, 'muster.db');
  let store: SqliteEventStore;
  let other: SqlClient & { close(): Promise<void> };
  const n = async (sql: SqlClient) =>
    Number((await sql.query("SELECT n FROM read_model WHERE id = 'snap'"))[0]?.n);

  beforeAll(async () => {
    store = await openSqliteEventStore({ path });
    // A second connection to the same file, as another process would have.
    other = openSqliteSql(path);
    await store.sql.script('CREATE TABLE read_model (id TEXT PRIMARY KEY, n INTEGER NOT NULL)');
    await store.sql.execute("INSERT INTO read_model (id, n) VALUES ('snap', 1)");
  });
  afterAll(async () => {
    await other?.close();
    await store?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('reads one committed state, whatever another connection commits meanwhile', async () => {
    const seen = await store.sql.readSnapshot(async (tx) => {
      const before = await n(tx);
      await other.execute("UPDATE read_model SET n = 2 WHERE id = 'snap'");
      await other.execute("INSERT INTO read_model (id, n) VALUES ('later', 1)");
      const after = await n(tx);
      const rows = await tx.query('SELECT id FROM read_model');
      return { before, after, rows: rows.length };
    });
    expect(seen).toEqual({ before: 1, after: 1, rows: 1 });
    expect(await n(store.sql)).toBe(2);
  });

  it("holds this process's writes on the connection until it ends", async () => {
    let write: Promise<number> | null = null;
    const seen = await store.sql.readSnapshot(async (tx) => {
      write = store.sql.execute("UPDATE read_model SET n = 3 WHERE id = 'snap'");
      await new Promise((r) => setTimeout(r, 20));
      return n(tx);
    });
    expect(seen).toBe(2);
    expect(await write).toBe(1);
    expect(await n(store.sql)).toBe(3);
  });

  it('refuses writes, and inside a transaction is that transaction', async () => {
    await expect(
      store.sql.readSnapshot((tx) => tx.execute("UPDATE read_model SET n = 4 WHERE id = 'snap'")),
    ).rejects.toThrow(/cannot write/);
    await expect(store.sql.readSnapshot((tx) => tx.script('DROP TABLE read_model'))).rejects.toThrow(
      /cannot run a script/,
    );
    const inside = await store.sql.transaction(async (tx) => {
      await tx.execute("UPDATE read_model SET n = 5 WHERE id = 'snap'");
      return tx.readSnapshot((inner) => n(inner));
    });
    expect(inside).toBe(5);
    // The connection is usable afterwards: nothing was left open.
    expect(await store.sql.execute("UPDATE read_model SET n = 6 WHERE id = 'snap'")).toBe(1);
    expect(await n(other)).toBe(6);
  });
});
