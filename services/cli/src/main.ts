#!/usr/bin/env node
import { createReadStream, existsSync, statSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { backupSqliteFile } from '@muster/event-store-sqlite';
import {
  createReadinessProjection,
  type ExportVerification,
  isProjectionError,
  type ProjectionsHandle,
  readProjectionStatus,
  setHeapGrowthPercent,
  startProjections,
  verdictFromExport,
  verifyExport,
} from '@muster/projections';
import { ConfigError, loadConfig } from './config.js';
import { createProgress } from './progress.js';
import { openStores } from './stores.js';

const USAGE = `muster: audit and maintenance of a Muster deployment

Usage:
  muster audit verify <export.ndjson> [--until <instant>] [--json]
      Verifies a mission export offline: line form, revision order, hash chain, header counts,
      and recomputes the verdict history. Exit 0 when intact, 1 at the first problem.
  muster replay <export.ndjson> (--as-of <instant> | --known-at <instant>)
      Prints the mission's verdicts at that instant as JSON: --as-of from every event in the
      file (world time), --known-at from the events recorded by then (record time).
  muster projections rebuild <name>
      Rebuilds a projection from position zero into fresh tables and swaps them in, against the
      store configured by MUSTER_STORE, MUSTER_SQLITE_PATH, DATABASE_URL (as the service).
  muster projections status
      Prints every projection's position, lag, leader and rebuild as JSON, as the database
      records them. Reads only: it starts no projection and resumes no rebuild.
  muster backup <destination.db>
      Copies the embedded SQLite store (events, read models, keys, outbox) to a new file while the
      service keeps running, checks the copy and prints what it holds as JSON. SQLite only: on
      PostgreSQL use pg_dump; on EventStoreDB, its own backups.

Exit codes: 0 done, 1 tampered or failed, 2 wrong usage or configuration.
`;

/** Exit 2: the caller has to change the call or its configuration. */
class UsageError extends Error {}

/** Exit 2 too, but about the environment, not the command line: no usage text after it. */
class SetupError extends UsageError {}

function out(text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
}

function err(text: string): void {
  process.stderr.write(text.endsWith('\n') ? text : `${text}\n`);
}

/** The file's lines, newline included, with progress by bytes read. */
async function* fileLines(path: string, label: string): AsyncGenerator<string> {
  let size: number;
  try {
    size = statSync(path).size;
  } catch {
    throw new SetupError(`cannot read ${path}`);
  }
  const progress = createProgress(process.stderr, { label, unit: 'bytes' });
  let read = 0;
  let rest = '';
  const decoder = new TextDecoder('utf-8');
  for await (const chunk of createReadStream(path)) {
    read += (chunk as Buffer).length;
    rest += decoder.decode(chunk as Buffer, { stream: true });
    let at = rest.indexOf('\n');
    while (at >= 0) {
      yield rest.slice(0, at + 1);
      rest = rest.slice(at + 1);
      at = rest.indexOf('\n');
    }
    if (size > 8 * 1024 * 1024) progress.update(read, size);
  }
  rest += decoder.decode();
  if (rest.length > 0) yield rest;
  if (size > 8 * 1024 * 1024) progress.finish(read, size);
}

function describeProblem(result: ExportVerification): string {
  const p = result.problem;
  if (!p) return 'no problem';
  const where = [`line ${p.line}`];
  if (p.revision !== null) where.push(`revision ${p.revision}`);
  if (p.eventId !== null) where.push(`event ${p.eventId}`);
  return `${p.kind} at ${where.join(', ')}: ${p.detail}`;
}

async function auditVerify(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: { until: { type: 'string' }, json: { type: 'boolean', default: false } },
    allowPositionals: true,
    strict: true,
  });
  const [file, ...extra] = positionals;
  if (!file || extra.length > 0) throw new UsageError('audit verify takes one export file');
  const result = await verifyExport(fileLines(file, 'verify'), values.until ? { until: values.until } : {});
  if (values.json) out(JSON.stringify(result, null, 2));
  if (!result.ok) {
    err(`TAMPERED or damaged export ${file}: ${describeProblem(result)}`);
    return 1;
  }
  if (!values.json) {
    out(
      `intact: mission ${result.missionId}, ${result.events} events${result.header ? ' (as the header announces)' : ', no header'}, ` +
        `hash chain holds (last hash ${result.lastHash?.slice(0, 16) ?? 'none'}…), ` +
        `${result.history.length} verdict changes recomputed`,
    );
  }
  return 0;
}

async function replay(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: { 'as-of': { type: 'string' }, 'known-at': { type: 'string' } },
    allowPositionals: true,
    strict: true,
  });
  const [file, ...extra] = positionals;
  if (!file || extra.length > 0) throw new UsageError('replay takes one export file');
  const asOf = values['as-of'];
  const knownAt = values['known-at'];
  if ((asOf === undefined) === (knownAt === undefined))
    throw new UsageError('give exactly one of --as-of and --known-at');
  const query = asOf !== undefined ? { asOf } : { knownAt: knownAt as string };
  const { verification, verdict } = await verdictFromExport(fileLines(file, 'replay'), query);
  if (!verification.ok) {
    err(`TAMPERED or damaged export ${file}: ${describeProblem(verification)}`);
    return 1;
  }
  if (verdict === null) err(`mission ${verification.missionId} was not defined by then`);
  out(JSON.stringify(verdict, null, 2));
  return 0;
}

