import { hash as cryptoHash } from 'node:crypto';
import type { AuditActor, WorkloadActor } from '../audit/audit.types';
import { keyNotFound, Principal } from '../auth/principal';
import type { Role } from '../common/roles';
import type { ClaimPatterns } from './claim-rules';

/** What a verified ID token was granted: per key, the rule that granted it. */
export interface WorkloadGrant {
  providerName: string;
  /** A stable UUID for (provider, sub): the rate-limit bucket and idempotency scope of the workload. */
  identityId: string;
  sub: string;
  jti?: string;
  /** The token's claims (verified). */
  claims: Readonly<Record<string, unknown>>;
  /** Matched rules, by name, with their claim patterns. */
  rules: ReadonlyArray<{ name: string; claims: ClaimPatterns }>;
  /** Key name → the first matched rule (by name) granting it. */
  ruleByKey: ReadonlyMap<string, { name: string; claims: ClaimPatterns }>;
}

/** A UUID-shaped SHA-256 of provider id and `sub`: idempotency keys and rate buckets are per workload. */
export function workloadIdentityId(providerId: string, sub: string): string {
  const hex = cryptoHash('sha256', `${providerId}\n${sub}`, 'hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-5${hex.slice(13, 16)}-${((parseInt(hex[16], 16) & 3) | 8).toString(16)}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

/**
 * The caller behind a verified OIDC ID token: the signer role on the keys its matching workload
 * rules name, nothing else. Audit rows name the provider, `sub`, the rule, `jti` and the claims the
 * rule named — never the token.
 */
export class WorkloadPrincipal implements Principal {
  readonly role: Role = 'signer';
  readonly keys: readonly string[];

  constructor(
    private readonly grant: WorkloadGrant,
    readonly address: string,
  ) {
    this.keys = [...grant.ruleByKey.keys()].sort();
  }

  get tokenId(): string {
    return this.grant.identityId;
  }

  get tokenName(): string {
    return `oidc:${this.grant.providerName}`;
  }

  canUseKey(name: string): boolean {
    return this.grant.ruleByKey.has(name);
  }

  assertCanUseKey(name: string): void {
    if (!this.canUseKey(name)) throw keyNotFound(name);
  }

  get auditActor(): AuditActor {
    const claims: Record<string, string> = {};
    for (const rule of this.grant.rules) Object.assign(claims, this.namedClaims(rule.claims));
    return this.actor({ rules: this.grant.rules.map((rule) => rule.name), claims });
  }

  auditActorFor(name: string): AuditActor {
    const rule = this.grant.ruleByKey.get(name);
    if (!rule) return this.auditActor;
    return this.actor({ rule: rule.name, claims: this.namedClaims(rule.claims) });
  }

  private actor(part: Pick<WorkloadActor, 'rule' | 'rules' | 'claims'>): AuditActor {
    const workload: WorkloadActor = { provider: this.grant.providerName, sub: this.grant.sub, ...part, ...(this.grant.jti !== undefined ? { jti: this.grant.jti } : {}) };
    return { tokenId: this.tokenId, tokenName: this.tokenName, role: this.role, address: this.address, workload };
  }

  private namedClaims(patterns: ClaimPatterns): Record<string, string> {
    const out: Record<string, string> = {};
    for (const name of Object.keys(patterns)) {
      const value = this.grant.claims[name];
      if (typeof value === 'string') out[name] = value;
    }
    return out;
  }
}
