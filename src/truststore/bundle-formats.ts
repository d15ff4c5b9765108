import { dump } from 'js-yaml';
import * as tar from 'tar-stream';
import { DomainError, ErrorCode } from '../common/errors';
import { buildPkcs12Truststore } from './pkcs12-truststore';
import { buildTrustPolicy, TRUST_POLICY_FILE, TRUST_POLICY_OCI_FILE, trustPolicyProblems } from './trust-policy';
import { CertificateEntry, DEFAULT_NAMESPACE_SELECTOR, TruststoreContent } from './truststore-content';

/**
 * The bundle formats of one truststore version (API.md: `GET /v1/truststores/{name}/bundle?format=…`),
 * each rendered from the version's canonical content. Pure and deterministic, and each format
 * depends only on the content it carries — not on the version number, digest or build time, which
 * travel in OCI and Kubernetes annotations and in the download's headers — so replicas pushing one
 * version produce identical blobs, and a version that changes only a CRL changes only the PEM
 * bundle: targets receive one new blob, not seven.
 *
 * Cluster-side formats carry root CA certificates only (NOTARY.md, "Cluster-side formats"):
 * verifiers there reach revocation through the certificates' OCSP/CRL URLs. CRLs travel in the PEM
 * bundle for offline and air-gapped consumers.
 */
export const BUNDLE_FORMATS = [
  'pem',
  'notation',
  'pkcs12',
  'ratify',
  'kyverno',
  'kyverno-ivp',
  'trust-manager',
] as const;
export type BundleFormat = (typeof BUNDLE_FORMATS)[number];

/** The layer names of a pushed bundle: every format plus `roots` (CERTIFICATE blocks only, for Ratify through the kubernetes driver). */
export const LAYER_KINDS = [...BUNDLE_FORMATS, 'roots'] as const;
export type LayerKind = (typeof LAYER_KINDS)[number];

export interface LayerSpec {
  title: string;
  /** OCI layer media type. */
  mediaType: string;
  /** HTTP Content-Type of the bundle download. */
  contentType: string;
}

export const LAYERS: Record<LayerKind, LayerSpec> = {
  pem: { title: 'truststore.pem', mediaType: 'application/x-pem-file', contentType: 'application/x-pem-file' },
  roots: {
    title: 'roots.pem',
    mediaType: 'application/pem-certificate-chain',
    contentType: 'application/pem-certificate-chain',
  },
  notation: {
    title: 'notation-truststore.tar',
    mediaType: 'application/vnd.signet.truststore.notation.v1.tar',
    contentType: 'application/x-tar',
  },
  pkcs12: { title: 'truststore.p12', mediaType: 'application/x-pkcs12', contentType: 'application/x-pkcs12' },
  ratify: { title: 'ratify-kmp.yaml', mediaType: 'application/yaml', contentType: 'application/yaml' },
  kyverno: { title: 'kyverno-notary-attestor.yaml', mediaType: 'application/yaml', contentType: 'application/yaml' },
  'kyverno-ivp': {
    title: 'kyverno-image-validating-policy.yaml',
    mediaType: 'application/yaml',
    contentType: 'application/yaml',
  },
  'trust-manager': {
    title: 'trust-manager-bundle.yaml',
    mediaType: 'application/yaml',
    contentType: 'application/yaml',
  },
};

/** Namespace trust-manager reads Bundle sources from (its default trust namespace). */
export const TRUST_MANAGER_NAMESPACE = 'cert-manager';
export const RATIFY_API_VERSION = 'config.ratify.deislabs.io/v1beta1';
export const TRUST_MANAGER_API_VERSION = 'trust.cert-manager.io/v1alpha1';
/** Served by the Kyverno whose CRD is in ../shared/schemas; v1beta1, the stored version, takes the same object. */
export const KYVERNO_IVP_API_VERSION = 'policies.kyverno.io/v1';
/** The artifact type of Notation signatures: what Ratify's notation verifier handles. */
export const NOTATION_SIGNATURE_ARTIFACT_TYPE = 'application/vnd.cncf.notary.signature';

export interface VersionInfo {
  version: number;
  digest: string;
  /** RFC 3339; tar entry times. */
  createdAt: string;
}

export function isBundleFormat(value: unknown): value is BundleFormat {
  return typeof value === 'string' && (BUNDLE_FORMATS as readonly string[]).includes(value);
}

