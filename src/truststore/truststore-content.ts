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

/** A Kubernetes label selector (`metav1.LabelSelector`), as trust-manager's `target.namespaceSelector` takes it. */
export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: Array<{ key: string; operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist'; values?: string[] }>;
}

/** Settings of the trust-manager format; absent from the content when the truststore keeps the defaults. */
export interface TrustManagerSettings {
  /** Namespaces the Bundle writes its ConfigMap into; `{}` selects every namespace. */
  namespaceSelector: LabelSelector;
}

/** The namespace label a truststore's trust-manager Bundle selects unless told otherwise (opt-in per namespace). */
export const DEFAULT_NAMESPACE_LABEL = 'signet.io/trust';
export const DEFAULT_NAMESPACE_SELECTOR: LabelSelector = { matchLabels: { [DEFAULT_NAMESPACE_LABEL]: 'true' } };

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
  /**
   * Only when the truststore sets it: content without it canonicalizes to the same bytes as before
   * the field existed, so replicas of older and newer code agree on the digest of such truststores.
   */
  trustManager?: TrustManagerSettings;
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
    trustPolicy: {
      registryScopes: [...content.trustPolicy.registryScopes].sort(compare),
      level: content.trustPolicy.level,
    },
    roots: [...content.roots].sort(byCaThenGeneration),
    tsaRoots: [...content.tsaRoots].sort(byCaThenGeneration),
    crls: [...content.crls].sort(byCaThenGeneration),
    trustedIdentities: [...new Set(content.trustedIdentities)].sort(compare),
    ...(content.trustManager ? { trustManager: content.trustManager } : {}),
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
  if (parsed.format !== CONTENT_FORMAT)
    throw new DomainError(ErrorCode.INTERNAL, `unknown truststore content format ${String(parsed.format)}`);
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
    throw new DomainError(ErrorCode.VALIDATION_ERROR, `${operation}: 'trustPolicy.${field}' ${problem}`, {
      field: `trustPolicy.${field}`,
    });
  };
  if (typeof input !== 'object' || Array.isArray(input)) fail('', 'must be an object {registryScopes?, level?}');
  const record = input as Record<string, unknown>;
  for (const key of Object.keys(record))
    if (key !== 'registryScopes' && key !== 'level') fail(key, 'is not a known field');
  const level = record.level ?? 'strict';
  if (!(TRUST_POLICY_LEVELS as readonly unknown[]).includes(level)) {
    fail('level', `must be one of ${TRUST_POLICY_LEVELS.join(', ')} ('skip' would need no trust store)`);
  }
  const scopes = record.registryScopes ?? ['*'];
  if (
    !Array.isArray(scopes) ||
    scopes.length === 0 ||
    scopes.length > 256 ||
    scopes.some((s) => typeof s !== 'string')
  ) {
    fail('registryScopes', 'must be a non-empty list of strings');
  }
  const list = scopes as string[];
  if (list.includes('*') && list.length > 1) fail('registryScopes', "'*' must stand alone");
  if (new Set(list).size !== list.length) fail('registryScopes', 'must not repeat a scope');
  for (const scope of list)
    if (scope !== '*' && !isRegistryScope(scope)) fail('registryScopes', `'${scope}' is not host[:port]/repository`);
  return { registryScopes: [...list].sort(compare), level: level as TrustPolicyLevel };
}

const SCOPE_HOST =
  /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*(?::[0-9]{1,5})?$/;
const SCOPE_REPOSITORY = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/;

/** Notation registry scope: `host[:port]/repository`, no tag, digest or wildcard. */
export function isRegistryScope(scope: string): boolean {
  const slash = scope.indexOf('/');
  if (slash <= 0) return false;
  return SCOPE_HOST.test(scope.slice(0, slash)) && SCOPE_REPOSITORY.test(scope.slice(slash + 1)) && scope.length <= 512;
}

