import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { WebhookLogger } from './context.js';
import type { FromWorker, SenderConfig, ToWorker } from './send-worker.js';
import {
  type AttemptControl,
  type AttemptRequest,
  SENDER_CLOSED,
  type SenderOptions,
  type SendOutcome,
  type Transport,
  WebhookSender,
} from './sender.js';
import type { Resolver } from './ssrf.js';

interface Registered {
  config: SenderConfig;
  resolve: Resolver;
  onThreadFailure(error: Error): void;
}

interface Waiting {
  configId: number;
  request: AttemptRequest;
  control: AttemptControl;
  resolve(outcome: SendOutcome): void;
}

/**
 * The process's one sender thread, shared by every webhook service in the process (each registers
 * its own configuration: egress policy, timeouts, CAs). Started when a dispatching service starts
 * (or on the first attempt, whichever comes first), stopped a little after the last service
 * closed; it keeps the process alive only while attempts are in flight. Attempts launched in one
 * turn of the event loop go as one message.
 */
class SendThread {
  private worker: Worker | null = null;
  /** Set when the thread could not start or died: attempts are then sent in the calling thread. */
  failure: Error | null = null;
  private readonly configs = new Map<number, Registered>();
  private readonly waiting = new Map<number, Waiting>();
  private outbox: Array<[number, number, AttemptRequest]> = [];
  private nextRequest = 1;
  private nextConfig = 1;
  private idleTimer: NodeJS.Timeout | null = null;
  /** Settles once the current worker has loaded its code (or failed to). */
  private loaded: Promise<void> | null = null;
  private markLoaded: (() => void) | null = null;

  register(registered: Registered): number {
    const id = this.nextConfig++;
    this.configs.set(id, registered);
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
    this.worker?.postMessage({ t: 'config', id, config: registered.config } satisfies ToWorker);
    return id;
  }

  unregister(id: number): void {
    if (!this.configs.delete(id)) return;
    this.worker?.postMessage({ t: 'drop', id } satisfies ToWorker);
    if (this.configs.size === 0 && this.worker) {
      // Services come and go (tests, restarts): keep the warm thread for a moment.
      this.idleTimer = setTimeout(() => {
        this.idleTimer = null;
        if (this.configs.size > 0 || this.waiting.size > 0) return;
        const worker = this.worker;
        this.worker = null;
        void worker?.terminate();
      }, 2_000);
      this.idleTimer.unref();
    }
  }

