import { migrate, type SqlClient, StoreUnavailableError } from '@muster/event-store';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  openPostgresEventStore,
  openPostgresSql,
  type PostgresEventStore,
  type PostgresSqlClient,
} from './index.js';
import { createTestDatabase } from './test-support/database.js';
import { TcpProxy } from './test-support/tcp-proxy.js';

const database = await createTestDatabase('sql');

if (database.skip) {
  describe.skip(`postgres SQL port (skipped: ${database.skip})`, () => {
    it('needs DATABASE_URL', () => {});
  });
  process.stderr.write(`[postgres] SQL port tests skipped: ${database.skip}\n`);
} else {
  const url = database.url as string;

  describe('the SQL port on PostgreSQL', () => {
    let store: PostgresEventStore;
    let standalone: PostgresSqlClient;
    let sql: SqlClient;

    beforeAll(async () => {
      store = await openPostgresEventStore({ connectionString: url, poolSize: 4 });
      standalone = await openPostgresSql(url);
      sql = store.sql;
      await sql.script(`
        CREATE TABLE read_model (id TEXT PRIMARY KEY, n BIGINT NOT NULL, at BIGINT);
        CREATE TABLE checkpoint (name TEXT PRIMARY KEY, position TEXT NOT NULL);
      `);
    });
    afterAll(async () => {
      await standalone?.close();
      await store?.close();
      await database.drop?.();
    });

    it('queries with $n placeholders and returns BIGINT as numbers, as SQLite does', async () => {
      expect(sql.dialect).toBe('postgres');
      expect(
        await sql.execute('INSERT INTO read_model (id, n, at) VALUES ($1, $2, $3)', [
          'a',
          1,
          1_700_000_000_000,
        ]),
      ).toBe(1);
      const rows = await sql.query<{ id: string; n: number; at: number }>(
        'SELECT * FROM read_model WHERE id = $1',
        ['a'],
      );
      expect(rows).toEqual([{ id: 'a', n: 1, at: 1_700_000_000_000 }]);
      const [count] = await sql.query<{ c: number }>('SELECT count(*) AS c FROM read_model');
      expect(count?.c).toBe(1);
      expect(await sql.execute('UPDATE read_model SET n = n + 1 WHERE id = $1', ['missing'])).toBe(0);
    });

    it('commits a transaction and rolls it back when the callback throws', async () => {
      await sql.transaction(async (tx) => {
        await tx.execute('INSERT INTO read_model (id, n) VALUES ($1, $2)', ['t1', 1]);
        await tx.execute('INSERT INTO checkpoint (name, position) VALUES ($1, $2)', ['p', '1']);
      });
      await expect(
        sql.transaction(async (tx) => {
          await tx.execute('INSERT INTO read_model (id, n) VALUES ($1, $2)', ['t2', 1]);
          throw new Error('handler failed');
        }),
      ).rejects.toThrow('handler failed');
      const ids = await sql.query<{ id: string }>("SELECT id FROM read_model WHERE id LIKE 't%' ORDER BY id");
      expect(ids.map((r) => r.id)).toEqual(['t1']);
    });

    it('nests transactions as savepoints', async () => {
      await sql.transaction(async (tx) => {
        await tx.execute('INSERT INTO read_model (id, n) VALUES ($1, $2)', ['outer', 1]);
        await expect(
          tx.transaction(async (inner) => {
            await inner.execute('INSERT INTO read_model (id, n) VALUES ($1, $2)', ['inner', 1]);
            throw new Error('inner failed');
          }),
        ).rejects.toThrow('inner failed');
        await tx.transaction(async (inner) => {
          await inner.execute('INSERT INTO read_model (id, n) VALUES ($1, $2)', ['inner-ok', 1]);
        });
      });
      const ids = await sql.query<{ id: string }>(
        "SELECT id FROM read_model WHERE id IN ('outer', 'inner', 'inner-ok') ORDER BY id",
      );
      expect(ids.map((r) => r.id)).toEqual(['inner-ok', 'outer']);
    });

    it('a statement error swallowed inside a transaction does not pass for a commit', async () => {
      await expect(
        sql.transaction(async (tx) => {
          await tx.execute('INSERT INTO read_model (id, n) VALUES ($1, $2)', ['swallowed', 1]);
          await tx
            .execute('INSERT INTO read_model (id, n) VALUES ($1, $2)', ['swallowed', 1])
            .catch(() => {});
        }),
      ).rejects.toThrow(/rolled back/);
      expect(await sql.query("SELECT id FROM read_model WHERE id = 'swallowed'")).toEqual([]);
    });

    it('reads one committed state in a read snapshot, whatever another connection commits meanwhile', async () => {
      await sql.execute('INSERT INTO read_model (id, n) VALUES ($1, $2)', ['snap', 1]);
      const seen = await sql.readSnapshot(async (tx) => {
        const [before] = await tx.query<{ n: number }>("SELECT n FROM read_model WHERE id = 'snap'");
        // Committed on other connections of the pools after the view was taken.
        await standalone.execute("UPDATE read_model SET n = 2 WHERE id = 'snap'");
        await sql.execute("INSERT INTO checkpoint (name, position) VALUES ('snap', '2')");
        const [after] = await tx.query<{ n: number }>("SELECT n FROM read_model WHERE id = 'snap'");
        const checkpoints = await tx.query("SELECT position FROM checkpoint WHERE name = 'snap'");
        return { before: before?.n, after: after?.n, checkpoints: checkpoints.length };
      });
      expect(seen).toEqual({ before: 1, after: 1, checkpoints: 0 });
      const [now] = await sql.query<{ n: number }>("SELECT n FROM read_model WHERE id = 'snap'");
      expect(now?.n).toBe(2);
    });

    it('refuses writes in a read snapshot, and a read snapshot inside a read-write transaction', async () => {
      const refused = await sql
        .readSnapshot((tx) => tx.execute("UPDATE read_model SET n = 3 WHERE id = 'a'"))
        .catch((e) => e);
      // The server refused it (read_only_sql_transaction), and it is not taken for a standby.
      expect(refused.message).toMatch(/cannot write/);
      expect(refused.cause.code).toBe('25006');
      await expect(sql.transaction((tx) => tx.readSnapshot(async () => 1))).rejects.toThrow(
        /read-write transaction/,
      );
      // Nested in a read snapshot, it is that snapshot.
      const nested = await sql.readSnapshot((tx) =>
        tx.readSnapshot((inner) => inner.query("SELECT n FROM read_model WHERE id = 'a'")),
      );
      expect(nested).toHaveLength(1);
      // The connection went back to the pool in working order.
      expect(await sql.execute("UPDATE read_model SET n = n WHERE id = 'a'")).toBe(1);
    });

    it('a read snapshot whose client vanishes between statements does not hold its tables for long: a swap of them goes ahead', async () => {
      // The audit's read snapshot holds a share lock on each read-model table it read until it
      // ends. If its client goes away without a word (its host lost, a partition), the server would
      // keep the session idle in the transaction until TCP keepalive told it, hours later; a
      // rebuild's swap (DROP, RENAME: an exclusive lock) would wait as long, and every statement
      // on those tables would queue behind the swap.
      const target = new URL(url);
      const proxy = new TcpProxy(target.hostname, Number(target.port || 5432));
      await proxy.start();
      const behind = await openPostgresSql(proxy.url(url), {
        poolSize: 1,
        queryTimeoutMs: 500,
        connectTimeoutMs: 500,
      });
      try {
        const lost = await behind
          .readSnapshot(async (tx) => {
            await tx.query('SELECT count(*) AS c FROM read_model');
            proxy.freeze();
            return tx.query('SELECT count(*) AS c FROM checkpoint');
          })
          .catch((e) => e);
        expect(lost).toBeInstanceOf(StoreUnavailableError);
        const swapped = await standalone
          .transaction(async (tx) => {
            await tx.execute("SET LOCAL lock_timeout = '5s'");
            await tx.execute('LOCK TABLE read_model IN ACCESS EXCLUSIVE MODE');
            return 'swapped';
          })
          .catch((e) => e);
        expect(swapped).toBe('swapped');
      } finally {
        await proxy.stop();
        await behind.close();
      }
    });

    it('passes constraint errors through for the caller to handle', async () => {
      const error = await sql
        .execute('INSERT INTO read_model (id, n) VALUES ($1, $2)', ['a', 1])
        .catch((e) => e);
      expect(error.code).toBe('23505');
    });

    it('runs the port migrations, once', async () => {
      const migrations = [
        { id: 'test:001', sqlite: '', postgres: 'CREATE TABLE migrated_one (id TEXT PRIMARY KEY)' },
        { id: 'test:002', sqlite: '', postgres: 'ALTER TABLE migrated_one ADD COLUMN note TEXT' },
      ];
      await migrate(standalone, migrations);
      await migrate(sql, migrations);
      const rows = await standalone.query<{ id: string }>(
        "SELECT id FROM muster_migrations WHERE id LIKE 'test:%'",
      );
      expect(rows.map((r) => r.id).sort()).toEqual(['test:001', 'test:002']);
    });

    it('read models commit in the same database as the events', async () => {
      const r = await store.appendToStream('sql-port-stream', [{ type: 'Counted', data: { n: 1 } }]);
      await sql.transaction(async (tx) => {
        await tx.execute('INSERT INTO checkpoint (name, position) VALUES ($1, $2)', [
          'projection',
          r.position,
        ]);
      });
      const [row] = await standalone.query<{ position: string }>(
        'SELECT position FROM checkpoint WHERE name = $1',
        ['projection'],
      );
      expect(row?.position).toBe(r.position);
    });
  });
}
