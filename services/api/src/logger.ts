import { type DestinationStream, type Logger, pino } from 'pino';
import type { Config } from './config.js';

/** Paths that never reach a log line: keys, secrets and credentials, wherever they appear. */
export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-api-key"]',
  'headers.authorization',
  'authorization',
  'key',
  'apiKey',
  'secret',
  'secrets',
  'password',
  'connectionString',
  '*.key',
  '*.apiKey',
  '*.secret',
  '*.secrets',
  '*.password',
  '*.authorization',
  '*.connectionString',
  '*.bootstrapAdminKey',
  '*.databaseUrl',
  '*.esdbConnectionString',
  '*.webhookSecretKey',
  'secretKey',
  '*.secretKey',
];

export function createLogger(config: Pick<Config, 'logLevel'>, destination?: DestinationStream): Logger {
  return pino(
    {
      level: config.logLevel,
      base: { service: 'muster-api' },
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination,
  );
}

export type { Logger };

type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';

/**
 * fastify's `childLoggerFactory`: a request's logger whose pino child is made only when the request
 * logs something at an enabled level. Most requests log nothing at `warn`, and making a child with
 * redaction costs each of them several microseconds; what is logged is the same either way.
 */
export function lazyRequestLogger(
  parent: Logger,
  bindings: Parameters<Logger['child']>[0],
  options?: Parameters<Logger['child']>[1],
): Logger {
  let child: Logger | undefined;
  const real = (): Logger => {
    if (child === undefined) child = parent.child(bindings, options) as unknown as Logger;
    return child;
  };
  const at =
    (level: LogLevel) =>
    (...args: unknown[]): void => {
      if (child !== undefined || parent.isLevelEnabled(level))
        (real()[level] as (...a: unknown[]) => void)(...args);
    };
  return {
    get level() {
      return child?.level ?? parent.level;
    },
    set level(value: string) {
      real().level = value;
    },
    fatal: at('fatal'),
    error: at('error'),
    warn: at('warn'),
    info: at('info'),
    debug: at('debug'),
    trace: at('trace'),
    silent: () => {},
    isLevelEnabled: (level: string) => (child ?? parent).isLevelEnabled(level),
    child: (more: Parameters<Logger['child']>[0], moreOptions?: Parameters<Logger['child']>[1]) =>
      real().child(more, moreOptions),
    bindings: () => real().bindings(),
  } as unknown as Logger;
}
