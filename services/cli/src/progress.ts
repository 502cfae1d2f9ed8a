/**
 * Progress of a long run: on a terminal, one line redrawn in place with a bar, the rate and the
 * time left; elsewhere (a pipe, a CI log), a plain line every few seconds.
 */
export interface ProgressStream {
  isTTY?: boolean;
  columns?: number;
  write(chunk: string): unknown;
}

export interface Progress {
  update(done: number, total: number | null): void;
  finish(done: number, total?: number | null): void;
}

export interface ProgressOptions {
  label: string;
  unit: string;
  now?: () => number;
  /** Between two redraws on a terminal (default 100 ms). */
  redrawMs?: number;
  /** Between two plain lines elsewhere (default 2 s). */
  lineMs?: number;
}

const group = (n: number) => Math.round(n).toLocaleString('en-US');

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

export function createProgress(stream: ProgressStream, options: ProgressOptions): Progress {
  const now = options.now ?? (() => performance.now());
  const started = now();
  const tty = stream.isTTY === true;
  const every = tty ? (options.redrawMs ?? 100) : (options.lineMs ?? 2000);
  let last = Number.NEGATIVE_INFINITY;

  const describe = (done: number, total: number | null) => {
    const elapsed = Math.max((now() - started) / 1000, 1e-6);
    const rate = done / elapsed;
    const fraction = total && total > 0 ? Math.min(1, done / total) : null;
    const eta = fraction !== null && rate > 0 ? formatDuration(((total as number) - done) / rate) : '?';
    return { rate, fraction, eta, elapsed };
  };

  const render = (done: number, total: number | null, final: boolean) => {
    const { rate, fraction, eta, elapsed } = describe(done, total);
    const counts = total ? `${group(done)}/${group(total)}` : group(done);
    if (tty) {
      const width = Math.max(10, Math.min(40, (stream.columns ?? 80) - 70));
      const filled = fraction === null ? 0 : Math.round(fraction * width);
      const bar =
        fraction === null ? '?'.repeat(width) : `${'#'.repeat(filled)}${'-'.repeat(width - filled)}`;
      const percent = fraction === null ? '  ?%' : `${String(Math.floor(fraction * 100)).padStart(3)}%`;
      const tail = final ? `in ${formatDuration(elapsed)}` : `ETA ${eta}`;
      stream.write(
        `\r${options.label} [${bar}] ${percent} ${counts} ${options.unit} ${group(rate)} ${options.unit}/s ${tail}\x1b[K${final ? '\n' : ''}`,
      );
    } else {
      const percent = fraction === null ? '' : ` (${Math.floor(fraction * 100)}%)`;
      const tail = final ? `done in ${formatDuration(elapsed)}` : `ETA ${eta}`;
      stream.write(
        `${options.label}: ${counts} ${options.unit}${percent}, ${group(rate)} ${options.unit}/s, ${tail}\n`,
      );
    }
  };

  return {
    update(done, total) {
      const t = now();
      if (t - last < every) return;
      last = t;
      render(done, total, false);
    },
    finish(done, total = null) {
      render(done, total, true);
    },
  };
}
