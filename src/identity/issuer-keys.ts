import {
  createLocalJWKSet,
  errors as joseErrors,
  JSONWebKeySet,
  jwtVerify,
  JWTVerifyGetKey,
  JWTVerifyOptions,
  JWTVerifyResult,
} from 'jose';
import { DomainError, ErrorCode } from '../common/errors';
import { OutboundHttp } from '../distribution/drivers/outbound-http';
import { OutboundPolicy } from '../distribution/outbound-policy';
import { LOOPBACK_HOSTS } from '../distribution/target-definition';

/** What fetching needs of a provider. */
export interface IssuerEndpoint {
  id: string;
  name: string;
  issuer: string;
  jwksUri: string | null;
}

export interface IssuerKeysOptions {
  /** Hosts redirects may lead to (the distribution allowlist); the issuer and jwksUri hosts are always allowed. */
  allowedHosts: readonly string[];
  /** Loopback issuers (development and tests). */
  allowLoopback: boolean;
  requestTimeoutMs: number;
  /** Unknown `kid`: refetch at most this often per provider. */
  refetchMs: number;
  /** A JWKS older than this is fetched again before use. */
  maxAgeMs: number;
  now?: () => number;
}

interface KeySetEntry {
  /** Identifies what was fetched (issuer and jwksUri): a provider edited to point elsewhere refetches. */
  source: string;
  keys: JWTVerifyGetKey;
  fetchedMs: number;
}

const MAX_DOCUMENT_BYTES = 256 * 1024;
/** After a failed fetch, the provider's tokens get that failure for this long (or the refetch interval, if shorter). */
const FAILURE_FLOOR_MS = 5_000;
/** Key types that can verify an asymmetric signature; anything else in a JWKS (`oct` above all) is dropped. */
const ASYMMETRIC_KTY = new Set(['RSA', 'EC', 'OKP']);

/**
 * Each identity provider's signing keys: its discovery document and JWKS fetched through the same
 * outbound policy as distribution (OutboundHttp: allowlist, no link-local or metadata addresses,
 * every redirect hop checked), cached for `maxAgeMs`, and refetched early — at most once per
 * `refetchMs` — when a token names a `kid` the cached set lacks (the issuer rotated its keys).
 * Failing to fetch refuses the token (fail closed) with an error that names the provider.
 */
export class IssuerKeys {
  private readonly entries = new Map<string, KeySetEntry>();
  private readonly lastAttemptMs = new Map<string, number>();
  private readonly inflight = new Map<string, Promise<KeySetEntry>>();
  /** The last failed fetch per provider, answered again without a new fetch for a while. */
  private readonly failures = new Map<string, { error: unknown; atMs: number }>();
  private readonly now: () => number;

  constructor(private readonly options: IssuerKeysOptions) {
    this.now = options.now ?? Date.now;
  }

  /** The policy a provider's fetches follow: its own issuer (and jwksUri) hosts plus the allowlist. */
  policyFor(provider: Pick<IssuerEndpoint, 'issuer' | 'jwksUri'>): OutboundPolicy {
    const implicit = [provider.issuer, provider.jwksUri]
      .filter((u): u is string => !!u)
      .map((u) => hostPort(new URL(u)));
    return new OutboundPolicy(
      [...this.options.allowedHosts, ...(this.options.allowLoopback ? LOOPBACK_HOSTS : [])],
      implicit,
      { allowLoopback: this.options.allowLoopback },
    );
  }

  /** jwtVerify against the provider's keys, refetching them once if the token's `kid` is unknown. */
  async verify(provider: IssuerEndpoint, token: string, options: JWTVerifyOptions): Promise<JWTVerifyResult> {
    let entry = await this.current(provider);
    try {
      return await jwtVerify(token, entry.keys, options);
    } catch (error) {
      if (!(error instanceof joseErrors.JWKSNoMatchingKey)) throw error;
      const last = this.lastAttemptMs.get(provider.id) ?? 0;
      if (this.now() - last < this.options.refetchMs) throw error;
      entry = await this.refresh(provider);
      return jwtVerify(token, entry.keys, options);
    }
  }

  /** Drops what is cached for a provider (deleted or edited). */
  forget(providerId: string): void {
    this.entries.delete(providerId);
    this.lastAttemptMs.delete(providerId);
    this.failures.delete(providerId);
  }

  clear(): void {
    this.entries.clear();
    this.lastAttemptMs.clear();
    this.failures.clear();
  }

  private async current(provider: IssuerEndpoint): Promise<KeySetEntry> {
    const entry = this.entries.get(provider.id);
    if (entry && entry.source === sourceOf(provider) && this.now() - entry.fetchedMs < this.options.maxAgeMs)
      return entry;
    return this.refresh(provider);
  }

