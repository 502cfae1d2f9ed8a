import { openSqliteSql } from '@muster/event-store-sqlite';
import { createWebhookService } from '../service.js';

/**
 * A webhook process for the crash test: plans and dispatches against a SQLite file until it is
 * killed (SIGKILL, no goodbye) or asked to stop (SIGTERM, graceful).
 */
const [path, leaseMs] = process.argv.slice(2);
if (!path) throw new Error('usage: crash-child <sqlite path> <lease ms>');
const sql = openSqliteSql(path);
const service = createWebhookService({
  sql,
  publicUrl: 'https://muster.example.org',
  allowHttp: true,
  allowCidrs: ['127.0.0.0/8'],
  leaseMs: Number(leaseMs ?? 1500),
  requestTimeoutMs: 1000,
  pollIntervalMs: 50,
  maxInFlight: 8,
  logger: {
    info: (obj, msg) =>
      process.env.MUSTER_CRASH_DEBUG
        ? process.stderr.write(`[child ${process.pid}] ${msg} ${JSON.stringify(obj)}\n`)
        : undefined,
    warn: (obj, msg) => process.stderr.write(`[child ${process.pid}] ${msg} ${JSON.stringify(obj)}\n`),
    error: (obj, msg) =>
      process.stderr.write(`[child ${process.pid}] ${msg} ${String((obj.err as Error)?.stack ?? '')}\n`),
  },
});
await service.start();
process.send?.('ready');
process.on('SIGTERM', () => {
  void (async () => {
    await service.stop({ timeoutMs: 2000 });
    await sql.close();
    process.exit(0);
  })();
});
