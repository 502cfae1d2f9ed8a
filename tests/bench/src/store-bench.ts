import { fork } from 'node:child_process';
import { closeSync, fsyncSync, mkdtempSync, openSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSqliteEventStore } from '@muster/event-store-sqlite';
import { closedLoop, log, memorySampler, options, print, round } from './lib.js';

/**
 * `pnpm bench:store`: durable single-event appends on SQLite from 64 concurrent producers,
 * with group commit and, as the baseline in the same run on the same file system, one
 * transaction per append; then a full `readAll` of 1,000,000 events in a fresh process.
 * `--store postgres` runs the PostgreSQL variant (see store-postgres-bench.ts).
 */
const args = options({
  store: { type: 'string', default: 'sqlite' },
  seconds: { type: 'string', default: '5' },
  producers: { type: 'string', default: '64' },
  'read-events': { type: 'string', default: '1000000' },
  dir: { type: 'string', default: '' },
  'read-child': { type: 'string', default: '' },
});

if (args['read-child']) {
  await readChild(args['read-child']);
} else if (args.store === 'postgres') {
  const { runPostgresStoreBench } = await import('./store-postgres-bench.js');
  await runPostgresStoreBench({ seconds: Number(args.seconds) });
} else if (args.store === 'sqlite') {
  await runSqlite();
} else {
  throw new Error(`--store must be sqlite or postgres, not ${args.store}`);
}

async function runSqlite(): Promise<void> {
  const seconds = Number(args.seconds);
  const producers = Number(args.producers);
  const readEvents = Number(args['read-events']);
  const dir = mkdtempSync(join(args.dir || tmpdir(), 'muster-bench-store-'));
  try {
    const scenario = async (name: string, groupCommit: boolean, hot: boolean) => {
      const store = await openSqliteEventStore({ path: join(dir, `${name}.db`), groupCommit });
      log(`${name}: ${producers} producers for ${seconds}s (group commit ${groupCommit ? 'on' : 'off'})`);
      const result = await closedLoop(producers, seconds, (p, i) =>
        store.appendToStream(hot ? 'hot-stream' : `stream-${p}`, [
          { type: 'Benchmarked', data: { p, i, note: 'x'.repeat(64) } },
        ]),
      );
      await store.close();
      return { eventsPerSecond: result.perSecond, events: result.ops, ...result.latency };
    };

    const distinct = await scenario('group-commit-distinct-streams', true, false);
    const hot = await scenario('group-commit-hot-stream', true, true);
    const baselineDistinct = await scenario('baseline-one-tx-per-append-distinct-streams', false, false);
    const baselineHot = await scenario('baseline-one-tx-per-append-hot-stream', false, true);

    const readPath = join(dir, 'read-all.db');
    log(`filling ${readEvents} events for the readAll measurement`);
    const fill = await openSqliteEventStore({ path: readPath });
    const batch = 1000;
    for (let i = 0; i < readEvents; i += batch * 8) {
      await Promise.all(
        Array.from({ length: 8 }, (_, w) =>
          i + w * batch < readEvents
            ? fill.appendToStream(
                `fill-${(i / batch + w) % 500}`,
                Array.from({ length: Math.min(batch, readEvents - i - w * batch) }, (_, j) => ({
                  type: 'Filled',
                  data: { n: i + w * batch + j, unit: 'RDU', officersReady: 250 },
                  metadata: { actor: { agency: 'bench', keyId: 'k' }, commandId: `c-${i}-${w}` },
                })),
              )
            : Promise.resolve(),
        ),
      );
    }
    await fill.close();
    // The fill leaves hundreds of MB for the kernel to write back; flushed now, so that the read
    // is not measured against that writeback.
    const fd = openSync(readPath, 'r');
    fsyncSync(fd);
    closeSync(fd);
    log('reading them back in a fresh process');
    const read = await new Promise<{ events: number; seconds: number; peakRssMiB: number }>(
      (resolve, reject) => {
        const child = fork(new URL(import.meta.url).pathname, ['--read-child', readPath], {
          execArgv: ['--conditions=@muster/source', '--import', 'tsx'],
          stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
        });
        child.on('message', (m) => resolve(m as { events: number; seconds: number; peakRssMiB: number }));
        child.on('error', reject);
      },
    );

    print({
      benchmark: 'store',
      store: 'sqlite',
      durability: 'WAL, synchronous=FULL (fsync on every commit)',
      producers,
      secondsPerScenario: seconds,
      groupCommit: { distinctStreams: distinct, hotStream: hot },
      baseline: { distinctStreams: baselineDistinct, hotStream: baselineHot },
      ratios: {
        distinctStreams: round(distinct.eventsPerSecond / baselineDistinct.eventsPerSecond, 2),
        hotStream: round(hot.eventsPerSecond / baselineHot.eventsPerSecond, 2),
        target: 6,
      },
      readAll: {
        events: read.events,
        eventsPerSecond: round(read.events / read.seconds, 0),
        peakRssMiB: read.peakRssMiB,
        fileMiB: round(statSync(readPath).size / 1024 / 1024, 1),
        targets: { eventsPerSecond: 300_000, peakRssMiB: 200 },
      },
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function readChild(path: string): Promise<void> {
  const store = await openSqliteEventStore({ path });
  const memory = memorySampler();
  const start = performance.now();
  let events = 0;
  for await (const _ of store.readAll()) events++;
  const seconds = (performance.now() - start) / 1000;
  const peakRssMiB = memory.stop();
  await store.close();
  process.send?.({ events, seconds, peakRssMiB });
  process.disconnect?.();
}