/** Events in the log up to a position, where positions count them (SQLite, PostgreSQL). */
function sequenceOf(position: string | null): number | null {
  if (position === null) return null;
  if (/^\d{1,20}$/.test(position)) return Number(position);
  const match = /^\d{20}-(\d{20})$/.exec(position);
  return match ? Number(match[1]) : null;
}

/** The environment's configuration; a problem with it is the caller's to fix (exit 2). */
function configuration(): ReturnType<typeof loadConfig> {
  try {
    return loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) throw new SetupError(error.message);
    throw error;
  }
}

async function withRunner<T>(fn: (runner: ProjectionsHandle) => Promise<T>): Promise<T> {
  const config = configuration();
  setHeapGrowthPercent(config.heapGrowthPercent);
  const stores = await openStores(config);
  const logger = {
    info: () => {},
    warn: (object: Record<string, unknown>, message?: string) =>
      err(`warning: ${message ?? ''} ${JSON.stringify(object)}`),
    error: (object: Record<string, unknown>, message?: string) =>
      err(`error: ${message ?? ''} ${(object.err as Error | undefined)?.message ?? ''}`),
  };
  const runner = await startProjections({
    store: stores.store,
    sql: stores.sql,
    projections: [createReadinessProjection({ store: stores.store })],
    logger,
  });
  const interrupt = () => {
    err('interrupted: stopping; a rebuild resumes where it stopped when next started');
    void runner.close().finally(() => process.exit(130));
  };
  process.once('SIGINT', interrupt);
  try {
    return await fn(runner);
  } finally {
    process.off('SIGINT', interrupt);
    await runner.close();
    await stores.close();
  }
}

async function projections(args: string[]): Promise<number> {
  const [action, name, ...extra] = args;
  if (action === 'status' && name === undefined) {
    // Read-only: starting a runner here would create tables, and with no service running would
    // take the lease, project, and resume an interrupted rebuild, all to print a status.
    const stores = await openStores(configuration());
    try {
      const status = await readProjectionStatus({
        store: stores.store,
        sql: stores.sql,
        projections: [createReadinessProjection({ store: stores.store })],
      });
      out(JSON.stringify(status, null, 2));
      return 0;
    } finally {
      await stores.close();
    }
  }
  if (action !== 'rebuild' || !name || extra.length > 0)
    throw new UsageError('projections rebuild <name> | projections status');
  return withRunner(async (runner) => {
    const progress = createProgress(process.stderr, { label: `rebuild ${name}`, unit: 'events' });
    let total: number | null = null;
    let done = 0;
    const result = await runner.rebuild(name, {
      onProgress: (p) => {
        total ??= sequenceOf(p.headPosition);
        const at = sequenceOf(p.position);
        done = at ?? p.events;
        if (p.phase === 'building') progress.update(done, total);
      },
    });
    progress.finish(total ?? done, total);
    out(JSON.stringify(result, null, 2));
    return 0;
  });
}

function backup(args: string[]): number {
  const [destination, ...extra] = args;
  if (!destination || extra.length > 0) throw new UsageError('backup <destination.db>');
  const config = configuration();
  if (config.store !== 'sqlite') {
    throw new SetupError(
      `backup copies the embedded SQLite store; MUSTER_STORE is ${config.store} (${
        config.store === 'postgres' ? 'use pg_dump' : "use EventStoreDB's own backups"
      })`,
    );
  }
  if (existsSync(destination))
    throw new SetupError(`${destination} exists; a backup never writes over a file`);
  const copy = backupSqliteFile(config.sqlitePath, destination);
  out(JSON.stringify({ source: config.sqlitePath, ...copy }, null, 2));
  if (copy.check !== 'ok') {
    err(`the copy failed SQLite's check: ${copy.check}`);
    return 1;
  }
  return 0;
}

export async function main(argv: string[]): Promise<number> {
  const [command, sub, ...rest] = argv;
  try {
    if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
      out(USAGE);
      return command === undefined ? 2 : 0;
    }
    if (command === 'audit' && sub === 'verify') return await auditVerify(rest);
    if (command === 'replay') return await replay(sub === undefined ? rest : [sub, ...rest]);
    if (command === 'projections') return await projections(sub === undefined ? rest : [sub, ...rest]);
    if (command === 'backup') return backup(sub === undefined ? rest : [sub, ...rest]);
    throw new UsageError(`unknown command: ${argv.join(' ')}`);
  } catch (error) {
    if (
      error instanceof UsageError ||
      (error as { code?: string }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION'
    ) {
      err(error instanceof SetupError ? (error as Error).message : `${(error as Error).message}\n\n${USAGE}`);
      return 2;
    }
    if (isProjectionError(error)) {
      err(`${error.code}: ${error.message}`);
      return error.status === 400 ? 2 : 1;
    }
    err(`failed: ${(error as Error).message}`);
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
