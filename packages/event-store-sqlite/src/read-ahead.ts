import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { StoreClosedError } from '@muster/event-store';
import { bindable, mapSqliteError } from './connection.js';

/**
 * Where a paged read stands, and how to ask for its next page: the statement selects each event's
 * JSON text, which starts with two integers (`[position,revision,`), and takes its parameters as
 * `...before, cursor, ...after, limit`; the cursor is the integer at `cursorIndex`. The in-thread
 * reader and the read-ahead thread walk it with the same rule.
 */
export interface PageJob {
  sql: string;
  before: readonly string[];
  after: readonly string[];
  cursor: number;
  remaining: number;
  pageSize: number;
  forwards: boolean;
  cursorIndex: 0 | 1;
  /** Revisions end at 0; positions do not need it (a cursor of 0 finds nothing backwards). */
  stopBelowZero: boolean;
}

export function hasMore(job: PageJob): boolean {
  return job.remaining > 0 && !(job.stopBelowZero && job.cursor < 0);
}

export function pageParams(job: PageJob): Record<number, unknown> {
  return bindable([...job.before, job.cursor, ...job.after, Math.min(job.pageSize, job.remaining)]);
}

/** The integer at `index` (0 or 1) of an event text, read without parsing the rest of it. */
export function leadingInteger(text: string, index: 0 | 1): number {
  const first = text.indexOf(',');
  return index === 0
    ? Number(text.slice(1, first))
    : Number(text.slice(first + 1, text.indexOf(',', first + 1)));
}

/** Moves the job past a page it just read. */
export function advance(job: PageJob, texts: readonly string[]): void {
  job.remaining = texts.length < job.pageSize ? 0 : job.remaining - texts.length;
  const last = texts[texts.length - 1];
  if (last !== undefined) {
    const cursor = leadingInteger(last, job.cursorIndex);
    job.cursor = job.forwards ? cursor + 1 : cursor - 1;
  }
}

/**
 * The read-ahead thread, as plain CommonJS so that it runs the same from the sources, the build
 * and under a test runner's transforms. It repeats `hasMore`, `pageParams`, `leadingInteger` and
 * `advance` above (a worker evaluated from a string cannot import them); `read-ahead.test.ts`
 * walks both over the same reads. It reads pages while it has credit (characters the consumer has
 * room for) and posts their JSON texts; parsing stays with the consumer, because parsed objects
 * would cost as much to copy across as to parse.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { driver, path, job } = workerData;
let statement = null;
let credit = 0;
let done = false;
const fail = (error) => {
  done = true;
  parentPort.postMessage({ error: { message: String((error && error.message) || error), code: error && error.code } });
};
const hasMore = () => job.remaining > 0 && !(job.stopBelowZero && job.cursor < 0);
const params = () => {
  const values = [...job.before, job.cursor, ...job.after, Math.min(job.pageSize, job.remaining)];
  const named = {};
  for (let i = 0; i < values.length; i++) named[i + 1] = values[i];
  return named;
};
try {
  const Database = require(driver);
  const db = new Database(path, { readonly: true, fileMustExist: true });
  db.pragma('busy_timeout = 5000');
  statement = db.prepare(job.sql).pluck(true);
} catch (error) {
  fail(error);
}
const pump = () => {
  while (credit > 0 && !done) {
    if (!hasMore()) {
      done = true;
      parentPort.postMessage({ texts: null, last: true });
      return;
    }
    let texts;
    try {
      texts = statement.all(params());
    } catch (error) {
      fail(error);
      return;
    }
    job.remaining = texts.length < job.pageSize ? 0 : job.remaining - texts.length;
    const last = texts[texts.length - 1];
    if (last !== undefined) {
      const first = last.indexOf(',');
      const cursor =
        job.cursorIndex === 0 ? Number(last.slice(1, first)) : Number(last.slice(first + 1, last.indexOf(',', first + 1)));
      job.cursor = job.forwards ? cursor + 1 : cursor - 1;
    }
    let size = 0;
    for (let i = 0; i < texts.length; i++) size += texts[i].length;
    credit -= size;
    done = !hasMore();
    parentPort.postMessage({ texts, size, last: done });
  }
};
parentPort.on('message', (n) => {
  credit += n;
  pump();
});
`;

const DRIVER = createRequire(import.meta.url).resolve('better-sqlite3');

/**
 * Characters of JSON read ahead of the consumer, about 20 pages of typical events: enough to keep
 * the thread busy while the consumer parses, and a bound however large the events (the thread
 * goes over it by one page at most).
 */
