import type { LookupAddress } from 'node:dns';
import { parentPort } from 'node:worker_threads';
import type { Cidr } from './ip-ranges.js';
import {
  AttemptControl,
  type AttemptRequest,
  SENDER_CLOSED,
  type SendOutcome,
  WebhookSender,
} from './sender.js';
import { systemResolver } from './ssrf.js';

/**
 * The sender thread: the HTTP side of webhook attempts (signing, connecting through the SSRF guard,
 * sending, reading the capped answer), off the thread that runs the database work, the planner and
 * the service. Messages are batched both ways: what one turn of either event loop produces goes
 * as one message. The protocol is in `send-thread.ts`.
 */
export interface SenderConfig {
  allowHttp: boolean;
  allow: readonly Cidr[];
  /** Names are resolved by the owning service's resolver (tests inject one), else by the system's. */
  proxyResolve: boolean;
  requestTimeoutMs: number;
  connectTimeoutMs: number;
  ca?: string | Buffer | Array<string | Buffer>;
  userAgent: string;
}

export type ToWorker =
  | { t: 'config'; id: number; config: SenderConfig }
  | { t: 'drop'; id: number }
  | { t: 'send'; batch: Array<[requestId: number, configId: number, request: AttemptRequest]> }
  | { t: 'abort'; requestId: number; message: string }
  | {
      t: 'resolved';
      lookupId: number;
      addresses?: LookupAddress[];
      error?: { message: string; code?: string };
    };

export type FromWorker =
  /** Sent once, when the thread has loaded and listens. */
  | { t: 'ready' }
  | { t: 'done'; batch: Array<[requestId: number, outcome: SendOutcome]> }
  | { t: 'lookup'; lookupId: number; configId: number; hostname: string };

const port = parentPort;
if (port) {
  const senders = new Map<number, WebhookSender>();
  const controls = new Map<number, AttemptControl>();
  const lookups = new Map<number, { resolve(a: LookupAddress[]): void; reject(e: Error): void }>();
  let nextLookup = 1;
  let done: Array<[number, SendOutcome]> = [];
  const flush = () => {
    const batch = done;
    done = [];
    port.postMessage({ t: 'done', batch } satisfies FromWorker);
  };
  const finished = (requestId: number, outcome: SendOutcome) => {
    controls.delete(requestId);
    if (done.length === 0) setImmediate(flush);
    done.push([requestId, outcome]);
  };

  port.on('message', (message: ToWorker) => {
    switch (message.t) {
      case 'config': {
        const { config, id } = message;
        const resolve = config.proxyResolve
          ? (hostname: string) =>
              new Promise<LookupAddress[]>((resolve, reject) => {
                const lookupId = nextLookup++;
                lookups.set(lookupId, { resolve, reject });
                port.postMessage({ t: 'lookup', lookupId, configId: id, hostname } satisfies FromWorker);
              })
          : systemResolver;
        senders.set(
          id,
          new WebhookSender({
            policy: { allowHttp: config.allowHttp, allow: config.allow, resolve },
            requestTimeoutMs: config.requestTimeoutMs,
            connectTimeoutMs: config.connectTimeoutMs,
            ...(config.ca === undefined ? {} : { ca: config.ca }),
            userAgent: config.userAgent,
          }),
        );
        break;
      }
      case 'drop': {
        const sender = senders.get(message.id);
        senders.delete(message.id);
        void sender?.close();
        break;
      }
      case 'send': {
        for (const [requestId, configId, request] of message.batch) {
          const sender = senders.get(configId);
          if (!sender) {
            finished(requestId, { ...SENDER_CLOSED });
            continue;
          }
          const control = new AttemptControl();
          controls.set(requestId, control);
          sender.send(request, control).then((outcome) => finished(requestId, outcome));
        }
        break;
      }
      case 'abort':
        controls.get(message.requestId)?.abort(new Error(message.message));
        break;
      case 'resolved': {
        const lookup = lookups.get(message.lookupId);
        lookups.delete(message.lookupId);
        if (!lookup) break;
        if (message.error) {
          lookup.reject(Object.assign(new Error(message.error.message), { code: message.error.code }));
        } else {
          lookup.resolve(message.addresses ?? []);
        }
        break;
      }
      default: {
        const unknown: never = message;
        throw new Error(`unknown message ${JSON.stringify(unknown)}`);
      }
    }
  });
  port.postMessage({ t: 'ready' } satisfies FromWorker);
}
