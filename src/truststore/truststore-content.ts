import { createHash, X509Certificate } from 'node:crypto';
import { DomainError, ErrorCode } from '../common/errors';

/**
 * What one truststore version holds, and its canonical form. The canonical form is the stored
 * record of a version: its SHA-256 is the version's content digest (`sha256:<hex>`), so two
 * versions with the same digest hold exactly the same trust material and policy, and anyone with
 * the stored bytes can recompute the digest. Every bundle format is rendered from it.
 *
 * Canonical form: UTF-8 JSON, object keys sorted, no insignificant whitespace, binaries as
 * standard base64; lists sorted (roots and CRLs by CA name then generation, identities as strings).
 */
export const CONTENT_FORMAT = 'signet-truststore/1';
export const TRUSTSTORE_NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
export const TRUST_POLICY_LEVELS = ['strict', 'permissive', 'audit'] as const;
export type TrustPolicyLevel = (typeof TRUST_POLICY_LEVELS)[number];

export interface TrustPolicySettings {
  /** `["*"]`, or `host[:port]/repository` scopes. */
  registryScopes: string[];
  level: TrustPolicyLevel;
}

export interface CertificateEntry {
  /** CA name and key generation (`signet-dev-root`, `signet-dev-root-g1`). */
  ca: string;
  generation: string;
  /** Lower-case hex SHA-256 of the DER: the fingerprint the rotation gate asks about. */
  sha256: string;
  subject: string;
  notBefore: string;
  notAfter: string;
  /** DER, base64. */
  der: string;
}

export interface CrlEntry {
  ca: string;
  generation: string;
  crlNumber: string;
  thisUpdate: string;
  nextUpdate: string;
  der: string;
}

export interface TruststoreContent {
  format: typeof CONTENT_FORMAT;
  name: string;
  trustPolicy: TrustPolicySettings;
  /** Root CA certificates: the trust anchors for code signing. */
  roots: CertificateEntry[];
  /** Self-signed TSA roots, for RFC 3161 timestamps (Notation `tsa` store). */
  tsaRoots: CertificateEntry[];
  /** Current CRLs of the root generations and the CA generations beneath them (offline consumers). */
  crls: CrlEntry[];
  /** Notation trusted identities (`x509.subject: …`) of the signing keys issued under the roots. */
  trustedIdentities: string[];
}

export function certificateEntry(ca: string, generation: string, der: Buffer): CertificateEntry {
  const certificate = new X509Certificate(der);
  return {
    ca,
    generation,
    sha256: sha256Hex(der),
    subject: certificate.subject.split('\n').join(', '),
    notBefore: new Date(certificate.validFrom).toISOString(),
    notAfter: new Date(certificate.validTo).toISOString(),
    der: der.toString('base64'),
  };
}

export function sha256Hex(content: Buffer): string {
  return createHash('sha256').update(content).digest('hex');
}

const byCaThenGeneration = (a: { ca: string; generation: string }, b: { ca: string; generation: string }) =>
  compare(a.ca, b.ca) || compare(a.generation, b.generation);

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Sorts every list so that equal content always canonicalizes to equal bytes. */
export function normalizeContent(content: TruststoreContent): TruststoreContent {
  return {
    format: CONTENT_FORMAT,
    name: content.name,
    trustPolicy: { registryScopes: [...content.trustPolicy.registryScopes].sort(compare), level: content.trustPolicy.level },
    roots: [...content.roots].sort(byCaThenGeneration),
    tsaRoots: [...content.tsaRoots].sort(byCaThenGeneration),
    crls: [...content.crls].sort(byCaThenGeneration),
    trustedIdentities: [...new Set(content.trustedIdentities)].sort(compare),
  };
}

export function canonicalize(content: TruststoreContent): Buffer {
  return Buffer.from(canonicalJson(normalizeContent(content)), 'utf8');
}

export function contentDigest(canonical: Buffer): string {
  return `sha256:${sha256Hex(canonical)}`;
}

/** Reads a stored canonical form back; a digest mismatch means the row was altered. */
export function parseCanonical(canonical: Buffer, expectedDigest?: string): TruststoreContent {
  if (expectedDigest !== undefined && contentDigest(canonical) !== expectedDigest) {
    throw new DomainError(ErrorCode.INTERNAL, `stored truststore content does not match its digest ${expectedDigest}`);
  }
  const parsed = JSON.parse(canonical.toString('utf8')) as TruststoreContent;
  if (parsed.format !== CONTENT_FORMAT) throw new DomainError(ErrorCode.INTERNAL, `unknown truststore content format ${String(parsed.format)}`);
  return parsed;
}

function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'number' && !Number.isFinite(value)) throw new Error('canonicalJson: non-finite number');
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => compare(a, b));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

/** Validates `{registryScopes?, level?}` from the API and fills the defaults (`["*"]`, strict). */
export function validateTrustPolicySettings(input: unknown, operation: string): TrustPolicySettings {
  if (input === undefined || input === null) return { registryScopes: ['*'], level: 'strict' };
  const fail = (field: string, problem: string): never => {
    throw new DomainError(ErrorCode.VALIDATION_ERROR, `${operation}: 'trustPolicy.${field}' ${problem}`, { field: `trustPolicy.${field}` });
  };
  if (typeof input !== 'object' || Array.isArray(input)) fail('', 'must be an object {registryScopes?, level?}');
  const record = input as Record<string, unknown>;
  for (const key of Object.keys(record)) if (key !== 'registryScopes' && key !== 'level') fail(key, 'is not a known field');
  const level = record.level ?? 'strict';
  if (!(TRUST_POLICY_LEVELS as readonly unknown[]).includes(level)) {
    fail('level', `must be one of ${TRUST_POLICY_LEVELS.join(', ')} ('skip' would need no trust store)`);
  }
  const scopes = record.registryScopes ?? ['*'];
  if (!Array.isArray(scopes) || scopes.length === 0 || scopes.length > 256 || scopes.some((s) => typeof s !== 'string')) {
    fail('registryScopes', 'must be a non-empty list of strings');
  }
  const list = scopes as string[];
  if (list.includes('*') && list.length > 1) fail('registryScopes', "'*' must stand alone");
  if (new Set(list).size !== list.length) fail('registryScopes', 'must not repeat a scope');
  for (const scope of list) if (scope !== '*' && !isRegistryScope(scope)) fail('registryScopes', `'${scope}' is not host[:port]/repository`);
  return { registryScopes: [...list].sort(compare), level: level as TrustPolicyLevel };
}

const SCOPE_HOST = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*(?::[0-9]{1,5})?$/;
const SCOPE_REPOSITORY = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/;

/** Notation registry scope: `host[:port]/repository`, no tag, digest or wildcard. */
export function isRegistryScope(scope: string): boolean {
  const slash = scope.indexOf('/');
  if (slash <= 0) return false;
  return SCOPE_HOST.test(scope.slice(0, slash)) && SCOPE_REPOSITORY.test(scope.slice(slash + 1)) && scope.length <= 512;
}
