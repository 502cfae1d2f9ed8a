// Ad-hoc, not committed: keyed pledge-logistics commands against a server build on a big file.
import { spawn } from 'node:child_process';
import { copyFileSync, rmSync } from 'node:fs';
import autocannon from 'autocannon';
const [server, db, label] = process.argv.slice(2);
const path = `/tmp/s15-keyed-${label}.db`;
rmSync(path, { force: true }); rmSync(`${path}-wal`, { force: true }); rmSync(`${path}-shm`, { force: true });
copyFileSync(db, path);
const KEY = 'k'.repeat(48);
const port = 3900 + Math.floor(Math.random() * 50);
const child = spawn(process.execPath, [server], { env: { PATH: process.env.PATH, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn', MUSTER_SQLITE_PATH: path, MUSTER_BOOTSTRAP_ADMIN_KEY: KEY, MUSTER_RATE_LIMIT_PER_MINUTE: '0' }, stdio: ['ignore', 'ignore', 'inherit'] });
const url = `http://127.0.0.1:${port}`;
for (let i = 0; i < 600; i++) { try { if ((await fetch(`${url}/health/ready`)).status === 200) break; } catch {} await new Promise((r) => setTimeout(r, 200)); }
const h = { 'content-type': 'application/json', authorization: `Bearer ${KEY}` };
const d = await fetch(`${url}/v1/missions`, { method: 'POST', headers: h, body: JSON.stringify({ id: 'keyed-mission', template: 'mss-haiti' }) });
if (d.status !== 201) throw new Error(`define ${d.status} ${await d.text()}`);
let n = 0;
const result = await autocannon({ url: `${url}/v1/missions/keyed-mission/commands/pledge-logistics`, connections: 50, duration: 10, method: 'POST', headers: h,
  requests: [{ setupRequest: (r) => { const id = `kp-${label}-${n++}`; return { ...r, headers: { ...h, 'idempotency-key': id }, body: JSON.stringify({ pledgeId: id, pledger: 'united-states', capability: 'airlift', quantity: 1, unit: 'aircraft' }) }; } }] });
child.kill('SIGTERM');
process.stdout.write(`${label}: ${Math.round(result.requests.average)} req/s p50 ${result.latency.p50} p99 ${result.latency.p99} non2xx ${result.non2xx} errors ${result.errors}\n`);
await new Promise((r) => child.once('exit', r));
rmSync(path, { force: true }); rmSync(`${path}-wal`, { force: true }); rmSync(`${path}-shm`, { force: true });
