import { isIP } from 'node:net';

/**
 * Address classification for the SSRF guard. Addresses are parsed into integers (32 bits for IPv4,
 * 128 for IPv6) so that every textual form of an address (`::ffff:127.0.0.1`, `::ffff:7f00:1`,
 * `0:0:0:0:0:ffff:7f00:0001`) lands on the same value and the same verdict.
 */
export interface IpAddress {
  family: 4 | 6;
  value: bigint;
}

export interface Cidr {
  family: 4 | 6;
  network: bigint;
  prefix: number;
  /** As written, for messages. */
  text: string;
}

export function parseIp(text: string): IpAddress | null {
  const bare = text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text;
  // A zone index (fe80::1%eth0) names an interface, not a different address.
  const address = bare.includes('%') ? bare.slice(0, bare.indexOf('%')) : bare;
  const family = isIP(address);
  if (family === 4) return { family: 4, value: parseIpv4(address) };
  if (family === 6) return { family: 6, value: parseIpv6(address) };
  return null;
}

function parseIpv4(text: string): bigint {
  return text.split('.').reduce((acc, part) => (acc << 8n) | BigInt(Number(part)), 0n);
}

function parseIpv6(text: string): bigint {
  let head = text;
  let tailV4: bigint | null = null;
  const lastColon = text.lastIndexOf(':');
  if (text.slice(lastColon + 1).includes('.')) {
    tailV4 = parseIpv4(text.slice(lastColon + 1));
    head = `${text.slice(0, lastColon + 1)}0:0`;
  }
  const [left = '', right] = head.split('::') as [string, string | undefined];
  const leftGroups = left === '' ? [] : left.split(':');
  const rightGroups = right === undefined || right === '' ? [] : right.split(':');
  const missing = 8 - leftGroups.length - rightGroups.length;
  const groups =
    right === undefined ? leftGroups : [...leftGroups, ...Array(missing).fill('0'), ...rightGroups];
  let value = groups.reduce((acc, group) => (acc << 16n) | BigInt(Number.parseInt(group, 16)), 0n);
  if (tailV4 !== null) value = (value & ~0xffffffffn) | tailV4;
  return value;
}

export function formatIp(ip: IpAddress): string {
  if (ip.family === 4) {
    return [24n, 16n, 8n, 0n].map((shift) => Number((ip.value >> shift) & 0xffn)).join('.');
  }
  const groups: string[] = [];
  for (let i = 7; i >= 0; i--) groups.push(((ip.value >> BigInt(i * 16)) & 0xffffn).toString(16));
  return groups.join(':');
}

/** Parses `a.b.c.d/n`, `x::y/n` or a single address (a /32 or /128). Throws a readable Error. */
export function parseCidr(text: string): Cidr {
  const trimmed = text.trim();
  const slash = trimmed.indexOf('/');
  const addressText = slash === -1 ? trimmed : trimmed.slice(0, slash);
  const ip = parseIp(addressText);
  if (!ip) throw new Error(`'${text}' is not an IP range (expected a.b.c.d/n or an IPv6 prefix)`);
  const bits = ip.family === 4 ? 32 : 128;
  const prefixText = slash === -1 ? String(bits) : trimmed.slice(slash + 1);
  if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > bits) {
    throw new Error(`'${text}' has an invalid prefix length (0 to ${bits})`);
  }
  const prefix = Number(prefixText);
  return { family: ip.family, network: ip.value & mask(bits, prefix), prefix, text: trimmed };
}

function mask(bits: number, prefix: number): bigint {
  const all = (1n << BigInt(bits)) - 1n;
  return prefix === 0 ? 0n : (all >> BigInt(bits - prefix)) << BigInt(bits - prefix);
}

export function cidrContains(cidr: Cidr, ip: IpAddress): boolean {
  if (cidr.family !== ip.family) return false;
  const bits = cidr.family === 4 ? 32 : 128;
  return (ip.value & mask(bits, cidr.prefix)) === cidr.network;
}

const range = (text: string, reason: string) => ({ cidr: parseCidr(text), reason });

