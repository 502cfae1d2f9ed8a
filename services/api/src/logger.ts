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

type ChildBindings = Parameters<Logger['child']>[0];
type ChildOptions = Parameters<Logger['child']>[1];

/**
 * fastify's `childLoggerFactory`: a request's logger whose pino child is made only when the request
 * logs something at an enabled level. Most requests log nothing at `warn`, and making a child with
 * redaction costs each of them several microseconds; what is logged is the same either way.
 */
export function lazyRequestLogger(parent: Logger, bindings: ChildBindings, options?: ChildOptions): Logger {
  return new LazyChildLogger(parent, bindings, options) as unknown as Logger;
}

/** A class, so that a request pays for one small object rather than a closure per method. */
class LazyChildLogger {
  private made: Logger | undefined;

  constructor(
    private readonly parent: Logger,
    private readonly childBindings: ChildBindings,
    private readonly childOptions: ChildOptions,
  ) {}

  private real(): Logger {
    if (this.made === undefined)
      this.made = this.parent.child(this.childBindings, this.childOptions) as unknown as Logger;
    return this.made;
  }

  private log(level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace', args: unknown[]): void {
    if (this.made !== undefined || this.parent.isLevelEnabled(level))
      (this.real()[level] as (...a: unknown[]) => void)(...args);
  }

  get level(): string {
    return (this.made ?? this.parent).level;
  }

  set level(value: string) {
    this.real().level = value;
  }

  fatal(...args: unknown[]): void {
    this.log('fatal', args);
  }

  error(...args: unknown[]): void {
    this.log('error', args);
  }

  warn(...args: unknown[]): void {
    this.log('warn', args);
  }

  info(...args: unknown[]): void {
    this.log('info', args);
  }

  debug(...args: unknown[]): void {
    this.log('debug', args);
  }

  trace(...args: unknown[]): void {
    this.log('trace', args);
  }

  silent(): void {}

  isLevelEnabled(level: string): boolean {
    return (this.made ?? this.parent).isLevelEnabled(level);
  }

  child(bindings: ChildBindings, options?: ChildOptions): Logger {
    return this.real().child(bindings, options) as unknown as Logger;
  }

  bindings(): ChildBindings {
    return this.real().bindings();
  }
}
