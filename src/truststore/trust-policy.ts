import { isRegistryScope, TruststoreContent } from './truststore-content';

/** The file released Notation 1.x reads its trust policy from (2.x falls back to it). */
export const TRUST_POLICY_FILE = 'trustpolicy.json';
/** The name Notation 2.x reads first; bundles carry the same policy under it. */
export const TRUST_POLICY_OCI_FILE = 'trustpolicy.oci.json';

/**
 * Notation's trust policy (`trustpolicy.json`) for a truststore, and a validator for the rules NOTARY.md
 * collects ("Trust store and trust policy"). The builder runs the validator on what it produced, so
 * a bundle with a policy Notation would refuse is never stored.
 */
export const TRUST_STORE_NAME = /^[a-zA-Z0-9_.-]+$/;
const STORE_TYPES = ['ca', 'signingAuthority', 'tsa'] as const;
const LEVELS = ['strict', 'permissive', 'audit', 'skip'] as const;

export interface TrustPolicyDocument {
  version: '1.0';
  trustPolicies: TrustPolicyStatement[];
}

export interface TrustPolicyStatement {
  name: string;
  registryScopes: string[];
  signatureVerification: {
    level: string;
    override?: Record<string, string>;
    verifyTimestamp?: 'always' | 'afterCertExpiry';
  };
  trustStores?: string[];
  trustedIdentities?: string[];
}

/** The policy name inside the file: one policy per truststore. */
export function trustPolicyName(truststore: string): string {
  return `signet-${truststore}`;
}

export function buildTrustPolicy(content: TruststoreContent): TrustPolicyDocument {
  const stores = [`ca:${content.name}`, ...(content.tsaRoots.length ? [`tsa:${content.name}`] : [])];
  // Without any signing key under the roots yet there is no subject to pin; "*" still requires
  // the chain to end in one of these roots.
  const identities = content.trustedIdentities.length ? [...content.trustedIdentities] : ['*'];
  return {
    version: '1.0',
    trustPolicies: [
      {
        name: trustPolicyName(content.name),
        registryScopes: [...content.trustPolicy.registryScopes],
        // With Signet's TSA roots in a tsa store, a timestamp taken while the leaf was valid keeps
        // the signature valid after the leaf expires or is rotated away (docs/timestamping.md).
        signatureVerification: content.tsaRoots.length
          ? { level: content.trustPolicy.level, verifyTimestamp: 'afterCertExpiry' }
          : { level: content.trustPolicy.level },
        trustStores: stores,
        trustedIdentities: identities,
      },
    ],
  };
}

