#!/usr/bin/env node
import { createReadStream, existsSync, statSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { backupSqliteFile } from '@muster/event-store-sqlite';
import {
  createReadinessProjection,
  type ExportVerification,
  isProjectionError,
  READINESS_PROJECTION,
  type RebuildProgress,
  type RebuildResult,
  readProjectionStatus,
  setHeapGrowthPercent,
  startProjections,
  verdictFromExport,
  verifyExport,
} from '@muster/projections';
import { type ExpectedHead, exportAnchors, HashList, parseExpectedHead } from './anchors.js';
import { ConfigError, loadConfig } from './config.js';
import { createProgress } from './progress.js';
import { MissingSqliteFileError, type OpenedStores, openStores, requireSqliteFile } from './stores.js';

const AUDIT_VERIFY_USAGE = `Usage: muster audit verify <export.ndjson> [--until <instant>] [--against <earlier.ndjson>]
                           [--expect-head <revision>:<hash>]... [--json]
  Verifies a mission export offline, every byte of it: UTF-8, line form, the header, positions,
  revision order, hash chain and header counts, and recomputes the verdict history. Events of a
  type or version this muster cannot read fail it too. Exit 0 when intact, 1 at the first problem.
  --until <instant>        also record the changes time alone causes up to this instant
  --against <file>         an earlier export of the same mission, which must be a prefix of this
                           one, event for event and hash for hash
  --expect-head <r>:<hash> the event at revision r must have this SHA-256 hash, known from
                           elsewhere (a receipt this command printed, the events API); repeatable
  --json                   print the whole verification as JSON
`;

const REPLAY_USAGE = `Usage: muster replay <export.ndjson> (--as-of <instant> | --known-at <instant>)
  Verifies the export, then prints the mission's verdicts at that instant as JSON: --as-of from
  every event in the file (world time), --known-at from the events recorded by then (record time).
`;

const REBUILD_USAGE = `Usage: muster projections rebuild <name>
  Rebuilds a projection from position zero into fresh tables and swaps them in, against the store
  configured by MUSTER_STORE, MUSTER_SQLITE_PATH, DATABASE_URL (as the service). An interrupted
  rebuild is resumed where it stopped. Projections: ${READINESS_PROJECTION}.
`;

const STATUS_USAGE = `Usage: muster projections status
  Prints every projection's position, lag, leader and rebuild as JSON, as the database records
  them. Reads only: it starts no projection and resumes no rebuild.
`;

const BACKUP_USAGE = `Usage: muster backup <destination.db>
  Copies the embedded SQLite store (events, read models, keys, outbox) to a new file while the
  service keeps running, checks the copy and prints what it holds as JSON. SQLite only: on
  PostgreSQL use pg_dump; on EventStoreDB, its own backups.
`;

const EXIT_CODES = `Exit codes: 0 done, 1 tampered or failed, 2 wrong usage or configuration, 130 interrupted.
Every command takes --help.
`;

const USAGE = `muster: audit and maintenance of a Muster deployment

${[AUDIT_VERIFY_USAGE, REPLAY_USAGE, REBUILD_USAGE, STATUS_USAGE, BACKUP_USAGE].join('\n')}
${EXIT_CODES}`;

const PROJECTIONS_USAGE = `${REBUILD_USAGE}\n${STATUS_USAGE}`;

const PROJECTION_NAMES: readonly string[] = [READINESS_PROJECTION];

/** Exit 2 with the usage text of the command: the caller has to change the call. */
class UsageError extends Error {
  constructor(
    message: string,
    readonly usage: string = USAGE,
  ) {
    super(message);
  }
}

/** Exit 2 too, but about the environment (a file, the configuration): no usage text after it. */
class SetupError extends Error {}

function out(text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
}

function err(text: string): void {
  process.stderr.write(text.endsWith('\n') ? text : `${text}\n`);
}

/** parseArgs, with its complaints (unknown option, missing value) turned into usage errors. */
function parse<O extends NonNullable<Parameters<typeof parseArgs>[0]>['options']>(
  args: string[],
  options: O,
  usage: string,
) {
  try {
    return parseArgs({ args, options: options as NonNullable<O>, allowPositionals: true, strict: true });
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code?.startsWith('ERR_PARSE_ARGS_')) throw new UsageError((error as Error).message, usage);
    throw error;
  }
}

/** The usage text `--help` answers with, for the command the arguments name. */
function helpFor(argv: readonly string[]): string {
  const [command, sub] = argv;
  if (command === 'audit') return AUDIT_VERIFY_USAGE;
  if (command === 'replay') return REPLAY_USAGE;
  if (command === 'backup') return BACKUP_USAGE;
  if (command === 'projections') {
    if (sub === 'rebuild') return REBUILD_USAGE;
    if (sub === 'status') return STATUS_USAGE;
    return PROJECTIONS_USAGE;
  }
  return USAGE;
}

