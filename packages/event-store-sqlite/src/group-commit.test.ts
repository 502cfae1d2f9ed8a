import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WrongExpectedRevisionError } from '@muster/event-store';
import { collect } from '@muster/event-store/contract';
import { afterAll, describe, expect, it } from 'vitest';
import { openSqliteEventStore } from './index.js';

const dir = mkdtempSync(join(tmpdir(), 'muster-sqlite-gc-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A clock that counts its calls: the store reads it once per transaction. */
function countingClock() {
  let calls = 0;
  return {
    clock: () => new Date(Date.UTC(2024, 2, 1, 0, 0, 0, calls++)),
    calls: () => calls,
  };
}

describe('group commit', () => {
  it('coalesces appends that arrive together into one transaction', async () => {
    const { clock, calls } = countingClock();
    const store = await openSqliteEventStore({ path: join(dir, 'gc.db'), clock });
    const results = await Promise.all(
      Array.from({ length: 64 }, (_, i) => store.appendToStream(`s-${i}`, [{ type: 'T', data: { i } }])),
    );
    expect(results).toHaveLength(64);
    expect(calls()).toBe(1);
    expect(new Set(results.map((r) => r.events[0]?.recordedAt)).size).toBe(1);
    await store.close();
  });

  it('keeps each append its own outcome: a failing one never fails its neighbours', async () => {
    const store = await openSqliteEventStore({ path: join(dir, 'gc2.db') });
    await store.appendToStream('hot', [{ type: 'T', data: {} }]);
    const outcomes = await Promise.allSettled(
      Array.from({ length: 30 }, (_, i) =>
        store.appendToStream(i % 3 === 0 ? 'hot' : `cold-${i}`, [{ type: 'T', data: { i } }], {
          expectedRevision: i % 3 === 0 ? 0 : 'no_stream',
        }),
      ),
    );
    const hot = outcomes.filter((_, i) => i % 3 === 0);
    expect(hot.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
    for (const o of hot.filter((o) => o.status === 'rejected')) {
      expect((o as PromiseRejectedResult).reason).toBeInstanceOf(WrongExpectedRevisionError);
    }
    expect(outcomes.filter((_, i) => i % 3 !== 0).every((o) => o.status === 'fulfilled')).toBe(true);
    expect(await collect(store.readStream('hot'))).toHaveLength(2);
    await store.close();
  });

  it('without group commit, each append is its own transaction', async () => {
    const { clock, calls } = countingClock();
    const store = await openSqliteEventStore({ path: join(dir, 'nogc.db'), clock, groupCommit: false });
    await Promise.all(
      Array.from({ length: 10 }, (_, i) => store.appendToStream(`s-${i}`, [{ type: 'T', data: { i } }])),
    );
    expect(calls()).toBe(10);
    await store.close();
  });

  it('is durable on acknowledgement: every acknowledged append survives SIGKILL', async () => {
    const path = join(dir, 'kill.db');
    const script = join(dir, 'writer.mjs');
    const storeModule = new URL('./index.ts', import.meta.url).pathname;
    writeFileSync(
      script,
      `const { openSqliteEventStore } = await import(${JSON.stringify(storeModule)});
       const store = await openSqliteEventStore({ path: ${JSON.stringify(path)} });
       let n = 0;
       const producer = async (p) => {
         for (;;) {
           const i = n++;
           await store.appendToStream('stream-' + p, [{ type: 'T', data: { i } }]);
           process.stdout.write(i + '\\n');
         }
       };
       for (let p = 0; p < 16; p++) producer(p);`,
    );
    const child = spawn(process.execPath, ['--conditions=@muster/source', '--import', 'tsx', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const acked = new Set<number>();
    let buffer = '';
    child.stdout.on('data', (chunk: Buffer) => {
      buffer += chunk.toString();
      const lines = buffer.split('\n');
      buffer = lines.pop() ?? '';
      for (const line of lines) acked.add(Number(line));
    });
    await new Promise<void>((resolve) => {
      const check = setInterval(() => {
        if (acked.size >= 2000) {
          clearInterval(check);
          resolve();
        }
      }, 5);
    });
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
    const store = await openSqliteEventStore({ path });
    const stored = new Set((await collect(store.readAll())).map((e) => (e.data as { i: number }).i));
    const lost = [...acked].filter((i) => !stored.has(i));
    expect(lost).toEqual([]);
    await store.close();
  });
});