const SELECTOR_OPERATORS = ['In', 'NotIn', 'Exists', 'DoesNotExist'] as const;
// Kubernetes qualified name (label key): optional DNS-subdomain prefix ≤ 253, '/', name ≤ 63.
const LABEL_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const LABEL_PREFIX = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL_VALUE = /^(|[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)$/;

function isLabelKey(key: string): boolean {
  const slash = key.lastIndexOf('/');
  if (slash < 0) return LABEL_NAME.test(key);
  const prefix = key.slice(0, slash);
  return prefix.length <= 253 && LABEL_PREFIX.test(prefix) && LABEL_NAME.test(key.slice(slash + 1));
}

/**
 * Validates `{namespaceSelector?}` from the API. `undefined`/`null` → no settings (the default
 * selector, `signet.io/trust: "true"`); an explicit selector is checked the way the API server checks
 * a `metav1.LabelSelector` and kept in a normal form (keys sorted, values sorted and unique).
 */
export function validateTrustManagerSettings(input: unknown, operation: string): TrustManagerSettings | undefined {
  if (input === undefined || input === null) return undefined;
  const fail = (field: string, problem: string): never => {
    const path = `trustManager${field ? `.${field}` : ''}`;
    throw new DomainError(ErrorCode.VALIDATION_ERROR, `${operation}: '${path}' ${problem}`, { field: path });
  };
  const isObject = (value: unknown): value is Record<string, unknown> =>
    typeof value === 'object' && value !== null && !Array.isArray(value);
  if (!isObject(input)) return fail('', 'must be an object {namespaceSelector?}');
  for (const key of Object.keys(input)) if (key !== 'namespaceSelector') fail(key, 'is not a known field');
  if (input.namespaceSelector === undefined || input.namespaceSelector === null) return undefined;
  const selector = input.namespaceSelector;
  if (!isObject(selector))
    return fail('namespaceSelector', 'must be a label selector {matchLabels?, matchExpressions?}');
  for (const key of Object.keys(selector))
    if (key !== 'matchLabels' && key !== 'matchExpressions') fail(`namespaceSelector.${key}`, 'is not a known field');
  const result: LabelSelector = {};
  if (selector.matchLabels !== undefined) {
    const labels = selector.matchLabels;
    if (!isObject(labels) || Object.keys(labels).length > 32)
      return fail('namespaceSelector.matchLabels', 'must be an object of at most 32 labels');
    const sorted: Record<string, string> = {};
    for (const key of Object.keys(labels).sort(compare)) {
      const value = labels[key];
      if (!isLabelKey(key)) fail('namespaceSelector.matchLabels', `'${key}' is not a label key`);
      if (typeof value !== 'string' || !LABEL_VALUE.test(value))
        fail('namespaceSelector.matchLabels', `the value of '${key}' is not a label value (at most 63 characters)`);
      sorted[key] = value as string;
    }
    result.matchLabels = sorted;
  }
  if (selector.matchExpressions !== undefined) {
    const expressions = selector.matchExpressions;
    if (!Array.isArray(expressions) || expressions.length > 32)
      return fail('namespaceSelector.matchExpressions', 'must be a list of at most 32 requirements');
    result.matchExpressions = expressions.map((raw: unknown, index: number) => {
      const where = `namespaceSelector.matchExpressions[${index}]`;
      if (!isObject(raw)) return fail(where, 'must be {key, operator, values?}');
      for (const key of Object.keys(raw))
        if (!['key', 'operator', 'values'].includes(key)) fail(`${where}.${key}`, 'is not a known field');
      if (typeof raw.key !== 'string' || !isLabelKey(raw.key)) fail(`${where}.key`, 'must be a label key');
      if (!(SELECTOR_OPERATORS as readonly unknown[]).includes(raw.operator))
        fail(`${where}.operator`, `must be one of ${SELECTOR_OPERATORS.join(', ')}`);
      const operator = raw.operator as (typeof SELECTOR_OPERATORS)[number];
      const values = raw.values;
      if (operator === 'In' || operator === 'NotIn') {
        if (
          !Array.isArray(values) ||
          values.length === 0 ||
          values.length > 64 ||
          values.some((v) => typeof v !== 'string' || !LABEL_VALUE.test(v))
        ) {
          fail(`${where}.values`, `must be a non-empty list of label values for ${operator}`);
        }
        return { key: raw.key as string, operator, values: [...new Set(values as string[])].sort(compare) };
      }
      if (values !== undefined && !(Array.isArray(values) && values.length === 0))
        fail(`${where}.values`, `must be empty for ${operator}`);
      return { key: raw.key as string, operator };
    });
  }
  return { namespaceSelector: result };
}
