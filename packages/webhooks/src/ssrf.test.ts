import { describe, expect, it } from 'vitest';
import { isWebhookError } from './errors.js';
import { egressPolicy, validateWebhookUrl } from './ssrf.js';
import { sqliteBackend } from './test-support/databases.js';
import { change, produce } from './test-support/feed.js';
import { drain, harness, tableResolver } from './test-support/harness.js';

async function refusal(url: string, options: Parameters<typeof egressPolicy>[0] = {}): Promise<string> {
  try {
    await validateWebhookUrl(
      url,
      egressPolicy({ allowHttp: true, resolve: tableResolver(table), ...options }),
    );
  } catch (error) {
    if (isWebhookError(error) && error.code === 'webhook-url-not-allowed') return error.message;
    throw error;
  }
  throw new Error(`${url} was accepted`);
}

const table: Record<string, string[]> = {
  'internal.test': ['10.0.0.1'],
  'loopback.test': ['127.0.0.1'],
  'mixed.test': ['93.184.216.34', '192.168.1.10'],
  'metadata.test': ['169.254.169.254'],
  'v6.test': ['::ffff:127.0.0.1'],
  'public.test': ['93.184.216.34', '2606:2800:220:1:248:1893:25c8:1946'],
};

describe('SSRF guard at subscription time', () => {
  it.each([
    ['https://internal.test/hook', /10\.0\.0\.1.*private/],
    ['https://loopback.test/hook', /127\.0\.0\.1.*loopback/],
    ['https://mixed.test/hook', /192\.168\.1\.10.*private/],
    ['https://metadata.test/hook', /cloud metadata/],
    ['https://v6.test/hook', /IPv4-mapped form of 127\.0\.0\.1/],
    ['https://10.1.2.3/hook', /private/],
    ['http://169.254.169.254/latest/meta-data/', /cloud metadata/],
    ['https://[::1]/hook', /loopback/],
    ['https://[::ffff:7f00:1]/hook', /loopback/],
    ['https://[fd00:ec2::254]/hook', /cloud metadata/],
    ['https://[fe80::1]/hook', /link-local/],
    ['https://[64:ff9b::a00:1]/hook', /NAT64 form of 10\.0\.0\.1/],
    ['https://[2002:c0a8:101::1]/hook', /6to4 form of 192\.168\.1\.1/],
    ['https://100.64.0.1/hook', /CGNAT/],
    ['https://0.0.0.0/hook', /this network/],
    ['https://198.18.0.1/hook', /benchmarking/],
    ['https://[ff02::1]/hook', /multicast/],
    ['https://nowhere.test/hook', /cannot be resolved/],
  ])('refuses %s', async (url, reason) => {
    expect(await refusal(url)).toMatch(reason);
  });

  it('does not echo credentials of a URL it refuses for them', async () => {
    try {
      await validateWebhookUrl(
        'https://user:S3cret@public.test/hook',
        egressPolicy({ resolve: tableResolver(table) }),
      );
      throw new Error('accepted');
    } catch (error) {
      expect(isWebhookError(error) && error.code).toBe('webhook-url-not-allowed');
      expect(JSON.stringify({ message: (error as Error).message, ...(error as object) })).not.toMatch(
        /S3cret|user@/,
      );
    }
  });

  it('accepts public names and addresses, and private ones inside allowCidrs', async () => {
    const policy = egressPolicy({ resolve: tableResolver(table) });
    expect(await validateWebhookUrl('https://public.test/hook#frag', policy)).toBe(
      'https://public.test/hook',
    );
    expect(await validateWebhookUrl('https://93.184.216.34/hook', policy)).toBe('https://93.184.216.34/hook');
    const allowLoopback = egressPolicy({
      allowHttp: true,
      allowCidrs: ['127.0.0.0/8'],
      resolve: tableResolver(table),
    });
    expect(await validateWebhookUrl('http://loopback.test:8080/x', allowLoopback)).toBe(
      'http://loopback.test:8080/x',
    );
    expect(await validateWebhookUrl('https://v6.test/x', allowLoopback)).toBe('https://v6.test/x');
    expect(await refusal('https://internal.test/x', { allowCidrs: ['127.0.0.0/8'] })).toMatch(/private/);
  });

  it('refuses a bad allowCidrs list at start-up, naming each entry', () => {
    try {
      egressPolicy({ allowCidrs: ['127.0.0.0/8', 'nonsense', '10.0.0.0/40'] });
      expect.unreachable();
    } catch (error) {
      expect(isWebhookError(error) && error.code).toBe('webhook-invalid-config');
      expect((error as Error).message).toMatch(/nonsense.*10\.0\.0\.0\/40/);
    }
  });
});

