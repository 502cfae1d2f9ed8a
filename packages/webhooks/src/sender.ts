import { Agent } from 'undici';
import { signatureHeader } from './signing.js';
import { BlockedAddressError, type EgressPolicy, guardedConnector } from './ssrf.js';
import type { ErrorClass } from './types.js';

export const RESPONSE_BODY_LIMIT = 4096;

export interface SendOutcome {
  ok: boolean;
  statusCode: number | null;
  errorClass: ErrorClass | null;
  errorMessage: string | null;
  responseBody: string | null;
  retryAfter: string | undefined;
  timedOut: boolean;
  latencyMs: number;
}

/** The outcome of an attempt whose sender was closed before it could send: retried later. */
export const SENDER_CLOSED: Readonly<SendOutcome> = Object.freeze({
  ok: false,
  statusCode: null,
  errorClass: 'connect',
  errorMessage: 'the webhook sender was closed',
  responseBody: null,
  retryAfter: undefined,
  timedOut: false,
  latencyMs: 0,
});

/** One attempt to send: signed by the sender, with the secrets live when it was claimed. */
export interface AttemptRequest {
  url: string;
  messageId: string;
  /** Unix seconds of this attempt, signed. */
  timestamp: number;
  body: string;
  secrets: readonly Uint8Array[];
  eventType: string;
  attempt: number;
}

/**
 * How an attempt's owner gives up on it early (shutdown), and how the sender ends it when its time
 * budget is spent: an AbortController without the EventTarget machinery, one listener at most.
 */
export class AttemptControl {
  aborted = false;
  reason: Error | null = null;
  private listener: ((reason: Error) => void) | null = null;

  abort(reason: Error): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    this.listener?.(reason);
  }

  onAbort(listener: ((reason: Error) => void) | null): void {
    this.listener = listener;
    if (listener && this.aborted) listener(this.reason as Error);
  }
}

/** What sends attempts: in this thread ({@link WebhookSender}) or in the sender thread. */
export interface Transport {
  send(request: AttemptRequest, control: AttemptControl): Promise<SendOutcome>;
  /** Gets ready to send (starts a thread, say) before the first attempt needs it. */
  warm?(): Promise<void>;
  close(): Promise<void>;
}

export interface SenderOptions {
  policy: EgressPolicy;
  /** The whole attempt: connect, send, headers and the (capped) response body. */
  requestTimeoutMs: number;
  connectTimeoutMs: number;
  /** Extra trusted CAs (tests with a self-signed receiver). */
  ca?: string | Buffer | Array<string | Buffer>;
  userAgent: string;
}

class AttemptTimeout extends Error {
  constructor(ms: number) {
    super(`no complete response within ${ms} ms`);
    this.name = 'AttemptTimeout';
  }
}

interface Target {
  origin: string;
  path: string;
}

/**
 * One HTTP client for all webhook attempts: undici with the SSRF-guarded connector, keep-alive
 * connections per origin, no redirects (a 3xx is a failure), a total time budget per attempt and
 * at most 4 KiB of the response body read.
 */
export class WebhookSender implements Transport {
  private readonly agent: Agent;
  /** Parsed subscription URLs: a handful of endpoints take nearly every attempt. */
  private readonly targets = new Map<string, Target | Error>();

  constructor(private readonly options: SenderOptions) {
    this.agent = new Agent({
      connect: guardedConnector(options.policy, {
        connectTimeoutMs: options.connectTimeoutMs,
        ca: options.ca,
      }),
      keepAliveTimeout: 4_000,
      headersTimeout: options.requestTimeoutMs,
      bodyTimeout: options.requestTimeoutMs,
    });
  }

  private target(url: string): Target | Error {
    let target = this.targets.get(url);
    if (target === undefined) {
      try {
        const parsed = new URL(url);
        // Checked at every send, not only when the subscription was made: an operator who turns
        // plain http off expects no more cleartext deliveries, to old subscriptions either.
        target =
          parsed.protocol === 'http:' && !this.options.policy.allowHttp
            ? new BlockedAddressError(
                parsed.hostname,
                parsed.hostname,
                'plain http is not enabled on this service',
              )
            : { origin: parsed.origin, path: `${parsed.pathname}${parsed.search}` };
      } catch (error) {
        target = error as Error;
      }
      if (this.targets.size >= 10_000) this.targets.clear();
      this.targets.set(url, target);
    }
    return target;
  }

