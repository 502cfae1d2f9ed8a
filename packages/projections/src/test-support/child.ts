import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const PACKAGE_ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** A child process running one of this folder's scripts, with its output lines. */
export interface ChildRunner {
  readonly process: ChildProcess;
  readonly lines: string[];
  waitFor(predicate: (line: string) => boolean, timeoutMs?: number): Promise<string>;
  kill(signal: NodeJS.Signals): Promise<void>;
}

/** A projection runner in a child process (see child-runner.ts). */
export function spawnRunner(args: readonly string[]): ChildRunner {
  return spawnChild('child-runner.ts', 'child runner', args);
}

/** A rebuild in a child process (see child-rebuilder.ts). */
export function spawnRebuilder(args: readonly string[]): ChildRunner {
  return spawnChild('child-rebuilder.ts', 'child rebuilder', args);
}

function spawnChild(script: string, label: string, args: readonly string[]): ChildRunner {
  const path = fileURLToPath(new URL(`./${script}`, import.meta.url));
  const child = spawn(process.execPath, ['--conditions=@muster/source', '--import', 'tsx', path, ...args], {
    cwd: PACKAGE_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const waiters = new Set<() => void>();
  let buffer = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    buffer += chunk.toString();
    const parts = buffer.split('\n');
    buffer = parts.pop() ?? '';
    lines.push(...parts);
    for (const wake of [...waiters]) wake();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  // 'close' comes after the last of its output: a line written just before it exits is seen.
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  return {
    process: child,
    lines,
    waitFor(predicate, timeoutMs = 30_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const found = lines.find(predicate);
          if (found !== undefined) {
            cleanup();
            resolve(found);
          }
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(
            new Error(
              `${label}: timed out; stdout ${lines.slice(-5).join(' | ')}; stderr ${stderr.slice(-2000)}`,
            ),
          );
        }, timeoutMs);
        const onExit = () => {
          cleanup();
          reject(
            new Error(
              `${label} exited (${child.exitCode}): ${lines.slice(-5).join(' | ')} ${stderr.slice(-2000)}`,
            ),
          );
        };
        const cleanup = () => {
          clearTimeout(timer);
          waiters.delete(check);
          child.off('close', onExit);
        };
        waiters.add(check);
        child.once('close', onExit);
        check();
      });
    },
    async kill(signal) {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
}
