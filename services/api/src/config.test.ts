import { describe, expect, it } from 'vitest';
import { CONFIG_VARIABLES, ConfigError, defaultPublicUrl, loadConfig, unknownVariables } from './config.js';

describe('loadConfig', () => {
  it('applies defaults for an empty environment and freezes the result', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      port: 3000,
      host: '127.0.0.1',
      store: 'sqlite',
      sqlitePath: './data/muster.db',
      demo: false,
      bodyLimitBytes: 1024 * 1024,
      heapGrowthPercent: 50,
    });
    expect(Object.isFrozen(config)).toBe(true);
  });

  it('reads every variable it documents', () => {
    const config = loadConfig({
      PORT: '8080',
      HOST: '0.0.0.0',
      MUSTER_STORE: 'postgres',
      DATABASE_URL: 'postgres://u@localhost/db',
      MUSTER_DEMO: 'true',
      MUSTER_WEBHOOK_ALLOW_CIDRS: '127.0.0.0/8, ::1/128',
    });
    expect(config).toMatchObject({ port: 8080, host: '0.0.0.0', store: 'postgres', demo: true });
    expect(config.webhookAllowCidrs).toEqual(['127.0.0.0/8', '::1/128']);
    expect(CONFIG_VARIABLES).toContain('MUSTER_SQLITE_PATH');
  });

  it('reports every problem at once, naming each variable', () => {
    let error: unknown;
    try {
      loadConfig({
        PORT: 'eighty',
        MUSTER_STORE: 'postgres',
        LOG_LEVEL: 'loud',
        MUSTER_BOOTSTRAP_ADMIN_KEY: 'short',
      });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const variables = (error as ConfigError).problems.map((p) => p.variable).sort();
    expect(variables).toEqual(['DATABASE_URL', 'LOG_LEVEL', 'MUSTER_BOOTSTRAP_ADMIN_KEY', 'PORT']);
    expect((error as ConfigError).message).toContain('DATABASE_URL: required when MUSTER_STORE=postgres');
  });

  it('takes a heap growth from 0 (V8 own policy) to 400 percent, whole numbers only', () => {
    expect(loadConfig({ MUSTER_HEAP_GROWTH_PERCENT: '0' }).heapGrowthPercent).toBe(0);
    expect(loadConfig({ MUSTER_HEAP_GROWTH_PERCENT: '400' }).heapGrowthPercent).toBe(400);
    for (const bad of ['-1', '401', '12.5', 'lots']) {
      expect(() => loadConfig({ MUSTER_HEAP_GROWTH_PERCENT: bad })).toThrow(/MUSTER_HEAP_GROWTH_PERCENT/);
    }
  });

  it('reads numbers in plain decimal only; a blank one is unset, not 0', () => {
    const blank = loadConfig({
      PORT: '',
      MUSTER_RATE_LIMIT_PER_MINUTE: ' ',
      MUSTER_DATABASE_QUERY_TIMEOUT_MS: '',
      MUSTER_HEAP_GROWTH_PERCENT: '',
    });
    expect(blank).toMatchObject({
      port: 3000,
      rateLimitPerMinute: 6000,
      databaseQueryTimeoutMs: 30_000,
      heapGrowthPercent: loadConfig({}).heapGrowthPercent,
    });
    for (const [variable, bad] of [
      ['PORT', '0x50'],
      ['PORT', '1e3'],
      ['PORT', '80.0'],
      ['PORT', '65536'],
      ['MUSTER_REQUEST_TIMEOUT_MS', '3000000000'],
      ['MUSTER_SHUTDOWN_TIMEOUT_MS', '0'],
      ['MUSTER_RATE_LIMIT_PER_MINUTE', '-5'],
    ]) {
      expect(() => loadConfig({ [variable as string]: bad }), `${variable}=${bad}`).toThrow(
        new RegExp(`${variable}: must be a whole number`),
      );
    }
    expect(loadConfig({ PORT: ' 8080 ' }).port).toBe(8080);
  });

  it('names MUSTER_ variables it does not read, so a misspelling does not pass unnoticed', () => {
    expect(
      unknownVariables({ MUSTER_SQLITE_PTH: 'x', MUSTER_DEMO: '1', MUSTER_DEMOO: '1', PATH: '/bin' }),
    ).toEqual(['MUSTER_DEMOO', 'MUSTER_SQLITE_PTH']);
  });

  it('rejects a connection string of the wrong scheme', () => {
    expect(() => loadConfig({ MUSTER_STORE: 'postgres', DATABASE_URL: 'mysql://x' })).toThrow(/DATABASE_URL/);
    expect(() => loadConfig({ MUSTER_STORE: 'esdb', ESDB_CONNECTION_STRING: 'http://x' })).toThrow(
      /ESDB_CONNECTION_STRING/,
    );
  });
});

describe('defaultPublicUrl', () => {
  it('names the address listened on: localhost for a wildcard, an IPv6 address in brackets', () => {
    expect(defaultPublicUrl({ host: '0.0.0.0', port: 3000 })).toBe('http://localhost:3000');
    expect(defaultPublicUrl({ host: '::', port: 3000 })).toBe('http://localhost:3000');
    expect(defaultPublicUrl({ host: '127.0.0.1', port: 3000 })).toBe('http://127.0.0.1:3000');
    expect(defaultPublicUrl({ host: '10.0.0.5', port: 8080 })).toBe('http://10.0.0.5:8080');
    expect(defaultPublicUrl({ host: 'fd00::5', port: 8080 })).toBe('http://[fd00::5]:8080');
    expect(defaultPublicUrl({ host: 'muster.internal', port: 80 })).toBe('http://muster.internal:80');
  });
});
