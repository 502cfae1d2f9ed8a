import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { migrate, type SqlClient } from '@muster/event-store';
import { openPostgresEventStore } from '@muster/event-store-postgres';
import { openSqliteEventStore } from '@muster/event-store-sqlite';
import { afterEach, describe, expect, it } from 'vitest';
import { appendChanges, changeFeedMigrations, type ReadinessChange, readChangeFeed } from './change-feed.js';
import { createPostgresDatabase, postgresSkipReason } from './test-support/postgres.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const draft = (n: number, position: string): Omit<ReadinessChange, 'seq'> => ({
  changeId: `change-${n}`,
  missionId: n % 2 === 0 ? 'mission-a' : 'mission-b',
  kind: 'pledge.changed',
  subject: `pledge-${n}`,
  payload: { pledgeId: `pledge-${n}`, n },
  causeEventId: `event-${n}`,
  causeRevision: n,
  causeHash: n.toString(16).padStart(64, '0'),
  causePosition: position,
  occurredAt: 1_700_000_000_000 + n,
  recordedAt: 1_700_000_000_000 + n,
});

const pos = (n: number) => String(n).padStart(20, '0');

async function sqlite(): Promise<SqlClient> {
  const dir = mkdtempSync(join(tmpdir(), 'muster-change-feed-'));
  const store = await openSqliteEventStore({ path: join(dir, 'feed.db') });
  cleanups.push(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return store.sql;
}

async function postgres(): Promise<SqlClient> {
  const { url, drop } = await createPostgresDatabase('feed');
  const store = await openPostgresEventStore({ connectionString: url });
  cleanups.push(async () => {
    await store.close();
    await drop();
  });
  return store.sql;
}

const [first] = changeFeedMigrations;

const cases: Array<[string, () => Promise<SqlClient>, string | null]> = [
  ['SQLite', sqlite, null],
  ['PostgreSQL', postgres, postgresSkipReason],
];

for (const [name, open, skip] of cases) {
  describe.skipIf(skip !== null)(`the change feed on ${name}${skip ? ` (${skip})` : ''}`, () => {
    it('keeps every change, its number and its payload through the move of its unique key', async () => {
      const sql = await open();
      await migrate(sql, [first as (typeof changeFeedMigrations)[number]]);
      // Rows as the first version wrote them: no cause revision or hash.
      const old = [draft(1, pos(10)), draft(2, pos(11)), draft(3, pos(11))].map((d, i) => ({
        ...d,
        seq: i + 1,
        causeRevision: null,
        causeHash: null,
      }));
      for (const c of old) {
        await sql.execute(
          'INSERT INTO readiness_changes (seq, change_id, mission_id, kind, subject, payload, cause_event_id, cause_position, occurred_at, recorded_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)',
          [
            c.seq,
            c.changeId,
            c.missionId,
            c.kind,
            c.subject,
            JSON.stringify(c.payload),
            c.causeEventId,
            c.causePosition,
            c.occurredAt,
            c.recordedAt,
          ],
        );
      }
      await migrate(sql, changeFeedMigrations);
      expect(await readChangeFeed(sql, 0)).toEqual(old);
      // Numbering goes on after the rows that moved; a new row keeps its cause's revision and hash.
      const after = await sql.transaction((tx) => appendChanges(tx, [draft(4, pos(12))]));
      expect(after.map((c) => c.seq)).toEqual([4]);
      expect((await readChangeFeed(sql, 3))[0]).toEqual({ ...draft(4, pos(12)), seq: 4 });
      expect((await readChangeFeed(sql, 0)).map((c) => c.changeId)).toEqual([
        'change-1',
        'change-2',
        'change-3',
        'change-4',
      ]);
    });

    it('refuses the same change twice, and writes nothing of the batch that tried', async () => {
      const sql = await open();
      await migrate(sql, changeFeedMigrations);
      await sql.transaction((tx) => appendChanges(tx, [draft(1, pos(10))]));
      await expect(
        sql.transaction((tx) => appendChanges(tx, [draft(2, pos(11)), draft(1, pos(10))])),
      ).rejects.toThrow();
      expect((await readChangeFeed(sql, 0)).map((c) => c.changeId)).toEqual(['change-1']);
      await sql.transaction((tx) => appendChanges(tx, [draft(2, pos(11))]));
      expect((await readChangeFeed(sql, 0)).map((c) => c.seq)).toEqual([1, 2]);
    });
  });
}