const PREFETCH_CHARS = 8 * 1024 * 1024;

type Entry = { texts: string[]; size: number } | { end: true } | { error: unknown };

/**
 * The read-ahead thread itself failed (it could not start, ran out of its memory, or stopped):
 * unlike an error of SQLite, which the thread reports, the read can go on without it.
 */
export class ReadAheadThreadError extends Error {
  constructor(cause: unknown) {
    super('The read-ahead thread failed', { cause });
    this.name = 'ReadAheadThreadError';
  }
}

/**
 * A paged read continued on a worker thread with its own read-only connection: SQLite fetches the
 * next pages while the consumer parses and uses this one. Results are the same as reading in the
 * thread (each page is a fresh statement, as there), only earlier. The thread does not keep the
 * process alive unless someone is waiting for a page.
 */
export class ReadAhead {
  private readonly worker: Worker;
  private readonly entries: Entry[] = [];
  private waiter: { resolve: (texts: string[] | null) => void; reject: (error: unknown) => void } | null =
    null;
  private closed = false;

  constructor(
    path: string,
    job: PageJob,
    private readonly onClose: (ahead: ReadAhead) => void,
    memoryMb = 256,
  ) {
    this.worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { driver: DRIVER, path, job },
      // The thread's garbage is its pages' rows: a small young generation keeps a long read's
      // memory near the in-thread read's (peak RSS of a 1M-event readAll 156-172 instead of
      // 185-193 MiB). A page that does not fit in the old generation ends the thread, and the
      // reader goes on without it (ReadAheadThreadError).
      resourceLimits: { maxYoungGenerationSizeMb: 4, maxOldGenerationSizeMb: memoryMb },
    });
    this.worker.unref();
    this.worker.on(
      'message',
      (message: { texts: string[] | null; size: number; last: boolean } | { error: Error }) => {
        if ('error' in message) {
          this.push({
            error: mapSqliteError(Object.assign(new Error(message.error.message), message.error)),
          });
        } else {
          if (message.texts) this.push({ texts: message.texts, size: message.size });
          if (message.last) this.push({ end: true });
        }
      },
    );
    this.worker.on('error', (error) => this.push({ error: new ReadAheadThreadError(error) }));
    this.worker.on('exit', (code) => {
      this.push({ error: new ReadAheadThreadError(new Error(`The thread exited with code ${code}`)) });
    });
    this.worker.postMessage(PREFETCH_CHARS);
  }

  /** The next page's JSON texts; null once the read is complete. */
  next(): Promise<string[] | null> {
    if (this.closed) return Promise.reject(new StoreClosedError());
    const entry = this.entries.shift();
    if (entry) return this.settle(entry);
    this.worker.ref();
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.entries.length = 0;
    void this.worker.terminate();
    this.onClose(this);
    const waiter = this.waiter;
    this.waiter = null;
    waiter?.reject(new StoreClosedError());
  }

  private push(entry: Entry): void {
    if (this.closed) return;
    const waiter = this.waiter;
    if (!waiter) {
      this.entries.push(entry);
      return;
    }
    this.waiter = null;
    this.worker.unref();
    this.settle(entry).then(waiter.resolve, waiter.reject);
  }

  private settle(entry: Entry): Promise<string[] | null> {
    if ('texts' in entry) {
      this.worker.postMessage(entry.size);
      return Promise.resolve(entry.texts);
    }
    this.close();
    return 'end' in entry ? Promise.resolve(null) : Promise.reject(entry.error);
  }
}
