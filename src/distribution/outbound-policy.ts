import { isIP } from 'node:net';
import { DomainError, ErrorCode } from '../common/errors';
import { classifyAddress, classifyHost, normalizeHost } from './address-classifier';

/**
 * Which hosts Signet's distribution code may connect to. A registry can answer with a redirect
 * (blob storage, token realm) to any URL it likes; following one blindly would let a compromised
 * or misconfigured target make Signet send requests — and perhaps credentials — into the internal
 * network or to the cloud metadata service. So every hop is checked here, and again against the
 * address DNS resolved it to.
 *
 * Allowlist entries: `registry.example.com` (any port), `registry.example.com:5000` (that port),
 * `*.blob.core.windows.net` (any subdomain, not the apex), IPv4/IPv6 literals (`[::1]:5000`).
 * Loopback is reachable only with `allowLoopback` (SIGNET_DISTRIBUTION_ALLOW_LOOPBACK) and through a
 * host written as loopback (`localhost`, `127.0.0.1`, `[::1]`) and listed; a public name resolving
 * to loopback is refused. Link-local, unspecified and cloud metadata addresses and names
 * (169.254.169.254 in any spelling, metadata.google.internal, …) are always refused: the judgement
 * is address-classifier.ts's, the same one that checks endpoints when targets are declared.
 * Private ranges stay reachable: internal registries and API servers live there.
 */
export class OutboundPolicy {
  private readonly entries: ReadonlyArray<{ host: string; port?: string; wildcard: boolean }>;
  private readonly allowLoopback: boolean;

  /** `implicitHosts` are trusted entries that did not come from the `allowedHosts` setting, such as the endpoint itself. */
  constructor(
    allowedHosts: readonly string[],
    implicitHosts: readonly string[] = [],
    options: { allowLoopback?: boolean } = {},
  ) {
    this.entries = [
      ...implicitHosts.map((entry) => parseEntry(entry, 'endpoint')),
      ...allowedHosts.map((entry, index) => parseEntry(entry, `allowedHosts[${index}]`)),
    ];
    this.allowLoopback = options.allowLoopback === true;
  }

  /**
   * A policy allowing `allowedHosts` plus the configured endpoint's host and port — unless
   * `endpointListed`: then the endpoint too must be in `allowedHosts` (a configured allowlist names
   * every endpoint, including one changed behind the API).
   */
  static forEndpoint(
    endpoint: URL,
    allowedHosts: readonly string[] = [],
    options: { allowLoopback?: boolean; endpointListed?: boolean } = {},
  ): OutboundPolicy {
    const port = endpoint.port || (endpoint.protocol === 'https:' ? '443' : '80');
    return new OutboundPolicy(allowedHosts, options.endpointListed ? [] : [`${endpoint.hostname}:${port}`], options);
  }

  /** Whether every host and port the allowlist entry `raw` admits is admitted here too. */
  coversEntry(raw: string, field = 'allowedHosts'): boolean {
    const wanted = parseEntry(raw, field);
    return this.entries.some(
      (entry) =>
        (entry.port === undefined || entry.port === wanted.port) &&
        (entry.wildcard
          ? wanted.host.endsWith(`.${entry.host}`) || (wanted.wildcard && wanted.host === entry.host)
          : !wanted.wildcard && wanted.host === entry.host),
    );
  }

  allowsUrl(url: URL): boolean {
    return this.refusal(url) === undefined;
  }

  /** Why `url` may not be requested (undefined: it may), for error messages. */
  refusal(url: URL): string | undefined {
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return 'not an http(s) URL';
    if (url.username || url.password) return 'credentials in the URL';
    const verdict = classifyHost(url.hostname);
    if (verdict.category === 'forbidden') return `host is ${verdict.reason}`;
    if (verdict.category === 'loopback' && !this.allowLoopback)
      return 'host is loopback and SIGNET_DISTRIBUTION_ALLOW_LOOPBACK is off';
    if (!this.allowsHost(url)) return 'host is not in the allowed hosts';
    return undefined;
  }

  /** Whether the allowlist entries (without the address checks) cover `url`'s host and port. */
  allowsHost(url: URL): boolean {
    const host = normalizeHost(url.hostname);
    const port = url.port || (url.protocol === 'https:' ? '443' : '80');
    return this.entries.some((entry) => (entry.port === undefined || entry.port === port) && hostMatches(entry, host));
  }

  /** Whether a connection to `address` (what DNS returned for `hostname`) may proceed. */
  allowsAddress(hostname: string, address: string): boolean {
    const verdict = classifyAddress(address);
    if (verdict.category === 'forbidden') return false;
    if (verdict.category === 'loopback') return this.allowLoopback && classifyHost(hostname).category === 'loopback';
    return true;
  }
}

function hostMatches(entry: { host: string; wildcard: boolean }, host: string): boolean {
  return entry.wildcard ? host.endsWith(`.${entry.host}`) : host === entry.host;
}

/** The host of an allowlist entry (`*.` removed), normalized; throws VALIDATION_ERROR naming `field` if malformed. */
export function allowlistEntryHost(raw: string, field: string): { host: string; wildcard: boolean } {
  const { host, wildcard } = parseEntry(raw, field);
  return { host, wildcard };
}

function parseEntry(raw: string, field: string): { host: string; port?: string; wildcard: boolean } {
  const value = raw.trim().toLowerCase();
  const wildcard = value.startsWith('*.');
  const rest = wildcard ? value.slice(2) : value;
  let parsed: URL;
  try {
    parsed = new URL(`http://${rest}`);
  } catch {
    throw new DomainError(
      ErrorCode.VALIDATION_ERROR,
      `outboundPolicy: '${field}' must be a host name, optionally with ':port'`,
      { field },
    );
  }
  if (
    !rest ||
    parsed.pathname !== '/' ||
    parsed.search ||
    parsed.username ||
    (wildcard && isIP(normalizeHost(parsed.hostname)) !== 0)
  ) {
    throw new DomainError(
      ErrorCode.VALIDATION_ERROR,
      `outboundPolicy: '${field}' must be a host name, optionally with ':port'`,
      { field },
    );
  }
  // new URL() drops a port equal to the scheme default; keep what was written.
  const explicitPort = /:(\d+)$/.exec(rest)?.[1];
  return {
    host: normalizeHost(parsed.hostname),
    ...(explicitPort ? { port: String(Number(explicitPort)) } : {}),
    wildcard,
  };
}