  private refresh(provider: IssuerEndpoint): Promise<KeySetEntry> {
    // Anyone can send a token naming a provider: while its issuer is failing, every such request
    // gets the last failure instead of a new outbound fetch (a floor on the interval, THREATS.md).
    const failure = this.failures.get(provider.id);
    if (failure && this.now() - failure.atMs < Math.min(this.options.refetchMs, FAILURE_FLOOR_MS))
      return Promise.reject(failure.error);
    let pending = this.inflight.get(provider.id);
    if (!pending) {
      this.lastAttemptMs.set(provider.id, this.now());
      pending = this.fetch(provider)
        .then(
          (entry) => {
            this.entries.set(provider.id, entry);
            this.failures.delete(provider.id);
            return entry;
          },
          (error: unknown) => {
            this.failures.set(provider.id, { error, atMs: this.now() });
            throw error;
          },
        )
        .finally(() => this.inflight.delete(provider.id));
      this.inflight.set(provider.id, pending);
    }
    return pending;
  }

  private async fetch(provider: IssuerEndpoint): Promise<KeySetEntry> {
    const http = new OutboundHttp({
      policy: this.policyFor(provider),
      target: `identity-provider ${provider.name}`,
      requestTimeoutMs: this.options.requestTimeoutMs,
    });
    try {
      let jwksUri = provider.jwksUri;
      if (!jwksUri) {
        const discovery = readJson(
          await this.get(
            http,
            provider,
            new URL(`${provider.issuer.replace(/\/$/, '')}/.well-known/openid-configuration`),
            'discovery',
          ),
          provider,
          'discovery',
        );
        // OpenID Connect Discovery 1.0 §4.3: the document's issuer must be the one asked for, exactly.
        if (discovery.issuer !== provider.issuer)
          throw unavailable(
            provider,
            `its discovery document names issuer ${JSON.stringify(String(discovery.issuer).slice(0, 200))}, not ${provider.issuer}`,
          );
        if (typeof discovery.jwks_uri !== 'string')
          throw unavailable(provider, 'its discovery document has no jwks_uri');
        jwksUri = discovery.jwks_uri;
      }
      let url: URL;
      try {
        url = new URL(jwksUri);
      } catch {
        throw unavailable(provider, 'its jwks_uri is not a URL');
      }
      const jwks = readJson(await this.get(http, provider, url, 'JWKS'), provider, 'JWKS');
      if (!Array.isArray(jwks.keys)) throw unavailable(provider, 'its JWKS has no keys array');
      const usable = (jwks.keys as Array<Record<string, unknown>>).filter(
        (key) => key && ASYMMETRIC_KTY.has(key.kty as string) && key.use !== 'enc',
      );
      let keys: JWTVerifyGetKey;
      try {
        keys = createLocalJWKSet({ keys: usable } as JSONWebKeySet);
      } catch {
        throw unavailable(provider, 'its JWKS is malformed');
      }
      return { source: sourceOf(provider), keys, fetchedMs: this.now() };
    } finally {
      await http.close();
    }
  }

  private async get(http: OutboundHttp, provider: IssuerEndpoint, url: URL, what: string): Promise<Buffer> {
    let answer;
    try {
      answer = await http.sendFollowingRedirects(
        {
          method: 'GET',
          url,
          headers: { accept: 'application/json' },
          maxResponseBytes: MAX_DOCUMENT_BYTES,
          operation: `GET ${what}`,
        },
        AbortSignal.timeout(this.options.requestTimeoutMs * 2),
        3,
      );
    } catch (error) {
      throw unavailable(provider, `its ${what} could not be fetched (${(error as Error).message})`);
    }
    if (answer.status !== 200) throw unavailable(provider, `its ${what} answered HTTP ${answer.status}`);
    return answer.body;
  }
}

function readJson(body: Buffer, provider: IssuerEndpoint, what: string): Record<string, unknown> {
  try {
    const parsed = JSON.parse(body.toString('utf8')) as unknown;
    if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed))
      return parsed as Record<string, unknown>;
  } catch {
    // reported below
  }
  throw unavailable(provider, `its ${what} is not a JSON object`);
}

function sourceOf(provider: IssuerEndpoint): string {
  return `${provider.issuer} ${provider.jwksUri ?? ''}`;
}

function hostPort(url: URL): string {
  return `${url.hostname}:${url.port || (url.protocol === 'https:' ? '443' : '80')}`;
}

/** 503 naming the provider: without its keys no ID token of it can be verified, so none is accepted. */
export function unavailable(provider: Pick<IssuerEndpoint, 'name'>, reason: string): DomainError {
  return new DomainError(
    ErrorCode.IDENTITY_PROVIDER_UNAVAILABLE,
    `identity provider '${provider.name}': ${reason}; ID tokens of this provider are refused until it is reachable`,
    {
      provider: provider.name,
      retryAfterSeconds: 5,
    },
  );
}
