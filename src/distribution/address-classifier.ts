import * as ipaddr from 'ipaddr.js';

/**
 * The one place that decides which hosts and addresses distribution may connect to, used when a
 * target is declared (its endpoint's host) and at connect time (every hop's host, and each address
 * DNS resolved it to). Parsing is ipaddr.js's: it reads every numeric form a resolver or URL parser
 * accepts (`2852039166`, `0xA9FEA9FE`, octal, `169.254.43518`), so "is this 169.254.169.254?" is
 * answered on the address, not on how it was written. IPv6 forms that carry an IPv4 address
 * (`::ffff:a9fe:a9fe`, NAT64 `64:ff9b::/96`, 6to4, IPv4-compatible `::a.b.c.d`) are judged by the
 * IPv4 address inside.
 *
 *   forbidden  link-local (169.254/16, fe80::/10: cloud metadata lives there), unspecified
 *              (0.0.0.0/8, ::), multicast and broadcast, and the metadata endpoints outside
 *              link-local (AWS fd00:ec2::/32, GCP fd20:ce::254, Alibaba 100.100.100.200, Oracle
 *              192.0.0.192) or their names (metadata.google.internal, …): never, whatever the allowlist;
 *   loopback   127/8, ::1, `localhost`: only where SIGNET_DISTRIBUTION_ALLOW_LOOPBACK is on;
 *   private    RFC 1918, CGNAT, unique-local: allowed (internal registries and API servers live there);
 *   public     allowed;
 *   name       a DNS name: what it resolves to is judged at connect time.
 */
export type HostCategory = 'forbidden' | 'loopback' | 'private' | 'public' | 'name';

export interface HostClass {
  category: HostCategory;
  /** Canonical address when the host is an IP literal in any form. */
  address?: string;
  /** Why a forbidden host is refused, for error messages. */
  reason?: string;
}

/** Names of metadata services (resolved addresses are checked too; these never leave the cloud). */
const METADATA_NAMES = new Set([
  'metadata',
  'metadata.google.internal',
  'metadata.goog',
  'instance-data',
  'instance-data.ec2.internal',
  'metadata.tencentyun.com',
  'metadata.platformequinix.com',
]);

const METADATA_IPV4 = ['100.100.100.200', '192.0.0.192'].map((a) => ipaddr.IPv4.parse(a));
const METADATA_IPV6_RANGES: Array<[ipaddr.IPv6, number]> = [
  [ipaddr.IPv6.parse('fd00:ec2::'), 32], // AWS IMDS over IPv6 (fd00:ec2::254) and friends
  [ipaddr.IPv6.parse('fd20:ce::254'), 128], // GCP metadata over IPv6
];

/** `[::1]` → `::1`, `Registry.Example.com.` → `registry.example.com`. */
export function normalizeHost(host: string): string {
  return host
    .replace(/^\[|\]$/g, '')
    .replace(/\.$/, '')
    .toLowerCase();
}

export function classifyHost(host: string): HostClass {
  const name = normalizeHost(host);
  if (name === '') return { category: 'forbidden', reason: 'empty host' };
  if (METADATA_NAMES.has(name)) return { category: 'forbidden', reason: 'a cloud metadata service name' };
  if (name === 'localhost' || name.endsWith('.localhost')) return { category: 'loopback' };
  if (!ipaddr.isValid(name)) return { category: 'name' };
  return classifyAddress(name);
}

/** Classifies an IP address (any form ipaddr.js reads); a string that is not one is `forbidden`. */
export function classifyAddress(address: string): HostClass {
  let parsed: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    parsed = ipaddr.parse(address);
  } catch {
    return { category: 'forbidden', reason: 'not an IP address' };
  }
  return classifyParsed(parsed);
}

function classifyParsed(parsed: ipaddr.IPv4 | ipaddr.IPv6): HostClass {
  if (parsed.kind() === 'ipv6') {
    const v6 = parsed as ipaddr.IPv6;
    const embedded = embeddedIpv4(v6);
    if (embedded) {
      const inner = classifyParsed(embedded);
      return { ...inner, address: v6.toString() };
    }
    return classifyIpv6(v6);
  }
  return classifyIpv4(parsed as ipaddr.IPv4);
}

function classifyIpv4(address: ipaddr.IPv4): HostClass {
  const text = address.toString();
  if (METADATA_IPV4.some((m) => m.toString() === text))
    return { category: 'forbidden', address: text, reason: 'a cloud metadata address' };
  switch (address.range()) {
    case 'linkLocal':
      return { category: 'forbidden', address: text, reason: 'a link-local address (cloud metadata lives there)' };
    case 'unspecified':
      return { category: 'forbidden', address: text, reason: 'an unspecified address' };
    case 'broadcast':
    case 'multicast':
      return { category: 'forbidden', address: text, reason: `a ${address.range()} address` };
    case 'loopback':
      return { category: 'loopback', address: text };
    case 'private':
    case 'carrierGradeNat':
      return { category: 'private', address: text };
    default:
      return { category: 'public', address: text };
  }
}

function classifyIpv6(address: ipaddr.IPv6): HostClass {
  const text = address.toString();
  if (address.zoneId) return { category: 'forbidden', address: text, reason: 'a scoped (zone) address' };
  if (METADATA_IPV6_RANGES.some(([base, bits]) => address.match(base, bits)))
    return { category: 'forbidden', address: text, reason: 'a cloud metadata address' };
  switch (address.range()) {
    case 'linkLocal':
      return { category: 'forbidden', address: text, reason: 'a link-local address (cloud metadata lives there)' };
    case 'unspecified':
      return { category: 'forbidden', address: text, reason: 'an unspecified address' };
    case 'multicast':
      return { category: 'forbidden', address: text, reason: 'a multicast address' };
    case 'loopback':
      return { category: 'loopback', address: text };
    case 'uniqueLocal':
      return { category: 'private', address: text };
    default:
      return { category: 'public', address: text };
  }
}

/** The IPv4 address an IPv6 form carries: mapped, SIIT, NAT64, 6to4 or IPv4-compatible. */
function embeddedIpv4(address: ipaddr.IPv6): ipaddr.IPv4 | undefined {
  const parts = address.parts;
  const fromWords = (high: number, low: number) => new ipaddr.IPv4([high >> 8, high & 0xff, low >> 8, low & 0xff]);
  switch (address.range()) {
    case 'ipv4Mapped':
      return address.toIPv4Address();
    case 'rfc6145':
    case 'rfc6052':
      return fromWords(parts[6], parts[7]);
    case '6to4':
      return fromWords(parts[1], parts[2]);
  }
  // ::a.b.c.d (deprecated IPv4-compatible), but not :: and ::1 themselves
  if (parts.slice(0, 6).every((p) => p === 0) && (parts[6] !== 0 || parts[7] > 1)) return fromWords(parts[6], parts[7]);
  return undefined;
}

/**
 * Why distribution may not connect to `host` (undefined: it may, as far as the address goes; the
 * allowlist is a separate check). Loopback needs `allowLoopback`.
 */
export function hostRefusal(host: string, allowLoopback: boolean): string | undefined {
  const verdict = classifyHost(host);
  if (verdict.category === 'forbidden') return `is ${verdict.reason}`;
  if (verdict.category === 'loopback' && !allowLoopback)
    return 'is a loopback address; set SIGNET_DISTRIBUTION_ALLOW_LOOPBACK=true to allow it';
  return undefined;
}
