import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { messageId } from './context.js';
import { sqliteBackend } from './test-support/databases.js';
import { change, produce } from './test-support/feed.js';
import { harness } from './test-support/harness.js';
import { type Capture, verifyCapture } from './test-support/receiver.js';

const CHILD = fileURLToPath(new URL('./test-support/crash-child.ts', import.meta.url));
const LEASE_MS = 1500;

function spawnChild(path: string): Promise<ChildProcess> {
  const child = fork(CHILD, [path, String(LEASE_MS)], {
    execArgv: ['--conditions=@muster/source', '--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  return new Promise((resolve, reject) => {
    child.once('message', () => resolve(child));
    child.once('exit', (code) => reject(new Error(`child exited early (${code})`)));
  });
}

const exited = (child: ChildProcess) =>
  child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve()
    : new Promise<void>((resolve) => child.once('exit', () => resolve()));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('crash safety', () => {
  const h = harness(sqliteBackend);

  it('SIGKILLed mid-request again and again: every message arrives, duplicates share their webhook-id, order per mission holds', async () => {
    const { sql, path } = await h.db();
    const receiver = await h.receiver();
    receiver.respond = (c) => ({ status: 200, delayMs: 40 + ((c.index * 37) % 160) });
    const admin = await h.service(sql, { plan: false, dispatch: false });
    const subs = [
      await admin.createSubscription('kenya', { url: `${receiver.url}?a` }),
      await admin.createSubscription('canada', { url: `${receiver.url}?b`, missions: ['m1', 'm2'] }),
    ];
    const missions = ['m1', 'm2', 'm3'];
    const produced: Array<{ changeId: string; missionId: string }> = [];
    let kills = 0;
    let counter = 0;

    for (let round = 0; round < 6; round++) {
      const batch = Array.from({ length: 12 }, () => change(missions[counter++ % missions.length] as string));
      produced.push(...(await produce(sql, batch)));
      const child = await spawnChild(path as string);
      // Kill it while it is sending: after its first new request, at a varying moment.
      const seen = receiver.captures.length;
      try {
        await receiver.waitFor(seen + 1, 15_000);
      } catch (error) {
        const leases = await sql.query('SELECT * FROM webhook_leases');
        const planner = await sql.query('SELECT * FROM webhook_planner');
        const due = await sql.query(
          "SELECT id, status, lease_owner, lease_until, next_attempt_at, attempts FROM webhook_deliveries WHERE status = 'pending' ORDER BY id LIMIT 5",
        );
        console.log(JSON.stringify({ now: Date.now(), leases, planner, due }, null, 1));
        throw error;
      }
      await sleep(((round * 97) % 300) + 20);
      child.kill('SIGKILL');
      await exited(child);
      kills++;
    }
    produced.push(
      ...(await produce(
        sql,
        Array.from({ length: 12 }, () => change(missions[counter++ % 3] as string)),
      )),
    );
    const child = await spawnChild(path as string);
    const deadline = Date.now() + 60_000;
    for (;;) {
      const [row] = await sql.query<{ pending: number; messages: number }>(
        `SELECT (SELECT COUNT(*) FROM webhook_deliveries WHERE status <> 'delivered') AS pending,
                (SELECT COUNT(*) FROM webhook_messages) AS messages`,
      );
      const expected = produced.length + produced.filter((c) => c.missionId !== 'm3').length;
      if (Number(row?.pending) === 0 && Number(row?.messages) === expected) break;
      if (Date.now() > deadline) throw new Error(`not settled: ${JSON.stringify(row)} of ${expected}`);
      await sleep(100);
    }
    child.kill('SIGTERM');
    await exited(child);
    expect(child.exitCode).toBe(0);

    // Every planned message arrived at least once.
    const planned = await sql.query<{ id: string; subscription_id: string }>(
      'SELECT id, subscription_id FROM webhook_messages',
    );
    const receivedIds = new Set(receiver.captures.map((c) => c.id));
    for (const m of planned) expect(receivedIds.has(m.id), m.id).toBe(true);
    for (const [i, sub] of subs.entries()) {
      const mine = produced.filter((c) => i === 0 || c.missionId !== 'm3');
      for (const c of mine) expect(receivedIds.has(messageId(sub.id, c.changeId))).toBe(true);
    }
    // A duplicate is the same message: same id, same bytes; one id per (subscription, change).
    const byId = new Map<string, Capture[]>();
    for (const c of receiver.captures) byId.set(c.id, [...(byId.get(c.id) ?? []), c]);
    for (const receipts of byId.values()) expect(new Set(receipts.map((r) => r.rawBody)).size).toBe(1);
    const idByChange = new Map<string, string>();
    for (const c of receiver.captures) {
      const key = `${c.path}/${(c.json.data.change as { id: string }).id}`;
      expect(idByChange.get(key) ?? c.id).toBe(c.id);
      idByChange.set(key, c.id);
    }
    // Versions never go back in receipt order, per subscription and mission, and none is missing.
    const versions = new Map<string, number[]>();
    for (const c of receiver.captures) {
      const key = `${c.path}/${c.json.data.missionId}`;
      versions.set(key, [...(versions.get(key) ?? []), Number(c.json.data.version)]);
    }
    for (const [key, list] of versions) {
      for (let i = 1; i < list.length; i++)
        expect(list[i], key).toBeGreaterThanOrEqual(list[i - 1] as number);
      expect(new Set(list).size, key).toBe(Math.max(...list));
    }
    // Every request verifies with its subscription's secret.
    for (const c of receiver.captures)
      verifyCapture(subs[c.path.endsWith('?a') ? 0 : 1]?.secret as string, c);
    const duplicates = receiver.captures.length - byId.size;
    expect(kills).toBe(6);
    // The kills landed mid-request: some messages were sent again (with their id).
    expect(duplicates).toBeGreaterThan(0);
    console.log(
      `crash test: ${kills} kills, ${planned.length} messages, ${receiver.captures.length} receipts, ${duplicates} duplicates`,
    );
  }, 180_000);
});
