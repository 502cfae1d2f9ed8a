import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sqliteBackend } from './test-support/databases.js';
import { change, produce } from './test-support/feed.js';
import { drain, harness, tableResolver } from './test-support/harness.js';

/** A self-signed certificate for `receiver.test`, made with the openssl CLI when there is one. */
function selfSigned(): { key: string; cert: string } | string {
  const dir = mkdtempSync(join(tmpdir(), 'muster-tls-'));
  try {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-days',
        '2',
        '-subj',
        '/CN=receiver.test',
        '-addext',
        'subjectAltName=DNS:receiver.test',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
      ],
      { stdio: 'ignore' },
    );
    return {
      key: readFileSync(join(dir, 'key.pem'), 'utf8'),
      cert: readFileSync(join(dir, 'cert.pem'), 'utf8'),
    };
  } catch (error) {
    return `openssl is not available: ${(error as Error).message}`;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const pair = selfSigned();
const skip = typeof pair === 'string' ? pair : undefined;

describe.skipIf(skip)(`https endpoints${skip ? ` (skipped: ${skip})` : ''}`, () => {
  const h = harness(sqliteBackend);
  let server: Server;
  let received = 0;

  beforeAll(async () => {
    const { key, cert } = pair as { key: string; cert: string };
    server = createServer({ key, cert }, (req, res) => {
      req.resume();
      req.on('end', () => {
        received++;
        res.end('ok');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  const options = () => ({
    allowHttp: false,
    resolve: tableResolver({ 'receiver.test': ['127.0.0.1'] }),
  });

  it('logs an untrusted certificate as a TLS failure', async () => {
    const { sql } = await h.db();
    const service = await h.service(sql, { clock: h.clock(), ...options() });
    const port = (server.address() as AddressInfo).port;
    const sub = await service.createSubscription('kenya', { url: `https://receiver.test:${port}/hooks` });
    await produce(sql, [change('m1')]);
    const before = received;
    await drain(service);
    expect(received).toBe(before);
    const [delivery] = (await service.listDeliveries('kenya', sub.id)).items;
    expect(delivery).toMatchObject({ status: 'pending', lastErrorClass: 'tls' });
  });

  it('delivers over https to a trusted certificate, checking the name it was given', async () => {
    const { sql } = await h.db();
    const service = await h.service(sql, {
      clock: h.clock(),
      ca: (pair as { cert: string }).cert,
      ...options(),
    });
    const port = (server.address() as AddressInfo).port;
    const sub = await service.createSubscription('kenya', { url: `https://receiver.test:${port}/hooks` });
    await produce(sql, [change('m1')]);
    const before = received;
    await drain(service);
    expect(received).toBe(before + 1);
    const [delivery] = (await service.listDeliveries('kenya', sub.id)).items;
    expect(delivery).toMatchObject({ status: 'delivered' });
  });
});