export async function renderLayer(kind: LayerKind, content: TruststoreContent): Promise<Buffer> {
  switch (kind) {
    case 'pem':
      return Buffer.from(pemBundle(content), 'utf8');
    case 'roots':
      return Buffer.from(certificatesPem(content.roots), 'utf8');
    case 'notation':
      return notationTar(content);
    case 'pkcs12':
      return buildPkcs12Truststore(
        [...content.roots, ...content.tsaRoots].map((entry) => ({
          alias: entry.generation,
          der: Buffer.from(entry.der, 'base64'),
        })),
      );
    case 'ratify':
      return Buffer.from(ratifyYaml(content), 'utf8');
    case 'kyverno':
      return Buffer.from(kyvernoYaml(content), 'utf8');
    case 'kyverno-ivp':
      return Buffer.from(kyvernoIvpYaml(content), 'utf8');
    case 'trust-manager':
      return Buffer.from(trustManagerYaml(content), 'utf8');
    default: {
      const unknownKind: never = kind;
      throw new DomainError(ErrorCode.VALIDATION_ERROR, `unknown bundle format ${String(unknownKind)}`);
    }
  }
}

function pem(der: string, label: 'CERTIFICATE' | 'X509 CRL'): string {
  return `-----BEGIN ${label}-----\n${der.replace(/.{1,64}/g, '$&\n')}-----END ${label}-----\n`;
}

/** CERTIFICATE blocks only, nothing before the first or after the last (Ratify, Kyverno, trust-manager). */
export function certificatesPem(entries: CertificateEntry[]): string {
  return entries.map((entry) => pem(entry.der, 'CERTIFICATE')).join('');
}

/**
 * Root certificates, then TSA roots, then CRLs, each section and block preceded by `#` comment
 * lines (text outside PEM blocks, which OpenSSL and Go's pem package skip).
 */
function pemBundle(content: TruststoreContent): string {
  const lines: string[] = [
    `# Signet truststore "${content.name}" (its version and digest: the artifact's annotations or the download's headers)`,
    '',
    '# Root CA certificates (trust anchors for code signing)',
  ];
  const certificate = (entry: CertificateEntry) =>
    `# ${entry.generation}: ${entry.subject}\n# SHA-256 ${entry.sha256}, valid ${entry.notBefore} to ${entry.notAfter}\n${pem(entry.der, 'CERTIFICATE')}`;
  for (const root of content.roots) lines.push(certificate(root));
  if (content.tsaRoots.length) {
    lines.push('', '# TSA root certificates (RFC 3161 timestamps; a Notation "tsa" trust store)');
    for (const root of content.tsaRoots) lines.push(certificate(root));
  }
  lines.push(
    '',
    '# Certificate revocation lists of these roots and the CA generations beneath them (for offline verifiers)',
  );
  for (const crl of content.crls) {
    lines.push(
      `# ${crl.generation}: CRL number ${crl.crlNumber}, this update ${crl.thisUpdate}, next update ${crl.nextUpdate}\n${pem(crl.der, 'X509 CRL')}`,
    );
  }
  return `${lines.join('\n')}\n`;
}

/**
 * `trustpolicy.json` and `truststore/x509/{ca,tsa}/<name>/<generation>.pem` (one certificate per
 * file), directories included; the layout Notation reads from its configuration directory.
 * Released Notation 1.x reads only `trustpolicy.json`; the 2.x line reads `trustpolicy.oci.json`
 * first. The same policy goes under both names, so unpacking a new bundle over an older one never
 * leaves a stale `trustpolicy.oci.json` that a 2.x verifier would prefer.
 */
