import type * as Fs from 'node:fs';

/**
 * A controllable `fdatasync` for the tests of the log's background syncs (SQLite's own fsyncs
 * inside COMMIT do not pass through node:fs, so only the log's are seen). A test file installs it:
 *
 *   vi.mock('node:fs', async (importOriginal) =>
 *     (await import('./test-support/log-syncs.js')).withLogSyncs(await importOriginal()));
 */
export const syncs = {
  started: 0,
  finished: 0,
  /** Every fsync from now on fails with this (after `delayMs`). */
  fail: null as NodeJS.ErrnoException | null,
  /** A slow disk: the fsync starts this much later. */
  delayMs: 0,
};

export function resetSyncs(): void {
  syncs.started = 0;
  syncs.finished = 0;
  syncs.fail = null;
  syncs.delayMs = 0;
}

export function withLogSyncs(fs: typeof Fs): Record<string, unknown> {
  const fdatasync = (fd: number, callback: (error: NodeJS.ErrnoException | null) => void) => {
    syncs.started++;
    const failure = syncs.fail;
    setTimeout(() => {
      if (failure) {
        callback(failure);
        return;
      }
      fs.fdatasync(fd, (error) => {
        syncs.finished++;
        callback(error);
      });
    }, syncs.delayMs);
  };
  return { ...fs, default: { ...fs, fdatasync }, fdatasync };
}