/** Most specific first, so that the metadata addresses are named as such. */
const BLOCKED_V4 = [
  range('169.254.169.254/32', 'cloud metadata'),
  range('0.0.0.0/8', '"this network" (0.0.0.0/8)'),
  range('10.0.0.0/8', 'private (RFC 1918)'),
  range('100.64.0.0/10', 'shared address space (CGNAT, 100.64.0.0/10)'),
  range('127.0.0.0/8', 'loopback'),
  range('169.254.0.0/16', 'link-local'),
  range('172.16.0.0/12', 'private (RFC 1918)'),
  range('192.0.0.0/24', 'IETF protocol assignments'),
  range('192.0.2.0/24', 'documentation (TEST-NET-1)'),
  range('192.88.99.0/24', '6to4 relay anycast'),
  range('192.168.0.0/16', 'private (RFC 1918)'),
  range('198.18.0.0/15', 'benchmarking (198.18.0.0/15)'),
  range('198.51.100.0/24', 'documentation (TEST-NET-2)'),
  range('203.0.113.0/24', 'documentation (TEST-NET-3)'),
  range('224.0.0.0/4', 'multicast'),
  range('240.0.0.0/4', 'reserved (240.0.0.0/4)'),
];

const BLOCKED_V6 = [
  range('fd00:ec2::254/128', 'cloud metadata'),
  range('::/128', 'unspecified'),
  range('::1/128', 'loopback'),
  range('64:ff9b:1::/48', 'local-use NAT64'),
  range('100::/64', 'discard-only'),
  range('2001::/32', 'Teredo'),
  range('2001:db8::/32', 'documentation'),
  range('fc00::/7', 'unique local (fc00::/7)'),
  range('fe80::/10', 'link-local'),
  range('fec0::/10', 'site-local (deprecated)'),
  range('ff00::/8', 'multicast'),
];

/** IPv6 forms that carry an IPv4 address, and how to take it out. */
const EMBEDDING = [
  { cidr: parseCidr('::ffff:0:0/96'), form: 'IPv4-mapped', extract: (v: bigint) => v & 0xffffffffn },
  { cidr: parseCidr('::/96'), form: 'IPv4-compatible', extract: (v: bigint) => v & 0xffffffffn },
  // RFC 2765's IPv4-translated form (SIIT): obsolete, but a stack that still honours it reaches the v4 host.
  { cidr: parseCidr('::ffff:0:0:0/96'), form: 'IPv4-translated', extract: (v: bigint) => v & 0xffffffffn },
  { cidr: parseCidr('64:ff9b::/96'), form: 'NAT64', extract: (v: bigint) => v & 0xffffffffn },
  { cidr: parseCidr('2002::/16'), form: '6to4', extract: (v: bigint) => (v >> 80n) & 0xffffffffn },
];

export type AddressVerdict = { allowed: true } | { allowed: false; reason: string };

/** The IPv4 address an IPv6 address carries, when it is one of the embedding forms. */
export function embeddedIpv4(ip: IpAddress): { v4: IpAddress; form: string } | null {
  if (ip.family !== 6) return null;
  for (const embedding of EMBEDDING) {
    if (cidrContains(embedding.cidr, ip)) {
      return { v4: { family: 4, value: embedding.extract(ip.value) }, form: embedding.form };
    }
  }
  return null;
}

function blockedReason(ip: IpAddress): string | null {
  const table = ip.family === 4 ? BLOCKED_V4 : BLOCKED_V6;
  for (const entry of table) if (cidrContains(entry.cidr, ip)) return entry.reason;
  const embedded = embeddedIpv4(ip);
  if (embedded) {
    const inner = blockedReason(embedded.v4);
    if (inner) return `${embedded.form} form of ${formatIp(embedded.v4)}: ${inner}`;
  }
  return null;
}

/**
 * Whether a webhook may connect to `address`: public addresses may; loopback, private,
 * link-local, CGNAT, multicast, reserved, documentation, benchmarking and cloud-metadata ranges,
 * and their IPv4-mapped, NAT64 and 6to4 forms, may not, unless an `allow` range contains the
 * address (or the IPv4 address it embeds).
 */
export function checkAddress(address: string, allow: readonly Cidr[]): AddressVerdict {
  const ip = parseIp(address);
  if (!ip) return { allowed: false, reason: `'${address}' is not an IP address` };
  const embedded = embeddedIpv4(ip);
  for (const cidr of allow) {
    if (cidrContains(cidr, ip) || (embedded && cidrContains(cidr, embedded.v4))) return { allowed: true };
  }
  const reason = blockedReason(ip);
  return reason === null ? { allowed: true } : { allowed: false, reason };
}
