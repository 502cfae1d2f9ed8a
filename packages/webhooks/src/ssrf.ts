import type { LookupAddress } from 'node:dns';
import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP, type LookupFunction } from 'node:net';
import { buildConnector } from 'undici';
import { validationError, WebhookError } from './errors.js';
import { type Cidr, checkAddress, parseCidr } from './ip-ranges.js';

/** Resolves a host name to every address it has (the DNS step of the guard; tests inject one). */
export type Resolver = (hostname: string) => Promise<LookupAddress[]>;

export const systemResolver: Resolver = (hostname) => dnsLookup(hostname, { all: true, verbatim: true });

/** The outbound policy: which schemes and which addresses webhooks may reach. */
export interface EgressPolicy {
  allowHttp: boolean;
  allow: readonly Cidr[];
  resolve: Resolver;
}

export function egressPolicy(options: {
  allowHttp?: boolean;
  allowCidrs?: readonly string[];
  resolve?: Resolver;
}): EgressPolicy {
  const allow: Cidr[] = [];
  const problems: string[] = [];
  for (const text of options.allowCidrs ?? []) {
    try {
      allow.push(parseCidr(text));
    } catch (error) {
      problems.push((error as Error).message);
    }
  }
  if (problems.length > 0) {
    throw new WebhookError('webhook-invalid-config', `allowCidrs: ${problems.join('; ')}`, { problems });
  }
  return { allowHttp: options.allowHttp ?? false, allow, resolve: options.resolve ?? systemResolver };
}

/** Raised at connect time when an address is refused; the attempt log classes it as `blocked`. */
export class BlockedAddressError extends Error {
  readonly code = 'WEBHOOK_ADDRESS_BLOCKED';

  constructor(
    readonly hostname: string,
    readonly address: string,
    readonly reason: string,
  ) {
    super(
      address === hostname
        ? `${address} is not allowed (${reason})`
        : `${hostname} resolves to ${address}, which is not allowed (${reason})`,
    );
    this.name = 'BlockedAddressError';
  }
}

/** Resolves `hostname` and refuses the lot when any address is refused (no picking the safe one). */
export async function resolveAllowed(hostname: string, policy: EgressPolicy): Promise<LookupAddress[]> {
  const literal = isIP(hostname);
  const addresses = literal ? [{ address: hostname, family: literal }] : await policy.resolve(hostname);
  if (addresses.length === 0) {
    throw Object.assign(new Error(`${hostname} has no addresses`), { code: 'ENOTFOUND' });
  }
  for (const { address } of addresses) {
    const verdict = checkAddress(address, policy.allow);
    if (!verdict.allowed) throw new BlockedAddressError(hostname, address, verdict.reason);
  }
  return addresses;
}

/**
 * A `lookup` for `net.connect`/`tls.connect`: the addresses a socket connects to are the ones that
 * passed the check, in the same call, so a name that changes its answer between the check and the
 * connection (DNS rebinding) cannot slip through.
 */
export function guardedLookup(policy: EgressPolicy): LookupFunction {
  return (hostname, options, callback) => {
    resolveAllowed(hostname, policy).then(
      (addresses) => {
        const wanted = options.family === 4 || options.family === 6 ? options.family : 0;
        const usable = wanted === 0 ? addresses : addresses.filter((a) => a.family === wanted);
        if (usable.length === 0) {
          const error = Object.assign(new Error(`${hostname} has no IPv${wanted} address`), {
            code: 'ENOTFOUND',
          });
          callback(error, '', 0);
          return;
        }
        if (options.all) {
          (callback as unknown as (err: null, addresses: LookupAddress[]) => void)(null, usable);
        } else {
          const first = usable[0] as LookupAddress;
          callback(null, first.address, first.family);
        }
      },
      (error: NodeJS.ErrnoException) => callback(error, '', 0),
    );
  };
}

/**
 * An undici connector that checks every address at connect time: literal IPs before connecting
 * (the socket does no lookup for them), names through the guarded lookup, and the peer address
 * of the connected socket once more.
 */
export function guardedConnector(
  policy: EgressPolicy,
  options: { connectTimeoutMs: number; ca?: string | Buffer | Array<string | Buffer> },
): buildConnector.connector {
  const connect = buildConnector({
    timeout: options.connectTimeoutMs,
    lookup: guardedLookup(policy),
    ...(options.ca ? { ca: options.ca } : {}),
  });
  return (connectOptions, callback) => {
    const { hostname } = connectOptions;
    if (isIP(hostname)) {
      const verdict = checkAddress(hostname, policy.allow);
      if (!verdict.allowed) {
        callback(new BlockedAddressError(hostname, hostname, verdict.reason), null);
        return;
      }
    }
    connect(connectOptions, (error, socket) => {
      if (error || !socket) {
        callback(error ?? new Error('connect failed'), null);
        return;
      }
      const peer = socket.remoteAddress;
      const verdict = peer ? checkAddress(peer, policy.allow) : { allowed: true as const };
      if (!verdict.allowed) {
        socket.destroy();
        callback(new BlockedAddressError(hostname, peer as string, verdict.reason), null);
        return;
      }
      callback(null, socket);
    });
  };
}

/**
 * Checks a subscription URL when it is created or changed: absolute http(s), no credentials,
 * https unless allowed, and a host whose every address is allowed now. The dispatcher checks
 * again at every connection.
 */
export async function validateWebhookUrl(raw: unknown, policy: EgressPolicy): Promise<string> {
  if (typeof raw !== 'string' || raw.trim() === '') {
    throw validationError([
      {
        path: 'url',
        message: 'required, an absolute https URL',
        code: typeof raw !== 'string' ? 'invalid_type' : 'invalid_format',
        in: 'body',
      },
    ]);
  }
  if (raw.length > 2048) {
    throw validationError([{ path: 'url', message: 'at most 2048 characters', code: 'too_big', in: 'body' }]);
  }
  let url: URL;
  try {
    url = new URL(raw.trim());
  } catch {
    throw validationError([
      { path: 'url', message: 'not an absolute URL', code: 'invalid_format', in: 'body' },
    ]);
  }
  // A refusal names the URL without its credentials: an answer (and the logs) must not echo a password.
  const shown = new URL(url);
  shown.username = '';
  shown.password = '';
  const refuse = (reason: string, extra: Record<string, unknown> = {}) =>
    new WebhookError('webhook-url-not-allowed', `url: ${reason}`, { url: shown.toString(), ...extra });
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw refuse(`the scheme must be https (got ${url.protocol.replace(/:$/, '')})`);
  }
  if (url.protocol === 'http:' && !policy.allowHttp) {
    throw refuse('the scheme must be https (plain http is not enabled on this service)');
  }
  if (url.username !== '' || url.password !== '') {
    throw refuse('credentials in the URL are not allowed; verify the signature instead');
  }
  url.hash = '';
  const hostname = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  try {
    await resolveAllowed(hostname, policy);
  } catch (error) {
    if (error instanceof BlockedAddressError) {
      throw refuse(error.message, { address: error.address, reason: error.reason });
    }
    const code = (error as { code?: string }).code;
    throw refuse(`the host ${hostname} cannot be resolved (${code ?? (error as Error).message})`);
  }
  return url.toString();
}
