import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, rmSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { mapSqliteError } from './connection.js';

export interface SqliteBackup {
  /** The copy's path. */
  path: string;
  bytes: number;
  /** Events in the copy, and the last one's position (null for an empty log). */
  events: number;
  headPosition: number | null;
  /** `PRAGMA quick_check` on the copy: `ok`, or what SQLite found. */
  check: string;
}

/**
 * A consistent copy of a Muster SQLite file (events, read models, keys, outbox), taken while the
 * service keeps writing: `VACUUM INTO` reads one snapshot of the database in a read transaction,
 * which in WAL mode does not hold writers up, and writes it compacted to `destination`. The copy
 * is checked (`quick_check`) and its events counted before this returns. `destination` must not
 * exist (SQLite refuses to write over a file); its directory is made if missing. Runs
 * synchronously in the calling thread (the CLI's own process, not the service's).
 */
export function backupSqliteFile(source: string, destination: string): SqliteBackup {
  if (!existsSync(source)) throw new Error(`No SQLite file at ${source}`);
  if (existsSync(destination)) throw new Error(`${destination} exists; a backup never writes over a file`);
  mkdirSync(dirname(destination), { recursive: true });
  let db: Database.Database | null = null;
  try {
    db = new Database(source, { readonly: true, fileMustExist: true });
    db.pragma('busy_timeout = 5000');
    db.prepare('VACUUM INTO ?').run(destination);
    // VACUUM INTO does not sync the copy: a power cut just after "check: ok" could lose it.
    const fd = openSync(destination, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch (error) {
    // A copy that failed half-way (a full disk) is not a backup, and would block the retry.
    rmSync(destination, { force: true });
    throw mapSqliteError(error);
  } finally {
    db?.close();
  }
  const copy = new Database(destination, { readonly: true, fileMustExist: true });
  try {
    const check = String(copy.pragma('quick_check', { simple: true }));
    const hasEvents = copy
      .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'events'")
      .get();
    const row = hasEvents
      ? (copy.prepare('SELECT COUNT(*) AS n, MAX(position) AS head FROM events').get() as {
          n: number;
          head: number | null;
        })
      : { n: 0, head: null };
    return {
      path: destination,
      bytes: statSync(destination).size,
      events: row.n,
      headPosition: row.head,
      check,
    };
  } finally {
    copy.close();
  }
}