export async function notationTar(content: TruststoreContent): Promise<Buffer> {
  const policy = validTrustPolicy(content);
  // Entry times from the content (the newest certificate), not the build time: same roots, same tar.
  const mtime = new Date(
    Math.max(0, ...[...content.roots, ...content.tsaRoots].map((entry) => Date.parse(entry.notBefore))),
  );
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (chunk: unknown) => {
    chunks.push(chunk as Buffer);
  });
  const finished = new Promise<void>((resolve, reject) => {
    pack.on('end', resolve);
    pack.on('error', reject);
  });
  const directory = (name: string) =>
    pack.entry({ name, type: 'directory', mode: 0o755, mtime, uid: 0, gid: 0, uname: '', gname: '' });
  const file = (name: string, body: string) =>
    pack.entry({ name, mode: 0o644, mtime, uid: 0, gid: 0, uname: '', gname: '' }, body);
  const policyJson = `${JSON.stringify(policy, null, 2)}\n`;
  file(TRUST_POLICY_FILE, policyJson);
  file(TRUST_POLICY_OCI_FILE, policyJson);
  directory('truststore/');
  directory('truststore/x509/');
  const store = (type: 'ca' | 'tsa', entries: CertificateEntry[]) => {
    if (!entries.length) return;
    directory(`truststore/x509/${type}/`);
    directory(`truststore/x509/${type}/${content.name}/`);
    for (const entry of entries)
      file(`truststore/x509/${type}/${content.name}/${entry.generation}.pem`, pem(entry.der, 'CERTIFICATE'));
  };
  store('ca', content.roots);
  store('tsa', content.tsaRoots);
  pack.finalize();
  await finished;
  return Buffer.concat(chunks);
}

/** The trust policy, refused if it breaks a NOTARY.md rule: never shipped to Notation or Ratify otherwise. */
function validTrustPolicy(content: TruststoreContent) {
  const policy = buildTrustPolicy(content);
  const problems = trustPolicyProblems(policy);
  if (problems.length)
    throw new DomainError(ErrorCode.INTERNAL, `generated trust policy is invalid: ${problems.join('; ')}`);
  return policy;
}

function header(kind: string, content: TruststoreContent): string {
  return `# ${kind} from Signet truststore "${content.name}"\n`;
}

function yamlDocument(value: unknown): string {
  return dump(value, { lineWidth: -1, noRefs: true, sortKeys: false });
}

/** Names of the Ratify objects of a truststore (the Verifier refers to the providers by name). */
export function ratifyNames(truststore: string): { roots: string; tsa: string; verifier: string } {
  return { roots: `signet-${truststore}`, tsa: `signet-${truststore}-tsa`, verifier: `signet-${truststore}` };
}

/**
 * Ratify: a `KeyManagementProvider` for the roots, a second one for the TSA roots, and the Notation
 * `Verifier` that puts them in its `ca` and `tsa` trust stores (a provider does nothing until a
 * Verifier lists it) with the truststore's identity-pinned trust policy — the one the `notation`
 * format carries, so Ratify decides as Notation does: with a `tsa` store, a signature timestamped
 * while its leaf was valid keeps verifying after the leaf expires.
 */
function ratifyYaml(content: TruststoreContent): string {
  const names = ratifyNames(content.name);
  const labels = { 'app.kubernetes.io/managed-by': 'signet' };
  const provider = (name: string, entries: CertificateEntry[]) => ({
    apiVersion: RATIFY_API_VERSION,
    kind: 'KeyManagementProvider',
    metadata: { name, labels },
    spec: { type: 'inline', parameters: { contentType: 'certificate', value: pemValue(entries) } },
  });
  const policy = validTrustPolicy(content);
  const verifier = {
    apiVersion: RATIFY_API_VERSION,
    kind: 'Verifier',
    metadata: { name: names.verifier, labels },
    spec: {
      name: 'notation',
      artifactTypes: NOTATION_SIGNATURE_ARTIFACT_TYPE,
      parameters: {
        // The store names are the ones the trust policy's `trustStores` use (`ca:<name>`, `tsa:<name>`).
        verificationCertStores: {
          ca: { [content.name]: [names.roots] },
          ...(content.tsaRoots.length ? { tsa: { [content.name]: [names.tsa] } } : {}),
        },
        trustPolicyDoc: policy,
      },
    },
  };
  const documents = [
    provider(names.roots, content.roots),
    ...(content.tsaRoots.length ? [provider(names.tsa, content.tsaRoots)] : []),
    verifier,
  ];
  return (
    header('Ratify KeyManagementProviders (roots, TSA roots) and the Notation Verifier using them', content) +
    documents.map(yamlDocument).join('---\n')
  );
}

/** Root certificates as one PEM value, no newline after the last block (Ratify's inline value, Kyverno). */
function pemValue(entries: CertificateEntry[]): string {
  return certificatesPem(entries).replace(/\n+$/, '');
}

/** `host/repo:*` and `host/repo@*` for each scope, or `*`: the image references a Kyverno policy matches. */
function imagePatterns(content: TruststoreContent): string[] {
  const scopes = content.trustPolicy.registryScopes;
  return scopes.includes('*') ? ['*'] : scopes.flatMap((scope) => [`${scope}:*`, `${scope}@*`]);
}