/** A file's bytes, chunk by chunk as read, with progress by bytes for large files. */
async function* fileChunks(path: string, label: string): AsyncGenerator<Uint8Array> {
  let size: number;
  try {
    const stat = statSync(path);
    if (stat.isDirectory()) throw new SetupError(`${path} is a directory, not an export file`);
    size = stat.size;
  } catch (error) {
    if (error instanceof SetupError) throw error;
    const code = (error as { code?: string }).code;
    throw new SetupError(`cannot read ${path}${code === 'ENOENT' ? ': no such file' : ` (${code})`}`);
  }
  const large = size > 8 * 1024 * 1024;
  const progress = createProgress(process.stderr, { label, unit: 'bytes' });
  let read = 0;
  for await (const chunk of createReadStream(path)) {
    read += (chunk as Buffer).length;
    yield chunk as Buffer;
    if (large) progress.update(read, size);
  }
  if (large) progress.finish(read, size);
}

function describeProblem(result: ExportVerification): string {
  const p = result.problem;
  if (!p) return 'no problem';
  const where = [`line ${p.line}`];
  if (p.revision !== null) where.push(`revision ${p.revision}`);
  if (p.eventId !== null) where.push(`event ${p.eventId}`);
  return `${p.kind} at ${where.join(', ')}: ${p.detail}`;
}

/** Null when the export was read whole; otherwise what to print about the events it could not read. */
function describeUnreadable(file: string, result: ExportVerification): string | null {
  if (result.unreadableCount === 0) return null;
  const shown = result.unreadable
    .slice(0, 10)
    .map(
      (u) =>
        `  unreadable-event at line ${u.line}, revision ${u.revision}, event ${u.eventId} (type ${u.type}): ${u.detail}`,
    );
  const more = result.unreadableCount - shown.length;
  return [
    `export ${file} cannot be verified whole: its chain holds, but ${result.unreadableCount} event(s) are of a type or version this muster cannot read, so the verdicts recomputed without them may be wrong`,
    ...shown,
    ...(more > 0 ? [`  and ${more} more`] : []),
  ].join('\n');
}

/** Verifies an earlier export and keeps its hashes, to anchor a later one on. */
async function earlierExport(
  file: string,
): Promise<{ source: string; stream: string; hashes: HashList } | { problem: string }> {
  const hashes = new HashList();
  const result = await verifyExport(fileChunks(file, 'verify (earlier)'), {
    onEvent: (event) => hashes.push(event.hash),
  });
  if (result.problem || result.stream === null)
    return { problem: `the earlier export ${file} does not verify: ${describeProblem(result)}` };
  return { source: file, stream: result.stream, hashes };
}

async function auditVerify(args: string[]): Promise<number> {
  const { values, positionals } = parse(
    args,
    {
      until: { type: 'string' },
      json: { type: 'boolean', default: false },
      against: { type: 'string' },
      'expect-head': { type: 'string', multiple: true },
    },
    AUDIT_VERIFY_USAGE,
  );
  const [file, ...extra] = positionals;
  if (!file || extra.length > 0)
    throw new UsageError('audit verify takes one export file', AUDIT_VERIFY_USAGE);
  const heads: ExpectedHead[] = [];
  for (const text of values['expect-head'] ?? []) {
    const head = parseExpectedHead(text);
    if (!head)
      throw new UsageError(
        `--expect-head takes <revision>:<SHA-256 hash in hex>, e.g. 28:${'0'.repeat(64)}; got '${text}'`,
        AUDIT_VERIFY_USAGE,
      );
    heads.push(head);
  }
  let earlier: Awaited<ReturnType<typeof earlierExport>> | null = null;
  if (values.against !== undefined) {
    earlier = await earlierExport(values.against);
    if ('problem' in earlier) {
      err(earlier.problem);
      return 1;
    }
  }
  const anchors = exportAnchors(earlier, heads);
  const result = await verifyExport(fileChunks(file, 'verify'), {
    ...(values.until ? { until: values.until } : {}),
    ...(anchors ? { anchors } : {}),
  });
  if (values.json) {
    const anchored = {
      against: earlier ? { file: earlier.source, events: earlier.hashes.length } : null,
      expectHeads: heads,
    };
    // Instants as the API gives them (ISO 8601), not the epoch milliseconds held in memory.
    const history = result.history.map((entry) => ({
      ...entry,
      occurredAt: new Date(entry.occurredAt).toISOString(),
      recordedAt: new Date(entry.recordedAt).toISOString(),
      evaluatedAt: new Date(entry.evaluatedAt).toISOString(),
    }));
    out(JSON.stringify({ ...result, history, anchors: anchored }, null, 2));
  }
  if (result.problem) {
    err(`TAMPERED or damaged export ${file}: ${describeProblem(result)}`);
    return 1;
  }
  const unreadable = describeUnreadable(file, result);
  if (unreadable) {
    err(unreadable);
    return 1;
  }
  if (!values.json) {
    const lastRevision = result.events - 1;
    const checks = [
      ...(earlier ? [`extends ${earlier.source} (its ${earlier.hashes.length} events unchanged)`] : []),
      ...heads.map((h) => `revision ${h.revision} has the expected hash`),
    ];
    out(
      `intact: mission ${result.missionId}, ${result.events} events (as the header announces), ` +
        `hash chain holds up to revision ${lastRevision} with hash ${result.lastHash}, ` +
        `${result.history.length} verdict changes recomputed` +
        (checks.length > 0 ? `; ${checks.join('; ')}` : ''),
    );
  }
  return 0;
}

