import { Agent, request } from 'undici';
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

  async send(
    url: string,
    headers: Record<string, string>,
    body: string,
    abort?: AbortSignal,
  ): Promise<SendOutcome> {
    const started = performance.now();
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort(new AttemptTimeout(this.options.requestTimeoutMs));
    }, this.options.requestTimeoutMs);
    const onAbort = () => controller.abort(abort?.reason);
    abort?.addEventListener('abort', onAbort, { once: true });
    const elapsed = () => Math.round(performance.now() - started);
    try {
      const response = await request(url, {
        method: 'POST',
        dispatcher: this.agent,
        headers: { 'content-type': 'application/json', 'user-agent': this.options.userAgent, ...headers },
        body,
        signal: controller.signal,
      });
      const responseBody = await readCapped(response.body);
      const status = response.statusCode;
      const ok = status >= 200 && status < 300;
      const retryAfter = response.headers['retry-after'];
      return {
        ok,
        statusCode: status,
        errorClass: ok ? null : 'http',
        errorMessage: ok
          ? null
          : status >= 300 && status < 400
            ? `HTTP ${status}: redirects are not followed`
            : `HTTP ${status}`,
        responseBody,
        retryAfter: Array.isArray(retryAfter) ? retryAfter[0] : retryAfter,
        timedOut: false,
        latencyMs: elapsed(),
      };
    } catch (error) {
      const classified = classifyError(error, timedOut);
      return {
        ok: false,
        statusCode: null,
        errorClass: classified.errorClass,
        errorMessage: classified.message,
        responseBody: null,
        retryAfter: undefined,
        timedOut: classified.errorClass === 'timeout',
        latencyMs: elapsed(),
      };
    } finally {
      clearTimeout(timer);
      abort?.removeEventListener('abort', onAbort);
    }
  }

  async close(): Promise<void> {
    await this.agent.destroy().catch(() => {});
  }
}

async function readCapped(body: AsyncIterable<Buffer> & { destroy(): void }): Promise<string> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    const room = RESPONSE_BODY_LIMIT - size;
    if (room > 0) {
      const piece = chunk.length > room ? chunk.subarray(0, room) : chunk;
      parts.push(piece);
      size += piece.length;
    }
    if (size >= RESPONSE_BODY_LIMIT) {
      // The rest is not needed; closing the stream costs this connection its keep-alive.
      body.destroy();
      break;
    }
  }
  return Buffer.concat(parts).toString('utf8');
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
