import { Agent } from 'undici';
import { type EgressPolicy, guardedConnector } from './ssrf.js';
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

/**
 * One HTTP client for all webhook attempts: undici with the SSRF-guarded connector, keep-alive
 * connections per origin, no redirects (a 3xx is a failure), a total time budget per attempt and
 * at most 4 KiB of the response body read.
 */
export class WebhookSender {
  private readonly agent: Agent;

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

  /**
   * One attempt. `controller` is the attempt's own: the sender aborts it when the time budget is
   * spent, and its owner aborts it to give up early (shutdown). Uses undici's handler interface
   * directly: the response body is counted, its first 4 KiB kept, with no stream in between.
   */
  send(
    url: string,
    headers: Record<string, string>,
    body: string,
    controller: AbortController = new AbortController(),
  ): Promise<SendOutcome> {
    const started = performance.now();
    const elapsed = () => Math.round(performance.now() - started);
    return new Promise<SendOutcome>((resolve) => {
      let settled = false;
      let timedOut = false;
      let request: { abort(reason: Error): void } | null = null;
      let status = 0;
      let retryAfter: string | undefined;
      const parts: Buffer[] = [];
      let kept = 0;
      let seen = 0;
      const finish = (outcome: Omit<SendOutcome, 'latencyMs'>) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        controller.signal.removeEventListener('abort', onAbort);
        resolve({ ...outcome, latencyMs: elapsed() });
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
      const onAbort = () => {
        const reason =
          controller.signal.reason instanceof Error ? controller.signal.reason : new Error('aborted');
        request?.abort(reason);
        fail(reason);
      };
      const timer = setTimeout(() => {
        timedOut = true;
        controller.abort(new AttemptTimeout(this.options.requestTimeoutMs));
      }, this.options.requestTimeoutMs);
      controller.signal.addEventListener('abort', onAbort, { once: true });
      let target: URL;
      try {
        target = new URL(url);
      } catch (error) {
        fail(error);
        return;
      }
      this.agent.dispatch(
        {
          origin: target.origin,
          path: `${target.pathname}${target.search}`,
          method: 'POST',
          headers: { 'content-type': 'application/json', 'user-agent': this.options.userAgent, ...headers },
          body,
          headersTimeout: this.options.requestTimeoutMs,
          bodyTimeout: this.options.requestTimeoutMs,
        },
        {
          onRequestStart: (dispatchController) => {
            request = dispatchController;
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
              parts.push(piece);
              kept += piece.length;
            }
            // Nobody needs an endless answer; past this, give up the connection instead.
            if (seen > 1024 * 1024) dispatchController.abort(new Error('response body over 1 MiB'));
          },
          onResponseEnd: () => {
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
              responseBody: Buffer.concat(parts).toString('utf8'),
              retryAfter,
              timedOut: false,
            });
          },
          onResponseError: (_dispatchController, error) => {
            if (status !== 0 && seen > 1024 * 1024) {
              finish({
                ok: status >= 200 && status < 300,
                statusCode: status,
                errorClass: status >= 200 && status < 300 ? null : 'http',
                errorMessage: status >= 200 && status < 300 ? null : `HTTP ${status}`,
                responseBody: Buffer.concat(parts).toString('utf8'),
                retryAfter,
                timedOut: false,
              });
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