describe('SSRF guard at connect time', () => {
  const h = harness(sqliteBackend);

  it('refuses a name that resolved to a public address at creation and to loopback at connect time (DNS rebinding)', async () => {
    const { sql } = await h.db();
    const clock = h.clock();
    const receiver = await h.receiver(clock);
    let answers = 0;
    const rebinding = async (hostname: string) => {
      if (hostname !== 'rebind.test') throw Object.assign(new Error('unknown'), { code: 'ENOTFOUND' });
      answers++;
      return [{ address: answers === 1 ? '93.184.216.34' : '127.0.0.1', family: 4 }];
    };
    const service = await h.service(sql, { clock, allowCidrs: [], resolve: rebinding });
    const sub = await service.createSubscription('kenya', {
      url: `http://rebind.test:${receiver.port}/hooks`,
    });
    await produce(sql, [change('m1')]);
    await drain(service);
    expect(answers).toBeGreaterThanOrEqual(2);
    expect(receiver.captures).toHaveLength(0);
    const [delivery] = (await service.listDeliveries('kenya', sub.id)).items;
    expect(delivery).toMatchObject({ status: 'pending', lastErrorClass: 'blocked' });
    const [attempt] = await service.listAttempts('kenya', delivery?.id as string);
    expect(attempt?.errorMessage).toMatch(/rebind\.test resolves to 127\.0\.0\.1.*loopback/);
  });

  it('connects through the guarded resolver, so a name mapped to loopback reaches it when allowed', async () => {
    const { sql } = await h.db();
    const clock = h.clock();
    const receiver = await h.receiver(clock);
    const service = await h.service(sql, {
      clock,
      allowCidrs: ['127.0.0.0/8'],
      resolve: tableResolver({ 'receiver.test': ['127.0.0.1'] }),
    });
    await service.createSubscription('kenya', { url: `http://receiver.test:${receiver.port}/hooks` });
    await produce(sql, [change('m1')]);
    await drain(service);
    expect(receiver.captures).toHaveLength(1);
    expect(receiver.captures[0]?.headers.host).toBe(`receiver.test:${receiver.port}`);
  });

  it('checks literal addresses again when sending: a loopback URL stored while allowed is refused once not', async () => {
    const { sql } = await h.db();
    const clock = h.clock();
    const receiver = await h.receiver(clock);
    const permissive = await h.service(sql, { clock, dispatch: false });
    const sub = await permissive.createSubscription('kenya', { url: receiver.url });
    await permissive.stop();
    const strict = await h.service(sql, { clock, allowCidrs: [] });
    await produce(sql, [change('m1')]);
    await drain(strict);
    expect(receiver.captures).toHaveLength(0);
    const [delivery] = (await strict.listDeliveries('kenya', sub.id)).items;
    expect(delivery?.lastErrorClass).toBe('blocked');
  });

  it('checks the scheme again when sending: an http URL stored while http was allowed is refused once not', async () => {
    const { sql } = await h.db();
    const clock = h.clock();
    const receiver = await h.receiver(clock);
    expect(receiver.url).toMatch(/^http:/);
    const permissive = await h.service(sql, { clock, dispatch: false });
    const sub = await permissive.createSubscription('kenya', { url: receiver.url });
    await permissive.stop();
    const strict = await h.service(sql, { clock, allowHttp: false });
    await produce(sql, [change('m1')]);
    await drain(strict);
    expect(receiver.captures).toHaveLength(0);
    const [delivery] = (await strict.listDeliveries('kenya', sub.id)).items;
    expect(delivery?.lastErrorClass).toBe('blocked');
    const [attempt] = await strict.listAttempts('kenya', delivery?.id as string);
    expect(attempt?.errorMessage).toContain('plain http is not enabled');
  });
});
