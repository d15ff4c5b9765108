import { Inject, Injectable, Logger, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import { decodeJwt, decodeProtectedHeader, errors as joseErrors, JWTPayload } from 'jose';
import { hash as cryptoHash } from 'node:crypto';
import type { Principal } from '../auth/principal';
import type { IdTokenAuthenticator } from '../auth/id-token-authenticator';
import type { ConnectionTokenMemo } from '../auth/token.service';
import { DomainError, ErrorCode } from '../common/errors';
import { SIGNET_CONFIG, SignetConfig } from '../config/config';
import { ChangeNotifier } from '../database/change-notifier';
import { ClaimPatterns, claimsMatch, claimsOfWrongType } from './claim-rules';
import { IDENTITY_CHANNEL } from './identity-channel';
import { IdentityRepository, ProviderRow, RuleRow } from './identity.repository';
import { IssuerKeys } from './issuer-keys';
import { PreparedGrant, prepareGrant, workloadIdentityId, WorkloadPrincipal } from './workload-principal';

/**
 * Longest bearer ID token accepted. GitHub Actions, GitLab and Kubernetes tokens are 1-2 KiB;
 * anything near this is not an ID token, and verifying it would cost for nothing.
 */
export const MAX_ID_TOKEN_CHARS = 8192;
const CACHE_LIMIT = 10_000;
const MAX_SUB_CHARS = 1024;
const MAX_JTI_CHARS = 256;
const PURGE_INTERVAL_MS = 10 * 60_000;

interface ProviderRecord {
  id: string;
  name: string;
  issuer: string;
  audiences: string[];
  algorithms: string[];
  jwksUri: string | null;
  clockSkewSeconds: number;
  singleUse: boolean;
  /** Changes whenever the provider is edited: cached verifications of an older version are redone. */
  version: number;
  /** Claim names its rules match: tokens carrying them in another type than string are refused. */
  ruleClaims: Set<string>;
  rules: Array<{ name: string; claims: ClaimPatterns; keys: string[]; expiresAtMs: number | null }>;
}

/** Providers and rules as one replica knows them, reloaded on change notifications or after the token cache time. */
interface Snapshot {
  byIssuer: Map<string, ProviderRecord>;
  byId: Map<string, ProviderRecord>;
  loadedMs: number;
  /** Incremented per load: a cached token matched against an older snapshot is matched again. */
  generation: number;
}

/** A verified token, as cached until its `exp`. */
interface VerifiedToken {
  providerId: string;
  providerVersion: number;
  sub: string;
  jti?: string;
  claims: JWTPayload;
  expMs: number;
  singleUse: boolean;
}

interface CachedToken {
  verified: VerifiedToken;
  generation: number;
  grant: PreparedGrant;
  /** The earlier of the token's exp and the expiry of a rule it matched. */
  validUntilMs: number;
}

/**
 * Bearer OIDC ID tokens on the signing routes (workload identity). A token is verified once —
 * signature by a key of its issuer's JWKS, `iss`, `aud`, `exp`, `nbf`, `iat`, algorithm in the
 * provider's list (`none` and HMAC never) — then matched against the provider's workload rules;
 * the result is cached by the token's SHA-256 until `exp`, so a pipeline signing many artifacts
 * with one token pays for one verification and later requests take the synchronous path.
 *
 * Rule and provider changes reach the cache through IDENTITY_CHANNEL: at once on the replica that
 * made them, on others when the notification arrives, and in any case within
 * SIGNET_TOKEN_CACHE_SECONDS (the snapshot of providers and rules is never older than that).
 */
@Injectable()
export class WorkloadIdentityService implements IdTokenAuthenticator, OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger('WorkloadIdentity');
  private readonly tokens = new Map<string, CachedToken>();
  private readonly keys: IssuerKeys;
  private snapshot?: Snapshot;
  private loading?: Promise<Snapshot>;
  private generation = 0;
  private purgeTimer?: NodeJS.Timeout;

  constructor(
    private readonly repository: IdentityRepository,
    private readonly notifier: ChangeNotifier,
    @Inject(SIGNET_CONFIG) private readonly config: SignetConfig,
  ) {
    this.keys = new IssuerKeys({
      allowedHosts: config.distribution.allowedHosts,
      allowLoopback: config.distribution.allowLoopback,
      requestTimeoutMs: Math.min(config.distribution.attemptTimeoutMs, 10_000),
      refetchMs: config.identity.jwksRefetchSeconds * 1000,
      maxAgeMs: config.identity.jwksMaxAgeSeconds * 1000,
    });
  }

  onModuleInit(): void {
    this.notifier.on(IDENTITY_CHANNEL, (payload) => this.invalidate(payload));
    this.purgeTimer = setInterval(() => {
      this.repository
        .purgeUsedTokens()
        .catch((error: Error) => this.logger.debug(`could not purge used ID tokens: ${error.message}`));
    }, PURGE_INTERVAL_MS);
    this.purgeTimer.unref();
  }

  onModuleDestroy(): void {
    clearInterval(this.purgeTimer);
  }

  authenticate(token: string, address: string, connection?: ConnectionTokenMemo): Principal | Promise<Principal> {
    if (token.length > MAX_ID_TOKEN_CHARS)
      throw unauthenticated(`the ID token is longer than ${MAX_ID_TOKEN_CHARS} characters`);
    // A pipeline sends one token on every request of a keep-alive connection: hash it once per
    // connection, as TokenService does for sgt_ tokens (the memo holds the token's own hash, nothing granted).
    let hash: string;
    if (connection !== undefined && connection.token === token) {
      hash = connection.hash;
    } else {
      hash = cryptoHash('sha256', token, 'hex');
      if (connection !== undefined) {
        connection.token = token;
        connection.hash = hash;
      }
    }
    const cached = this.tokens.get(hash);
    const snapshot = this.snapshot;
    if (cached && snapshot && cached.generation === snapshot.generation && this.fresh(snapshot)) {
      if (cached.verified.singleUse) throw alreadyUsed();
      if (cached.validUntilMs > Date.now()) return new WorkloadPrincipal(cached.grant, address);
    }
    return this.authenticateSlowly(token, hash, address);
  }

  /** Drops cached state after a change (payloads of IDENTITY_CHANNEL). */
  invalidate(payload: string): void {
    // A load that was running reads what may predate the change: its result is not kept, and
    // requests from now on wait for a new load.
    this.snapshot = undefined;
    this.loading = undefined;
    this.generation++;
    if (payload.startsWith('provider:')) {
      const id = payload.slice('provider:'.length);
      this.keys.forget(id);
      for (const [hash, entry] of this.tokens) if (entry.verified.providerId === id) this.tokens.delete(hash);
    } else if (payload !== 'rules') {
      this.keys.clear();
      this.tokens.clear();
    }
  }

  private async authenticateSlowly(token: string, hash: string, address: string): Promise<Principal> {
    const snapshot = await this.currentSnapshot();
    const cached = this.tokens.get(hash);
    let verified: VerifiedToken;
    if (cached && snapshot.byId.get(cached.verified.providerId)?.version === cached.verified.providerVersion) {
      if (cached.verified.singleUse) throw alreadyUsed();
      if (cached.verified.expMs <= Date.now()) throw unauthenticated('the ID token has expired');
      verified = cached.verified;
    } else {
      if (cached) this.tokens.delete(hash);
      verified = await this.verify(token, snapshot);
    }
    const provider = snapshot.byId.get(verified.providerId);
    if (!provider) throw unauthenticated('the identity provider of this ID token was removed');
    // Rules may have changed since the token was verified: claims of the wrong type are refused, not just unmatched.
    const wrong = claimsOfWrongType(provider.ruleClaims, verified.claims);
    if (wrong.length > 0) throw wrongTypes(provider.name, wrong);
    const { grant, validUntilMs } = this.match(provider, verified);
    if (this.tokens.size >= CACHE_LIMIT) this.tokens.delete(this.tokens.keys().next().value as string);
    this.tokens.set(hash, { verified, generation: snapshot.generation, grant, validUntilMs });
    return new WorkloadPrincipal(grant, address);
  }

  private async verify(token: string, snapshot: Snapshot): Promise<VerifiedToken> {
    let alg: unknown;
    let iss: unknown;
    try {
      alg = decodeProtectedHeader(token).alg;
      iss = decodeJwt(token).iss;
    } catch {
      throw unauthenticated('the bearer value is not a well-formed ID token');
    }
    if (typeof alg !== 'string' || alg.toLowerCase() === 'none' || /^HS/i.test(alg)) {
      throw unauthenticated(`ID tokens signed with '${String(alg).slice(0, 20)}' are never accepted`);
    }
    if (typeof iss !== 'string') throw unauthenticated('the ID token has no issuer (iss)');
    const provider = snapshot.byIssuer.get(iss);
    if (!provider)
      throw unauthenticated("no identity provider is configured for the ID token's issuer", {
        issuer: iss.slice(0, 200),
      });
    if (!provider.algorithms.includes(alg))
      throw unauthenticated(`identity provider '${provider.name}' does not allow algorithm ${alg}`, {
        provider: provider.name,
      });

    let payload: JWTPayload;
    try {
      ({ payload } = await this.keys.verify(provider, token, {
        issuer: provider.issuer,
        audience: provider.audiences,
        algorithms: provider.algorithms,
        clockTolerance: provider.clockSkewSeconds,
        requiredClaims: ['sub', 'exp', 'iat'],
      }));
    } catch (error) {
      if (error instanceof DomainError) throw error;
      throw unauthenticated(`identity provider '${provider.name}': ${reasonFor(error)}`, { provider: provider.name });
    }
    const nowS = Date.now() / 1000;
    if (typeof payload.iat !== 'number' || payload.iat > nowS + provider.clockSkewSeconds) {
      throw unauthenticated(`identity provider '${provider.name}': the ID token's iat is in the future`, {
        provider: provider.name,
      });
    }
    if (typeof payload.sub !== 'string' || payload.sub.length === 0 || payload.sub.length > MAX_SUB_CHARS) {
      throw wrongTypes(provider.name, ['sub']);
    }
    if (
      payload.jti !== undefined &&
      (typeof payload.jti !== 'string' || payload.jti.length === 0 || payload.jti.length > MAX_JTI_CHARS)
    ) {
      throw wrongTypes(provider.name, ['jti']);
    }
    const expMs = (payload.exp as number) * 1000;
    if (provider.singleUse) {
      if (payload.jti === undefined)
        throw unauthenticated(
          `identity provider '${provider.name}' accepts each token once and needs a jti claim to tell them apart`,
          { provider: provider.name },
        );
      let first: boolean;
      try {
        first = await this.repository.claimTokenUse(
          provider.id,
          payload.jti,
          new Date(expMs + provider.clockSkewSeconds * 1000),
        );
      } catch {
        throw new DomainError(ErrorCode.DATABASE_UNAVAILABLE, 'the database is unavailable; retry later', {
          retryAfterSeconds: 1,
        });
      }
      if (!first) throw alreadyUsed();
    }
    return {
      providerId: provider.id,
      providerVersion: provider.version,
      sub: payload.sub,
      jti: payload.jti,
      claims: payload,
      expMs,
      singleUse: provider.singleUse,
    };
  }

  private match(provider: ProviderRecord, verified: VerifiedToken): { grant: PreparedGrant; validUntilMs: number } {
    const now = Date.now();
    let validUntilMs = verified.expMs;
    const rules: Array<{ name: string; claims: ClaimPatterns }> = [];
    const ruleByKey = new Map<string, { name: string; claims: ClaimPatterns }>();
    for (const rule of provider.rules) {
      if (rule.expiresAtMs !== null && rule.expiresAtMs <= now) continue;
      if (!claimsMatch(rule.claims, verified.claims)) continue;
      if (rule.expiresAtMs !== null) validUntilMs = Math.min(validUntilMs, rule.expiresAtMs);
      const matched = { name: rule.name, claims: rule.claims };
      rules.push(matched);
      for (const key of rule.keys) if (!ruleByKey.has(key)) ruleByKey.set(key, matched);
    }
    return {
      grant: prepareGrant({
        providerName: provider.name,
        identityId: workloadIdentityId(provider.id, verified.sub),
        sub: verified.sub,
        jti: verified.jti,
        claims: verified.claims,
        rules,
        ruleByKey,
      }),
      validUntilMs,
    };
  }

  private fresh(snapshot: Snapshot): boolean {
    return performance.now() - snapshot.loadedMs < this.config.auth.tokenCacheSeconds * 1000;
  }

  private currentSnapshot(): Promise<Snapshot> {
    if (this.snapshot && this.fresh(this.snapshot)) return Promise.resolve(this.snapshot);
    if (!this.loading) {
      const loading: Promise<Snapshot> = this.load().finally(() => {
        if (this.loading === loading) this.loading = undefined;
      });
      this.loading = loading;
    }
    return this.loading;
  }

  private async load(): Promise<Snapshot> {
    const generation = ++this.generation;
    let providers: ProviderRow[];
    let rules: RuleRow[];
    try {
      [providers, rules] = await Promise.all([this.repository.listProviders(), this.repository.listRules()]);
    } catch {
      throw new DomainError(ErrorCode.DATABASE_UNAVAILABLE, 'the database is unavailable; retry later', {
        retryAfterSeconds: 1,
      });
    }
    const byId = new Map<string, ProviderRecord>();
    const byIssuer = new Map<string, ProviderRecord>();
    for (const row of providers) {
      const record: ProviderRecord = {
        id: row.id,
        name: row.name,
        issuer: row.issuer,
        audiences: row.audiences,
        algorithms: row.allowed_algorithms,
        jwksUri: row.jwks_uri,
        clockSkewSeconds: row.clock_skew_seconds,
        singleUse: row.single_use,
        version: row.updated_at.getTime(),
        ruleClaims: new Set(),
        rules: [],
      };
      byId.set(row.id, record);
      byIssuer.set(row.issuer, record);
    }
    for (const row of rules) {
      const provider = byId.get(row.provider_id);
      if (!provider) continue;
      provider.rules.push({
        name: row.name,
        claims: row.claims,
        keys: row.key_names,
        expiresAtMs: row.expires_at?.getTime() ?? null,
      });
      for (const claim of Object.keys(row.claims)) provider.ruleClaims.add(claim);
    }
    const snapshot: Snapshot = { byId, byIssuer, loadedMs: performance.now(), generation };
    // A notification that arrived while this load ran started a newer one: keep that one's result.
    if (generation === this.generation) this.snapshot = snapshot;
    return snapshot;
  }
}

