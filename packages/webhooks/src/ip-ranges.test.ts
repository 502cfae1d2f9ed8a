import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkAddress, formatIp, parseCidr, parseIp } from './ip-ranges.js';

const allowNone = [] as const;

describe('address classification', () => {
  it.each([
    ['127.0.0.1', 'loopback'],
    ['127.255.0.9', 'loopback'],
    ['10.0.0.1', 'private'],
    ['172.16.5.4', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.1.1', 'private'],
    ['169.254.169.254', 'cloud metadata'],
    ['169.254.1.1', 'link-local'],
    ['100.64.0.1', 'CGNAT'],
    ['100.127.255.254', 'CGNAT'],
    ['0.0.0.0', 'this network'],
    ['0.1.2.3', 'this network'],
    ['224.0.0.1', 'multicast'],
    ['239.255.255.250', 'multicast'],
    ['240.0.0.1', 'reserved'],
    ['255.255.255.255', 'reserved'],
    ['198.18.0.1', 'benchmarking'],
    ['198.19.255.255', 'benchmarking'],
    ['::1', 'loopback'],
    ['::', 'unspecified'],
    ['fc00::1', 'unique local'],
    ['fd12:3456::1', 'unique local'],
    ['fd00:ec2::254', 'cloud metadata'],
    ['fe80::1', 'link-local'],
    ['fe80::1%eth0', 'link-local'],
    ['ff02::1', 'multicast'],
    ['::ffff:127.0.0.1', 'IPv4-mapped form of 127.0.0.1: loopback'],
    ['::ffff:7f00:1', 'IPv4-mapped form of 127.0.0.1: loopback'],
    ['0:0:0:0:0:ffff:a9fe:a9fe', 'IPv4-mapped form of 169.254.169.254: cloud metadata'],
    ['::ffff:10.1.2.3', 'IPv4-mapped form of 10.1.2.3: private'],
    ['64:ff9b::7f00:1', 'NAT64 form of 127.0.0.1: loopback'],
    ['::ffff:0:a00:1', 'IPv4-translated form of 10.0.0.1: private'],
    ['64:ff9b::10.0.0.1', 'NAT64 form of 10.0.0.1: private'],
    ['2002:7f00:1::', '6to4 form of 127.0.0.1: loopback'],
    ['2002:a9fe:a9fe::1', '6to4 form of 169.254.169.254: cloud metadata'],
    ['2002:c0a8:0101::', '6to4 form of 192.168.1.1: private'],
  ])('refuses %s (%s)', (address, reason) => {
    const verdict = checkAddress(address, allowNone);
    expect(verdict.allowed).toBe(false);
    expect(verdict.allowed === false && verdict.reason).toContain(reason);
  });

  it.each([
    '8.8.8.8',
    '1.1.1.1',
    '93.184.216.34',
    '172.32.0.1',
    '100.128.0.1',
    '2606:4700:4700::1111',
    '::ffff:8.8.8.8',
    '2002:808:808::1',
  ])('allows the public address %s', (address) => {
    expect(checkAddress(address, allowNone)).toEqual({ allowed: true });
  });

  it('lets allowCidrs through, including the IPv4-mapped forms of an allowed IPv4 range', () => {
    const allow = [parseCidr('127.0.0.0/8'), parseCidr('::1/128')];
    expect(checkAddress('127.0.0.1', allow)).toEqual({ allowed: true });
    expect(checkAddress('::1', allow)).toEqual({ allowed: true });
    expect(checkAddress('::ffff:127.0.0.1', allow)).toEqual({ allowed: true });
    expect(checkAddress('10.0.0.1', allow).allowed).toBe(false);
    expect(checkAddress('169.254.169.254', allow).allowed).toBe(false);
  });

  it('refuses what is not an address', () => {
    expect(checkAddress('localhost', allowNone).allowed).toBe(false);
    expect(checkAddress('', allowNone).allowed).toBe(false);
  });

  it('rejects malformed ranges with a readable message', () => {
    expect(() => parseCidr('10.0.0.0/33')).toThrow(/prefix/);
    expect(() => parseCidr('example.com/8')).toThrow(/not an IP range/);
    expect(parseCidr('10.1.2.3/8').network).toBe(parseIp('10.0.0.0')?.value);
  });

  it('every textual IPv6 form of a loopback-mapped address is refused (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffff }), (low) => {
        const v4 = `127.${(low >> 16) & 255}.${(low >> 8) & 255}.${low & 255}`;
        const ip = parseIp(v4);
        const hex = (ip?.value ?? 0n).toString(16).padStart(8, '0');
        const forms = [
          `::ffff:${v4}`,
          `::ffff:${hex.slice(0, 4)}:${hex.slice(4)}`,
          `0:0:0:0:0:ffff:${hex.slice(0, 4)}:${hex.slice(4)}`,
          `64:ff9b::${v4}`,
          `2002:${hex.slice(0, 4)}:${hex.slice(4)}::1`,
        ];
        for (const form of forms) expect(checkAddress(form, allowNone).allowed).toBe(false);
      }),
    );
  });

  it('parses and formats round trip (property)', () => {
    fc.assert(
      fc.property(fc.ipV4(), (address) => {
        const ip = parseIp(address);
        expect(ip && formatIp(ip)).toBe(address);
      }),
    );
    fc.assert(
      fc.property(fc.ipV6(), (address) => {
        const ip = parseIp(address);
        expect(ip).not.toBeNull();
        const again = parseIp(formatIp(ip as NonNullable<typeof ip>));
        expect(again?.value).toBe(ip?.value);
      }),
    );
  });
});
