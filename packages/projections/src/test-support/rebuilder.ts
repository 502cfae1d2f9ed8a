import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { ChildRunner } from './child.js';

const CHILD = fileURLToPath(new URL('./child-rebuilder.ts', import.meta.url));
const PACKAGE_ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** A rebuild in a child process (see child-rebuilder.ts), with its output lines. */
export function spawnRebuilder(args: readonly string[]): ChildRunner {
  const child = spawn(process.execPath, ['--conditions=@muster/source', '--import', 'tsx', CHILD, ...args], {
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
              `child rebuilder: timed out; stdout ${lines.join(' | ')}; stderr ${stderr.slice(-2000)}`,
            ),
          );
        }, timeoutMs);
        const onExit = () => {
          cleanup();
          reject(
            new Error(
              `child rebuilder exited (${child.exitCode}): ${lines.join(' | ')} ${stderr.slice(-2000)}`,
            ),
          );
        };
        const cleanup = () => {
          clearTimeout(timer);
          waiters.delete(check);
          child.off('close', onExit);
        };
        waiters.add(check);
        // 'close' comes after the last of its output: a line written just before it exits is seen.
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
