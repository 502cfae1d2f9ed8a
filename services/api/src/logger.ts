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
