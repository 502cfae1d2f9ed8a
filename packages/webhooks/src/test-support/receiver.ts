import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';
import { vi } from 'vitest';

/** One request as a test receiver got it: the raw bytes and headers, before any parsing. */
export interface Capture {
  headers: IncomingHttpHeaders;
  /** Path and query of the request. */
  path: string;
  rawBody: string;
  /** The controlled clock's time at receipt (for verifying the timestamp window). */
  at: number;
  /** Wall-clock order of receipt. */
  index: number;
  id: string;
  json: { type: string; timestamp: string; data: Record<string, unknown> };
}

export interface Reply {
  status?: number;
  headers?: Record<string, string>;
  body?: string;
  /** Wait this long before answering (a slow receiver). */
  delayMs?: number;
}

/**
 * A real HTTP receiver on loopback. `respond` decides each answer (default 200); every complete
 * request is captured before the answer, so a sender that dies mid-request still shows up as sent.
 */
export class Receiver {
  readonly captures: Capture[] = [];
  respond: (capture: Capture) => Reply | Promise<Reply> = () => ({ status: 200 });
  private server: Server | null = null;
  private waiters: Array<() => void> = [];
  private counter = 0;

  constructor(private readonly clock: { now(): number } = { now: () => Date.now() }) {}

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', async () => {
        const rawBody = Buffer.concat(chunks).toString('utf8');
        let json: Capture['json'];
        try {
          json = JSON.parse(rawBody);
        } catch {
          json = { type: '(not json)', timestamp: '', data: {} };
        }
        const capture: Capture = {
          headers: req.headers,
          path: req.url ?? '',
          rawBody,
          at: this.clock.now(),
          index: this.counter++,
          id: String(req.headers['webhook-id']),
          json,
        };
        this.captures.push(capture);
        for (const w of this.waiters.splice(0)) w();
        const reply = await this.respond(capture);
        if (reply.delayMs) await new Promise((r) => setTimeout(r, reply.delayMs));
        if (res.destroyed) return;
        res.writeHead(reply.status ?? 200, { 'content-type': 'text/plain', ...(reply.headers ?? {}) });
        res.end(reply.body ?? 'ok');
      });
    });
    this.server.keepAliveTimeout = 10_000;
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve));
    return this;
  }

  get port(): number {
    return (this.server?.address() as AddressInfo).port;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/hooks`;
  }

  /** Resolves once `count` requests have been captured (or rejects after `timeoutMs`). */
  async waitFor(count: number, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.captures.length < count) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`receiver got ${this.captures.length} of ${count} requests`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 200));
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    this.server = null;
  }
}

/**
 * Verifies a capture with the independent `standardwebhooks` package, with the system time set
 * to the moment of receipt on the controlled clock (its ±5 minute window cannot be configured).
 */
export function verifyCapture(secret: string, capture: Capture): unknown {
  vi.useFakeTimers({ toFake: ['Date'], now: capture.at });
  try {
    return new Webhook(secret).verify(capture.rawBody, {
      'webhook-id': String(capture.headers['webhook-id']),
      'webhook-timestamp': String(capture.headers['webhook-timestamp']),
      'webhook-signature': String(capture.headers['webhook-signature']),
    });
  } finally {
    vi.useRealTimers();
  }
}

/** A clock the test moves by hand. */
export class ManualClock {
  constructor(public t = Date.parse('2025-03-01T00:00:00Z')) {}
  now(): number {
    return this.t;
  }
  advance(ms: number): void {
    this.t += ms;
  }
}