async function replay(args: string[]): Promise<number> {
  const { values, positionals } = parse(
    args,
    { 'as-of': { type: 'string' }, 'known-at': { type: 'string' } },
    REPLAY_USAGE,
  );
  const [file, ...extra] = positionals;
  if (!file || extra.length > 0) throw new UsageError('replay takes one export file', REPLAY_USAGE);
  const asOf = values['as-of'];
  const knownAt = values['known-at'];
  if ((asOf === undefined) === (knownAt === undefined))
    throw new UsageError('give exactly one of --as-of and --known-at', REPLAY_USAGE);
  const query = asOf !== undefined ? { asOf } : { knownAt: knownAt as string };
  const { verification, verdict } = await verdictFromExport(fileChunks(file, 'replay'), query);
  if (verification.problem) {
    err(`TAMPERED or damaged export ${file}: ${describeProblem(verification)}`);
    return 1;
  }
  const unreadable = describeUnreadable(file, verification);
  if (unreadable) {
    err(unreadable);
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

async function projectionStatus(): Promise<number> {
  const stores = await openStores(configuration());
  try {
    // Read-only: starting a runner here would create tables, and with no service running would
    // take the lease, project, and resume an interrupted rebuild, all to print a status.
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

async function generationOf(stores: OpenedStores, name: string): Promise<number | null> {
  const status = await readProjectionStatus({
    store: stores.store,
    sql: stores.sql,
    projections: [createReadinessProjection({ store: stores.store })],
  });
  return status.find((s) => s.name === name)?.generation ?? null;
}

interface RebuildRun {
  /** The unfinished shadow this run resumed: its generation, events and log position then. */
  resumed: { generation: number; events: number; at: number } | null;
  /** The generation being built and its events so far, from the runner's progress reports. */
  built: { generation: number; events: number } | null;
  /** Log positions to go when this run started, where positions count events. */
  total: number | null;
  done: number;
}

async function rebuild(name: string): Promise<number> {
  const config = configuration();
  setHeapGrowthPercent(config.heapGrowthPercent);
  const stores = await openStores(config);
  try {
    // Read before the runner starts: once running, it may take an interrupted rebuild up on its
    // own, and this process's call would join that one.
    const recorded =
      (
        await readProjectionStatus({
          store: stores.store,
          sql: stores.sql,
          projections: [createReadinessProjection({ store: stores.store })],
        })
      ).find((s) => s.name === name)?.rebuild ?? null;
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
    let closing: Promise<void> | null = null;
    const close = () => {
      closing ??= runner.close();
      return closing;
    };
    let interrupted = false;
    let finished = false;
    const interrupt = () => {
      if (finished) return;
      if (interrupted) {
        err('interrupted again: exiting without waiting for the runner to stop');
        process.exit(130);
      }
      interrupted = true;
      err('interrupted: stopping; a rebuild resumes where it stopped when next started');
      void close();
    };
    process.on('SIGINT', interrupt);
    try {
      const progress = createProgress(process.stderr, { label: `rebuild ${name}`, unit: 'events' });
      const run: RebuildRun = { resumed: null, built: null, total: null, done: 0 };
      let outcome: RebuildResult | null = null;
      try {
        outcome = await runner.rebuild(name, {
          onProgress: (p) => reportProgress(run, recorded, name, p, progress),
        });
      } catch (error) {
        if (!interrupted) throw error;
      }
      await close();
      const generation =
        outcome?.generation ??
        run.built?.generation ??
        (recorded?.status === 'ready' ? recorded.generation : null);
      // An interrupt can land after the swap has committed (before the runner noticed it, or while
      // it closed): what the database records, not the interrupt, says whether the rebuild is done.
      const swapped =
        outcome !== null || (generation !== null && ((await generationOf(stores, name)) ?? -1) >= generation);
      finished = swapped;
      if (!swapped) return 130;
      progress.finish(run.total ?? run.done, run.total);
      const events = outcome?.events ?? run.built?.events ?? 0;
      // A shadow already built when this run started is swapped in without a progress report.
      const eventsBefore =
        run.resumed?.events ?? (recorded?.status === 'ready' && run.built === null ? events : 0);
      if (interrupted) err('the rebuild had completed: its tables were swapped in before the interrupt');
      out(
        JSON.stringify(
          {
            name,
            generation,
            events,
            eventsThisRun: events - eventsBefore,
            eventsBefore,
            durationMs: outcome?.durationMs ?? null,
          },
          null,
          2,
        ),
      );
      return 0;
    } finally {
      finished = true;
      await close();
    }
  } finally {
    await stores.close();
  }
}

/** Progress of this run's events: a resumed rebuild counts from where it resumed, not from zero. */
function reportProgress(
  run: RebuildRun,
  recorded: { generation: number; status: string; events: number; position: string | null } | null,
  name: string,
  p: RebuildProgress,
  progress: ReturnType<typeof createProgress>,
): void {
  if (run.built === null && recorded && recorded.status !== 'ready' && p.generation === recorded.generation) {
    run.resumed = {
      generation: recorded.generation,
      events: recorded.events,
      at: sequenceOf(recorded.position) ?? 0,
    };
    err(
      `resuming the interrupted rebuild of ${name} (generation ${recorded.generation}) after ` +
        `${recorded.events.toLocaleString('en-US')} events, at position ${recorded.position ?? 'start'}`,
    );
  }
  run.built = { generation: p.generation, events: p.events };
  const head = sequenceOf(p.headPosition);
  if (run.total === null && head !== null) run.total = head - (run.resumed?.at ?? 0);
  const at = sequenceOf(p.position);
  run.done = at !== null ? at - (run.resumed?.at ?? 0) : p.events - (run.resumed?.events ?? 0);
  if (p.phase === 'building') progress.update(run.done, run.total);
}

async function projections(args: string[]): Promise<number> {
  const [action, name, ...extra] = args;
  if (action === 'status') {
    if (name !== undefined) throw new UsageError('projections status takes no argument', STATUS_USAGE);
    return projectionStatus();
  }
  if (action !== 'rebuild')
    throw new UsageError(
      action === undefined ? 'projections takes rebuild or status' : `unknown action: projections ${action}`,
      PROJECTIONS_USAGE,
    );
  if (!name || extra.length > 0)
    throw new UsageError('projections rebuild takes one projection name', REBUILD_USAGE);
  if (!PROJECTION_NAMES.includes(name))
    throw new UsageError(
      `unknown projection '${name}'; the projections are: ${PROJECTION_NAMES.join(', ')}`,
      REBUILD_USAGE,
    );
  return rebuild(name);
}

function backup(args: string[]): number {
  const [destination, ...extra] = args;
  if (!destination || extra.length > 0)
    throw new UsageError('backup takes one destination file', BACKUP_USAGE);
  const config = configuration();
  if (config.store !== 'sqlite') {
    throw new SetupError(
      `backup copies the embedded SQLite store; MUSTER_STORE is ${config.store} (${
        config.store === 'postgres' ? 'use pg_dump' : "use EventStoreDB's own backups"
      })`,
    );
  }
  requireSqliteFile(config.sqlitePath, 'MUSTER_SQLITE_PATH');
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
    if (command === undefined) {
      err(USAGE);
      return 2;
    }
    if (command === 'help' || argv.includes('--help') || argv.includes('-h')) {
      out(helpFor(command === 'help' ? argv.slice(1) : argv));
      return 0;
    }
    if (command === 'audit') {
      if (sub !== 'verify') throw new UsageError(`unknown command: ${argv.join(' ')}`, AUDIT_VERIFY_USAGE);
      return await auditVerify(rest);
    }
    if (command === 'replay') return await replay(sub === undefined ? rest : [sub, ...rest]);
    if (command === 'projections') return await projections(sub === undefined ? rest : [sub, ...rest]);
    if (command === 'backup') return backup(sub === undefined ? rest : [sub, ...rest]);
    throw new UsageError(`unknown command: ${argv.join(' ')}`);
  } catch (error) {
    if (error instanceof UsageError) {
      err(`${error.message}\n\n${error.usage}`);
      return 2;
    }
    if (error instanceof SetupError) {
      err(error.message);
      return 2;
    }
    if (error instanceof MissingSqliteFileError) {
      err(error.message);
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
