import { BlockList, isIP } from 'node:net';
import { DomainError, ErrorCode } from '../common/errors';

/**
 * Which hosts Signet's distribution code may connect to. A registry can answer with a redirect
 * (blob storage, token realm) to any URL it likes; following one blindly would let a compromised
 * or misconfigured target make Signet send requests — and perhaps credentials — into the internal
 * network or to the cloud metadata service. So every hop is checked here, and again against the
 * address DNS resolved it to.
 *
 * Allowlist entries: `registry.example.com` (any port), `registry.example.com:5000` (that port),
 * `*.blob.core.windows.net` (any subdomain, not the apex), IPv4/IPv6 literals (`[::1]:5000`).
 * Loopback is reachable only through a host written as loopback (`localhost`, `127.0.0.1`, `[::1]`)
 * and listed; a public name resolving to loopback is refused. Link-local and unspecified addresses
 * (169.254.169.254 and friends) are always refused. Private ranges stay reachable: internal
 * registries and API servers live there.
 */
export class OutboundPolicy {
  private readonly entries: ReadonlyArray<{ host: string; port?: string; wildcard: boolean }>;

  /** `implicitHosts` are trusted entries that did not come from the `allowedHosts` setting, such as the endpoint itself. */
  constructor(allowedHosts: readonly string[], implicitHosts: readonly string[] = []) {
    this.entries = [
      ...implicitHosts.map((entry) => parseEntry(entry, 'endpoint')),
      ...allowedHosts.map((entry, index) => parseEntry(entry, `allowedHosts[${index}]`)),
    ];
  }

  /** A policy allowing `allowedHosts` plus the configured endpoint's host and port. */
  static forEndpoint(endpoint: URL, allowedHosts: readonly string[] = []): OutboundPolicy {
    const port = endpoint.port || (endpoint.protocol === 'https:' ? '443' : '80');
    return new OutboundPolicy(allowedHosts, [`${endpoint.hostname}:${port}`]);
  }

  allowsUrl(url: URL): boolean {
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return false;
    if (url.username || url.password) return false;
    const host = normalizeHost(url.hostname);
    const port = url.port || (url.protocol === 'https:' ? '443' : '80');
    return this.entries.some((entry) => (entry.port === undefined || entry.port === port) && hostMatches(entry, host));
  }

  /** Whether a connection to `address` (what DNS returned for `hostname`) may proceed. */
  allowsAddress(hostname: string, address: string): boolean {
    const resolved = unmapIpv4(address);
    const family = isIP(resolved) === 6 ? 'ipv6' : 'ipv4';
    if (ALWAYS_BLOCKED.check(resolved, family)) return false;
    if (LOOPBACK.check(resolved, family)) return isLoopbackName(normalizeHost(hostname));
    return true;
  }
}

const ALWAYS_BLOCKED = new BlockList();
ALWAYS_BLOCKED.addSubnet('169.254.0.0', 16, 'ipv4'); // link-local, cloud metadata endpoints
ALWAYS_BLOCKED.addSubnet('0.0.0.0', 8, 'ipv4');
ALWAYS_BLOCKED.addSubnet('fe80::', 10, 'ipv6');
ALWAYS_BLOCKED.addAddress('::', 'ipv6');
ALWAYS_BLOCKED.addSubnet('fd00:ec2::', 32, 'ipv6'); // AWS IMDS over IPv6

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

function unmapIpv4(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return mapped ? mapped[1] : address;
}

function isLoopbackName(host: string): boolean {
  if (host === 'localhost' || host.endsWith('.localhost')) return true;
  const literal = unmapIpv4(host);
  const family = isIP(literal);
  return family !== 0 && LOOPBACK.check(literal, family === 6 ? 'ipv6' : 'ipv4');
}

function normalizeHost(host: string): string {
  return host.replace(/^\[|\]$/g, '').replace(/\.$/, '').toLowerCase();
}

function hostMatches(entry: { host: string; wildcard: boolean }, host: string): boolean {
  return entry.wildcard ? host.endsWith(`.${entry.host}`) : host === entry.host;
}

function parseEntry(raw: string, field: string): { host: string; port?: string; wildcard: boolean } {
  const value = raw.trim().toLowerCase();
  const wildcard = value.startsWith('*.');
  const rest = wildcard ? value.slice(2) : value;
  let parsed: URL;
  try {
    parsed = new URL(`http://${rest}`);
  } catch {
    throw new DomainError(ErrorCode.VALIDATION_ERROR, `outboundPolicy: '${field}' must be a host name, optionally with ':port'`, { field });
  }
  if (!rest || parsed.pathname !== '/' || parsed.search || parsed.username || (wildcard && isIP(normalizeHost(parsed.hostname)) !== 0)) {
    throw new DomainError(ErrorCode.VALIDATION_ERROR, `outboundPolicy: '${field}' must be a host name, optionally with ':port'`, { field });
  }
  // new URL() drops a port equal to the scheme default; keep what was written.
  const explicitPort = /:(\d+)$/.exec(rest)?.[1];
  return { host: normalizeHost(parsed.hostname), ...(explicitPort ? { port: String(Number(explicitPort)) } : {}), wildcard };
}