/**
 * A `verifyImages` entry for a Kyverno `ClusterPolicy` rule: one attestor entry per root, any of
 * which may verify (rollover). `failureAction: Enforce` is set on the entry itself: a policy left at
 * its defaults has `validationFailureAction: Audit` and `mutateDigest: true`, a pair Kyverno refuses
 * ("mutateDigest must be set to false for 'Audit' failure action"). Kyverno's Notary verifier here
 * trusts any identity under the roots and takes no TSA roots (docs/consumers.md).
 */
function kyvernoYaml(content: TruststoreContent): string {
  return (
    header('Kyverno verifyImages entry (merge into a ClusterPolicy rule)', content) +
    yamlDocument({
      verifyImages: [
        {
          type: 'Notary',
          imageReferences: imagePatterns(content),
          failureAction: 'Enforce',
          attestors: [
            { count: 1, entries: content.roots.map((root) => ({ certificates: { cert: pemValue([root]) } })) },
          ],
        },
      ],
    })
  );
}

/**
 * A Kyverno `ImageValidatingPolicy` (the successor of `ClusterPolicy` verifyImages): one Notary
 * attestor holding the roots and the TSA roots, so timestamps count, and a validation that denies a
 * pod unless every container image matching the truststore's scopes has a signature it verifies.
 */
/** The container lists Kyverno's `images` variable holds for a pod. */
export const IVP_CONTAINER_KINDS = ['containers', 'initContainers', 'ephemeralContainers'] as const;

function kyvernoIvpYaml(content: TruststoreContent): string {
  const attestor = `signet_${content.name.replace(/-/g, '_')}`; // a CEL identifier: attestors.<name>
  return (
    header('Kyverno ImageValidatingPolicy', content) +
    yamlDocument({
      apiVersion: KYVERNO_IVP_API_VERSION,
      kind: 'ImageValidatingPolicy',
      metadata: { name: `signet-${content.name}`, labels: { 'app.kubernetes.io/managed-by': 'signet' } },
      spec: {
        validationActions: ['Deny'],
        // Ephemeral containers arrive through their own subresource: matched too, or they skip the check.
        matchConstraints: {
          resourceRules: [
            {
              apiGroups: [''],
              apiVersions: ['v1'],
              operations: ['CREATE', 'UPDATE'],
              resources: ['pods', 'pods/ephemeralcontainers'],
            },
          ],
        },
        matchImageReferences: imagePatterns(content).map((glob) => ({ glob })),
        attestors: [
          {
            name: attestor,
            notary: {
              certs: { value: pemValue(content.roots) },
              ...(content.tsaRoots.length ? { tsaCerts: { value: pemValue(content.tsaRoots) } } : {}),
            },
          },
        ],
        validations: [
          {
            // Every kind of container: an unsigned image as an init or ephemeral container runs too.
            expression: IVP_CONTAINER_KINDS.map(
              (kind) =>
                `(!has(images.${kind}) || images.${kind}.all(image, verifyImageSignatures(image, [attestors.${attestor}]) > 0))`,
            ).join(' && '),
            message: `image signature verification failed (Signet truststore ${content.name})`,
          },
        ],
      },
    })
  );
}

function trustManagerYaml(content: TruststoreContent): string {
  const sourceName = `signet-${content.name}-roots`;
  const source = {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: {
      name: sourceName,
      namespace: TRUST_MANAGER_NAMESPACE,
      labels: { 'app.kubernetes.io/managed-by': 'signet' },
    },
    data: { 'roots.pem': certificatesPem(content.roots) },
  };
  const bundle = {
    apiVersion: TRUST_MANAGER_API_VERSION,
    kind: 'Bundle',
    metadata: { name: `signet-${content.name}`, labels: { 'app.kubernetes.io/managed-by': 'signet' } },
    spec: {
      sources: [{ configMap: { name: sourceName, key: 'roots.pem' } }],
      // Only into the namespaces the truststore selects (trust-manager writes into every one without a selector).
      target: {
        configMap: { key: `signet-${content.name}.pem` },
        namespaceSelector: content.trustManager?.namespaceSelector ?? DEFAULT_NAMESPACE_SELECTOR,
      },
    },
  };
  return `${header('cert-manager trust-manager Bundle and its source ConfigMap', content)}${yamlDocument(source)}---\n${yamlDocument(bundle)}`;
}