  /**
   * One attempt. `control` is the attempt's own: the sender aborts it when the time budget is
   * spent, and its owner aborts it to give up early (shutdown). Uses undici's handler interface
   * directly: the response body is counted, its first 4 KiB kept, with no stream in between.
   */
  send(request: AttemptRequest, control: AttemptControl = new AttemptControl()): Promise<SendOutcome> {
    const started = performance.now();
    const { requestTimeoutMs } = this.options;
    return new Promise<SendOutcome>((resolve) => {
      let settled = false;
      let timedOut = false;
      let dispatched: { abort(reason: Error): void } | null = null;
      let status = 0;
      let retryAfter: string | undefined;
      let parts: Buffer[] | null = null;
      let kept = 0;
      let seen = 0;
      const finish = (outcome: Omit<SendOutcome, 'latencyMs'>) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        control.onAbort(null);
        (outcome as SendOutcome).latencyMs = Math.round(performance.now() - started);
        resolve(outcome as SendOutcome);
      };
      const fail = (error: unknown) => {
        const classified = classifyError(error, timedOut);
        finish({
          ok: false,
          statusCode: null,
          errorClass: classified.errorClass,
          errorMessage: classified.message,
          responseBody: null,
          retryAfter: undefined,
          timedOut: classified.errorClass === 'timeout',
        });
      };
      const answered = () => {
        const ok = status >= 200 && status < 300;
        finish({
          ok,
          statusCode: status,
          errorClass: ok ? null : 'http',
          errorMessage: ok
            ? null
            : status >= 300 && status < 400
              ? `HTTP ${status}: redirects are not followed`
              : `HTTP ${status}`,
          responseBody: parts === null ? '' : Buffer.concat(parts).toString('utf8'),
          retryAfter,
          timedOut: false,
        });
      };
      const timer = setTimeout(() => {
        timedOut = true;
        control.abort(new AttemptTimeout(requestTimeoutMs));
      }, requestTimeoutMs);
      control.onAbort((reason) => {
        dispatched?.abort(reason);
        fail(reason);
      });
      if (settled) return;
      const target = this.target(request.url);
      if (target instanceof Error) {
        fail(target);
        return;
      }
      const { messageId, timestamp, body } = request;
      this.agent.dispatch(
        {
          origin: target.origin,
          path: target.path,
          method: 'POST',
          headers: [
            'content-type',
            'application/json',
            'user-agent',
            this.options.userAgent,
            'webhook-id',
            messageId,
            'webhook-timestamp',
            String(timestamp),
            'webhook-signature',
            signatureHeader(request.secrets, messageId, timestamp, body),
            'webhook-event-type',
            request.eventType,
            'webhook-attempt',
            String(request.attempt),
          ],
          body,
          headersTimeout: requestTimeoutMs,
          bodyTimeout: requestTimeoutMs,
        },
        {
          onRequestStart: (dispatchController) => {
            dispatched = dispatchController;
            if (settled) dispatchController.abort(new Error('attempt already over'));
          },
          onResponseStart: (_dispatchController, statusCode, responseHeaders) => {
            status = statusCode;
            const value = responseHeaders['retry-after'];
            retryAfter = Array.isArray(value) ? value[0] : value;
          },
          onResponseData: (dispatchController, chunk) => {
            seen += chunk.length;
            const room = RESPONSE_BODY_LIMIT - kept;
            if (room > 0) {
              const piece = chunk.length > room ? chunk.subarray(0, room) : chunk;
              if (parts === null) parts = [piece];
              else parts.push(piece);
              kept += piece.length;
            }
            // Nobody needs an endless answer; past this, give up the connection instead.
            if (seen > 1024 * 1024) dispatchController.abort(new Error('response body over 1 MiB'));
          },
          onResponseEnd: answered,
          onResponseError: (_dispatchController, error) => {
            if (status !== 0 && seen > 1024 * 1024) {
              answered();
              return;
            }
            fail(error);
          },
        },
      );
    });
  }

  async close(): Promise<void> {
    await this.agent.destroy().catch(() => {});
  }
}

const TLS_CODES =
  /^(ERR_TLS_|ERR_SSL_|CERT_|UNABLE_TO_|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|HOSTNAME_MISMATCH|EPROTO)/;

/** The attempt log's error class for a failure without an HTTP response. */
export function classifyError(
  error: unknown,
  timedOut: boolean,
): { errorClass: ErrorClass; message: string } {
  const e = error as { code?: string; name?: string; message?: string; cause?: unknown };
  const inner = (e?.cause as { code?: string; message?: string } | undefined) ?? undefined;
  const code = e?.code ?? inner?.code ?? '';
  const message = e?.message ?? String(error);
  if (code === 'WEBHOOK_ADDRESS_BLOCKED') return { errorClass: 'blocked', message };
  if (timedOut || e?.name === 'AttemptTimeout') return { errorClass: 'timeout', message };
  if (/^(ENOTFOUND|EAI_|ENODATA|ESERVFAIL|EREFUSED|ENOTIMP|ECONNREFUSED_DNS)/.test(code) && code !== '') {
    return { errorClass: 'dns', message };
  }
  if (
    code === 'UND_ERR_CONNECT_TIMEOUT' ||
    code === 'UND_ERR_HEADERS_TIMEOUT' ||
    code === 'UND_ERR_BODY_TIMEOUT' ||
    code === 'ETIMEDOUT'
  ) {
    return { errorClass: 'timeout', message };
  }
  if (TLS_CODES.test(code)) return { errorClass: 'tls', message };
  return { errorClass: 'connect', message: code ? `${code}: ${message}` : message };
}