  /**
   * Starts the thread now and resolves once it has loaded (at most `timeoutMs` later), so that the
   * first deliveries do not wait for a thread to boot: loading the worker's code takes from tens of
   * milliseconds (built) to a second or more (TypeScript sources through tsx), and attempts queued
   * meanwhile would all carry that delay.
   */
  async warm(timeoutMs: number): Promise<void> {
    if (this.failure) return;
    if (!this.worker) this.start();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.loaded,
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, timeoutMs);
        timer.unref();
      }),
    ]);
    clearTimeout(timer);
  }

  send(configId: number, request: AttemptRequest, control: AttemptControl): Promise<SendOutcome> {
    const worker = this.worker ?? this.start();
    const requestId = this.nextRequest++;
    return new Promise<SendOutcome>((resolve) => {
      this.waiting.set(requestId, { configId, request, control, resolve });
      if (this.waiting.size === 1) worker.ref();
      if (this.outbox.length === 0) queueMicrotask(() => this.flush());
      this.outbox.push([requestId, configId, request]);
      control.onAbort((reason) => {
        this.worker?.postMessage({ t: 'abort', requestId, message: reason.message } satisfies ToWorker);
      });
    });
  }

  private flush(): void {
    const batch = this.outbox;
    this.outbox = [];
    if (batch.length > 0) this.worker?.postMessage({ t: 'send', batch } satisfies ToWorker);
  }

  private start(): Worker {
    const here = import.meta.url;
    let worker: Worker;
    if (here.endsWith('.ts')) {
      // Running from the TypeScript sources (tests, benchmarks): the thread loads them through
      // tsx's require hook, which works in a worker where module loader hooks do not (Node 20).
      const entry = fileURLToPath(new URL('./send-worker.ts', here));
      const tsx = createRequire(here).resolve('tsx/cjs/api');
      worker = new Worker(
        `require(${JSON.stringify(tsx)}).require(${JSON.stringify(entry)}, ${JSON.stringify(entry)})`,
        {
          eval: true,
          execArgv: [],
        },
      );
    } else {
      worker = new Worker(new URL('./send-worker.js', here));
    }
    worker.unref();
    this.loaded = new Promise<void>((resolve) => {
      this.markLoaded = resolve;
    });
    worker.on('message', (message: FromWorker) => this.receive(message));
    worker.on('error', (error) => this.fail(worker, error));
    worker.on('exit', (code) => this.fail(worker, new Error(`the sender thread exited with code ${code}`)));
    for (const [id, registered] of this.configs) {
      worker.postMessage({ t: 'config', id, config: registered.config } satisfies ToWorker);
    }
    this.worker = worker;
    return worker;
  }

  private receive(message: FromWorker): void {
    switch (message.t) {
      case 'ready':
        this.markLoaded?.();
        this.markLoaded = null;
        break;
      case 'done': {
        for (const [requestId, outcome] of message.batch) {
          const waiting = this.waiting.get(requestId);
          if (!waiting) continue;
          this.waiting.delete(requestId);
          waiting.control.onAbort(null);
          waiting.resolve(outcome);
        }
        if (this.waiting.size === 0) this.worker?.unref();
        break;
      }
      case 'lookup': {
        const { lookupId, configId, hostname } = message;
        const registered = this.configs.get(configId);
        const answer = (reply: Omit<Extract<ToWorker, { t: 'resolved' }>, 't' | 'lookupId'>) =>
          this.worker?.postMessage({ t: 'resolved', lookupId, ...reply } satisfies ToWorker);
        if (!registered) {
          answer({ error: { message: 'the webhook service was closed', code: 'ENOTFOUND' } });
          break;
        }
        registered.resolve(hostname).then(
          (addresses) =>
            answer({ addresses: addresses.map((a) => ({ address: a.address, family: a.family })) }),
          (error: NodeJS.ErrnoException) =>
            answer({
              error: {
                message: error?.message ?? String(error),
                ...(error?.code === undefined ? {} : { code: error.code }),
              },
            }),
        );
        break;
      }
      default: {
        const unknown: never = message;
        throw new Error(`unknown message ${JSON.stringify(unknown)}`);
      }
    }
  }

  /**
   * The thread failed (it could not start, or died): its attempts are sent again in this thread,
   * and so is everything after. They may have reached the receiver already, which at-least-once
   * allows: the same message, the same `webhook-id`.
   */
  private fail(worker: Worker, error: Error): void {
    if (this.worker !== worker) return;
    this.worker = null;
    this.failure = error;
    this.markLoaded?.();
    this.markLoaded = null;
    void worker.terminate();
    const waiting = [...this.waiting.values()];
    this.waiting.clear();
    this.outbox = [];
    for (const registered of this.configs.values()) registered.onThreadFailure(error);
    for (const w of waiting) {
      const owner = this.configs.get(w.configId);
      if (!owner) {
        w.resolve({ ...SENDER_CLOSED });
        continue;
      }
      w.control.onAbort(null);
      fallbacks.get(w.configId)?.send(w.request, w.control).then(w.resolve);
    }
  }
}

let shared: SendThread | null = null;
/** In-thread senders of the registered configurations, for when the thread failed. */
const fallbacks = new Map<number, WebhookSender>();

/**
 * Sends attempts in the process's sender thread, so that the HTTP work runs beside the database
 * work instead of taking turns with it on one event loop. The SSRF guard runs in the thread, at
 * connect time as always; a service with its own resolver answers the thread's name lookups.
 */
export class ThreadedSender implements Transport {
  private readonly thread: SendThread;
  private readonly configId: number;
  private readonly fallback: WebhookSender;
  private closed = false;

  constructor(options: SenderOptions & { customResolver: boolean }, logger: WebhookLogger) {
    shared ??= new SendThread();
    this.thread = shared;
    this.fallback = new WebhookSender(options);
    this.configId = this.thread.register({
      config: {
        allowHttp: options.policy.allowHttp,
        allow: options.policy.allow,
        proxyResolve: options.customResolver,
        requestTimeoutMs: options.requestTimeoutMs,
        connectTimeoutMs: options.connectTimeoutMs,
        ...(options.ca === undefined ? {} : { ca: options.ca }),
        userAgent: options.userAgent,
      },
      resolve: options.policy.resolve,
      onThreadFailure: (error) =>
        logger.warn({ err: error }, 'webhook sender thread failed; sending from the main thread instead'),
    });
    fallbacks.set(this.configId, this.fallback);
  }

  /** Starts the sender thread and waits (up to 10 s) until it can take attempts. */
  async warm(): Promise<void> {
    if (this.closed) return;
    await this.thread.warm(10_000);
  }

  send(request: AttemptRequest, control: AttemptControl): Promise<SendOutcome> {
    if (this.thread.failure) return this.fallback.send(request, control);
    return this.thread.send(this.configId, request, control);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.thread.unregister(this.configId);
    fallbacks.delete(this.configId);
    await this.fallback.close();
  }
}
