import { EventStoreDBClient } from '@eventstore/db-client';
import { InvalidConnectionStringError } from './errors.js';

/**
 * KurrentDB kept the connection string format and renamed its scheme; @eventstore/db-client 6.x
 * only parses `esdb://` and `esdb+discover://`, so the new spelling is rewritten.
 */
export function normaliseConnectionString(value: unknown): string {
  if (typeof value !== 'string' || value.trim() === '') {
    throw new InvalidConnectionStringError('it is empty');
  }
  const trimmed = value.trim();
  const kurrent = /^kurrentdb(\+discover)?:\/\//i.exec(trimmed);
  if (kurrent) return `esdb${kurrent[1] ?? ''}://${trimmed.slice(kurrent[0].length)}`;
  if (!/^esdb(\+discover)?:\/\//i.test(trimmed)) {
    throw new InvalidConnectionStringError(
      'it must start with esdb://, esdb+discover://, kurrentdb:// or kurrentdb+discover://',
    );
  }
  return trimmed;
}

/** Builds the client; nothing is sent until the first call. */
export function createEsdbClient(connectionString: unknown): EventStoreDBClient {
  const normalised = normaliseConnectionString(connectionString);
  try {
    return EventStoreDBClient.connectionString(normalised);
  } catch (error) {
    // No `cause`: the parser's message may quote the string, credentials included.
    const reason = error instanceof Error ? error.message : String(error);
    throw new InvalidConnectionStringError(redactCredentials(reason));
  }
}

export function redactCredentials(text: string): string {
  return text.replace(/\/\/[^@\s/]*@/g, '//***@');
}