function reasonFor(error: unknown): string {
  if (error instanceof joseErrors.JWTExpired) return 'the ID token has expired';
  if (error instanceof joseErrors.JWTClaimValidationFailed) {
    switch (error.claim) {
      case 'iss':
        return 'the ID token was issued by another issuer';
      case 'aud':
        return 'the ID token is not for this audience';
      case 'nbf':
        return 'the ID token is not yet valid';
      default:
        return `the ID token's ${error.claim} claim is missing or invalid`;
    }
  }
  if (error instanceof joseErrors.JOSEAlgNotAllowed) return "the ID token's algorithm is not allowed";
  if (error instanceof joseErrors.JWKSNoMatchingKey)
    return "no key of the issuer's JWKS matches the ID token (unknown kid)";
  if (error instanceof joseErrors.JWKSMultipleMatchingKeys)
    return "several keys of the issuer's JWKS match the ID token and none verifies it";
  if (error instanceof joseErrors.JWSSignatureVerificationFailed) return "the ID token's signature does not verify";
  return 'the ID token is malformed';
}

function unauthenticated(message: string, details?: Record<string, unknown>): DomainError {
  return new DomainError(ErrorCode.UNAUTHENTICATED, message, details);
}

function alreadyUsed(): DomainError {
  return unauthenticated('this ID token was already used; its identity provider accepts each token once (singleUse)');
}

function wrongTypes(provider: string, claims: string[]): DomainError {
  return unauthenticated(
    `identity provider '${provider}': the ID token's claim(s) ${claims.join(', ')} must be non-empty strings`,
    { provider, claims },
  );
}
