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
 * What every request with one cached token would otherwise rebuild: the granted key names, sorted,
 * and the audit `workload` part per key (and for rows not tied to a key), deep-frozen so the audit
 * writer may keep their canonical text (canonicalActorJson). Built once per verified and matched
 * token (WorkloadIdentityService caches it with the token).
 */
export interface PreparedGrant {
  readonly grant: WorkloadGrant;
  readonly keys: readonly string[];
  readonly workload: Readonly<WorkloadActor>;
  readonly workloadByKey: ReadonlyMap<string, Readonly<WorkloadActor>>;
}

export function prepareGrant(grant: WorkloadGrant): PreparedGrant {
  const namedClaims = (patterns: ClaimPatterns): Record<string, string> => {
    const out: Record<string, string> = {};
    for (const name of Object.keys(patterns)) {
      const value = grant.claims[name];
      if (typeof value === 'string') out[name] = value;
    }
    return out;
  };
  const workloadActor = (part: Pick<WorkloadActor, 'rule' | 'rules' | 'claims'>): Readonly<WorkloadActor> => {
    const workload: WorkloadActor = {
      provider: grant.providerName,
      sub: grant.sub,
      ...part,
      ...(grant.jti !== undefined ? { jti: grant.jti } : {}),
    };
    Object.freeze(workload.claims);
    if (workload.rules) Object.freeze(workload.rules);
    return Object.freeze(workload);
  };
  const all: Record<string, string> = {};
  for (const rule of grant.rules) Object.assign(all, namedClaims(rule.claims));
  const workloadByKey = new Map<string, Readonly<WorkloadActor>>();
  for (const [key, rule] of grant.ruleByKey)
    workloadByKey.set(key, workloadActor({ rule: rule.name, claims: namedClaims(rule.claims) }));
  return {
    grant,
    keys: Object.freeze([...grant.ruleByKey.keys()].sort()),
    workload: workloadActor({ rules: grant.rules.map((rule) => rule.name), claims: all }),
    workloadByKey,
  };
}

/**
 * The caller behind a verified OIDC ID token: the signer role on the keys its matching workload
 * rules name, nothing else. Audit rows name the provider, `sub`, the rule, `jti` and the claims the
 * rule named — never the token.
 */
export class WorkloadPrincipal implements Principal {
  readonly role: Role = 'signer';

  constructor(
    private readonly prepared: PreparedGrant,
    readonly address: string,
  ) {}

  get keys(): readonly string[] {
    return this.prepared.keys;
  }

  get tokenId(): string {
    return this.prepared.grant.identityId;
  }

  get tokenName(): string {
    return `oidc:${this.prepared.grant.providerName}`;
  }

  canUseKey(name: string): boolean {
    return this.prepared.grant.ruleByKey.has(name);
  }

  assertCanUseKey(name: string): void {
    if (!this.canUseKey(name)) throw keyNotFound(name);
  }

  get auditActor(): AuditActor {
    return this.actor(this.prepared.workload);
  }

  auditActorFor(name: string): AuditActor {
    return this.actor(this.prepared.workloadByKey.get(name) ?? this.prepared.workload);
  }

  private actor(workload: Readonly<WorkloadActor>): AuditActor {
    return { tokenId: this.tokenId, tokenName: this.tokenName, role: this.role, address: this.address, workload };
  }
}