/** Every NOTARY.md trust-policy rule `document` breaks; empty when Notation would accept it. */
export function trustPolicyProblems(document: unknown): string[] {
  const problems: string[] = [];
  if (typeof document !== 'object' || document === null || Array.isArray(document))
    return ['the document must be a JSON object'];
  const doc = document as Record<string, unknown>;
  if (doc.version !== '1.0') problems.push(`version must be "1.0"`);
  if (!Array.isArray(doc.trustPolicies) || doc.trustPolicies.length === 0)
    return [...problems, 'trustPolicies must be a non-empty list'];
  const names = new Set<string>();
  const scopeOwner = new Map<string, string>();
  doc.trustPolicies.forEach((raw: unknown, index: number) => {
    const where = `trustPolicies[${index}]`;
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      problems.push(`${where} must be an object`);
      return;
    }
    const policy = raw as Record<string, unknown>;
    const name = policy.name;
    if (typeof name !== 'string' || name.trim() === '') problems.push(`${where}.name must be a non-empty string`);
    else if (names.has(name)) problems.push(`${where}.name "${name}" is not unique`);
    else names.add(name);

    const scopes = policy.registryScopes;
    if (!Array.isArray(scopes) || scopes.length === 0 || scopes.some((s) => typeof s !== 'string')) {
      problems.push(`${where}.registryScopes must be a non-empty list of strings`);
    } else {
      if (scopes.includes('*') && scopes.length > 1) problems.push(`${where}.registryScopes: "*" must stand alone`);
      for (const scope of scopes as string[]) {
        if (scope !== '*' && !isRegistryScope(scope))
          problems.push(`${where}.registryScopes: "${scope}" is not host[:port]/repository`);
        const owner = scopeOwner.get(scope);
        if (owner !== undefined && owner !== where)
          problems.push(`${where}.registryScopes: "${scope}" already appears in ${owner}`);
        if (owner === where) problems.push(`${where}.registryScopes: "${scope}" repeats`);
        scopeOwner.set(scope, where);
      }
    }

    const verification = policy.signatureVerification as Record<string, unknown> | undefined;
    const level = verification?.level;
    if (typeof verification !== 'object' || verification === null || !(LEVELS as readonly unknown[]).includes(level)) {
      problems.push(`${where}.signatureVerification.level must be one of ${LEVELS.join(', ')}`);
      return;
    }
    if (
      verification.override !== undefined &&
      (typeof verification.override !== 'object' || verification.override === null)
    ) {
      problems.push(`${where}.signatureVerification.override must be an object`);
    }
    if (
      verification.verifyTimestamp !== undefined &&
      verification.verifyTimestamp !== 'always' &&
      verification.verifyTimestamp !== 'afterCertExpiry'
    ) {
      problems.push(`${where}.signatureVerification.verifyTimestamp must be "always" or "afterCertExpiry"`);
    }
    const stores = policy.trustStores;
    const identities = policy.trustedIdentities;
    if (level === 'skip') {
      if ((Array.isArray(stores) && stores.length) || (Array.isArray(identities) && identities.length)) {
        problems.push(`${where}: level skip takes no trustStores or trustedIdentities`);
      }
      return;
    }
    if (!Array.isArray(stores) || stores.length === 0) {
      problems.push(`${where}.trustStores must be a non-empty list for level ${String(level)}`);
    } else {
      let signingStores = 0;
      for (const store of stores) {
        const match = typeof store === 'string' ? /^([A-Za-z]+):(.*)$/.exec(store) : null;
        if (!match || !(STORE_TYPES as readonly string[]).includes(match[1]) || !TRUST_STORE_NAME.test(match[2])) {
          problems.push(
            `${where}.trustStores: "${String(store)}" is not {ca|signingAuthority|tsa}:<name matching ${TRUST_STORE_NAME.source}>`,
          );
          continue;
        }
        if (match[1] !== 'tsa') signingStores++;
      }
      if (new Set(stores).size !== stores.length) problems.push(`${where}.trustStores repeats a store`);
      if (signingStores === 0) problems.push(`${where}.trustStores needs a ca or signingAuthority store`);
    }
    if (!Array.isArray(identities) || identities.length === 0) {
      problems.push(`${where}.trustedIdentities must be a non-empty list for level ${String(level)}`);
    } else {
      if (identities.includes('*') && identities.length > 1)
        problems.push(`${where}.trustedIdentities: "*" must stand alone`);
      for (const identity of identities) {
        if (identity === '*') continue;
        const problem = typeof identity === 'string' ? identityProblem(identity) : 'is not a string';
        if (problem) problems.push(`${where}.trustedIdentities: "${String(identity)}" ${problem}`);
      }
    }
  });
  return problems;
}

/** `x509.subject: C=..,ST=..,O=..[,…]` with C, ST and O each present once (Notation needs them). */
function identityProblem(identity: string): string | undefined {
  const prefix = 'x509.subject:';
  if (!identity.startsWith(prefix)) return 'must start with "x509.subject:"';
  const attributes = splitDn(identity.slice(prefix.length).trim());
  if (!attributes) return 'has a malformed distinguished name';
  const counts = new Map<string, number>();
  for (const [type] of attributes) counts.set(type.toUpperCase(), (counts.get(type.toUpperCase()) ?? 0) + 1);
  for (const required of ['C', 'ST', 'O']) if (counts.get(required) !== 1) return `must name ${required} exactly once`;
  for (const [type, count] of counts) if (count > 1) return `repeats ${type}`;
  return undefined;
}

/** RFC 4514 DN → [type, value] pairs; undefined when malformed or multi-valued. */
function splitDn(dn: string): Array<[string, string]> | undefined {
  const parts: string[] = [];
  let current = '';
  for (let i = 0; i < dn.length; i++) {
    const c = dn[i];
    if (c === '\\' && i + 1 < dn.length) {
      current += c + dn[++i];
      continue;
    }
    if (c === '+') return undefined; // multi-valued RDN
    if (c === ',') {
      parts.push(current);
      current = '';
      continue;
    }
    current += c;
  }
  parts.push(current);
  const result: Array<[string, string]> = [];
  for (const part of parts) {
    const eq = part.indexOf('=');
    if (eq <= 0) return undefined;
    const type = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (!/^[A-Za-z][A-Za-z0-9-]*$/.test(type) || value === '') return undefined;
    result.push([type, value]);
  }
  return result;
}
