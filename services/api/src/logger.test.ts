import { Writable } from 'node:stream';
import { describe, expect, it, vi } from 'vitest';
import { createLogger, lazyRequestLogger } from './logger.js';

function capture(level: string) {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      lines.push(JSON.parse(String(chunk)));
      done();
    },
  });
  return { lines, parent: createLogger({ logLevel: level as 'warn' }, sink) };
}

describe('the per-request logger', () => {
  it('makes no pino child for a request that logs only below the level', () => {
    const { lines, parent } = capture('warn');
    const child = vi.spyOn(parent, 'child');
    const log = lazyRequestLogger(parent, { reqId: 'r-1' }, {});
    log.info({ req: { url: '/x' } }, 'incoming request');
    log.debug('authenticated');
    expect(child).not.toHaveBeenCalled();
    expect(lines).toEqual([]);
    expect(log.level).toBe('warn');
  });

  it('logs at an enabled level with the request bindings, redacted as the service logger is', () => {
    const { lines, parent } = capture('info');
    const log = lazyRequestLogger(parent, { reqId: 'r-2' }, {});
    log.info({ headers: { authorization: 'Bearer secret' }, code: 'x' }, 'command refused');
    log.warn('slow');
    log.child({ component: 'inner' }).error('failed');
    expect(lines.map((l) => [l.msg, l.reqId, l.component])).toEqual([
      ['command refused', 'r-2', undefined],
      ['slow', 'r-2', undefined],
      ['failed', 'r-2', 'inner'],
    ]);
    expect(lines[0]?.headers).toEqual({ authorization: '[redacted]' });
    expect(JSON.stringify(lines)).not.toContain('secret');
  });

  it('follows a level set on it', () => {
    const { lines, parent } = capture('warn');
    const log = lazyRequestLogger(parent, { reqId: 'r-3' }, {});
    log.level = 'debug';
    log.debug('now visible');
    expect(lines.map((l) => [l.msg, l.reqId])).toEqual([['now visible', 'r-3']]);
    expect(parent.level).toBe('warn');
  });
});
