import { X509Certificate } from 'node:crypto';
import { CelRule, crdValidator, CrdValidator } from './crd-schemas';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- parsed YAML documents are read loosely
type Loose = any;

/**
 * The consumers' rules that their CRDs do not carry as JSON Schema, written out in TypeScript:
 * the CEL `x-kubernetes-validations` of the CRDs Signet writes objects for, Kyverno's admission
 * rule for `verifyImages`, Ratify's reading of inline certificates and the shape of its Notation
 * `Verifier`. Shared by the bundle-format tests and the Kubernetes API double.
 */
const has = (self: Loose, field: string) =>
  self !== null && typeof self === 'object' && Object.prototype.hasOwnProperty.call(self, field);
const count = (self: Loose, fields: string[]) => fields.filter((f) => has(self, f)).length;

/**
 * Every CEL rule of trust-manager's `Bundle` CRD (trust.cert-manager.io/v1alpha1, the only version):
 * `crdValidator` refuses the list unless it is exactly the CRD's rules.
 */
export const TRUST_MANAGER_BUNDLE_RULES: CelRule[] = [
  {
    name: 'spec.sources[]: exactly one of configMap, secret, inLine, useDefaultCAs',
    rule: '[has(self.configMap),has(self.secret),has(self.inLine),has(self.useDefaultCAs)].filter(x,x==true).size() == 1',
    holds: (self) => count(self, ['configMap', 'secret', 'inLine', 'useDefaultCAs']) === 1,
  },
  {
    name: 'spec.sources[].configMap / .secret: exactly one of name, selector',
    rule: '[has(self.name),has(self.selector)].filter(x,x==true).size() == 1',
    holds: (self) => count(self, ['name', 'selector']) === 1,
  },
  {
    name: 'spec.target: at least one of configMap, secret',
    rule: '[has(self.configMap),has(self.secret)].filter(x,x==true).size() >= 1',
    holds: (self) => count(self, ['configMap', 'secret']) >= 1,
  },
  {
    name: 'spec.target.additionalFormats: at least one of jks, pkcs12',
    rule: '[has(self.jks),has(self.pkcs12)].filter(x,x==true).size() >= 1',
    holds: (self) => count(self, ['jks', 'pkcs12']) >= 1,
  },
];

let cached: Record<string, CrdValidator> | undefined;

/** One validator per CRD, compiled once per test process (the Kyverno schemas are large). */
export function consumerValidators(): {
  keyManagementProvider: CrdValidator;
  bundle: CrdValidator;
  clusterPolicy: CrdValidator;
  imageValidatingPolicy: CrdValidator;
} {
  cached ??= {
    // Ratify, Kyverno: their CRDs carry no CEL rules (crdValidator fails if one appears).
    keyManagementProvider: crdValidator('ratify.keymanagementproviders.yaml', 'v1beta1'),
    bundle: crdValidator('trust-manager.bundles.yaml', 'v1alpha1', TRUST_MANAGER_BUNDLE_RULES),
    clusterPolicy: crdValidator('kyverno.clusterpolicies.yaml', 'v1'),
    imageValidatingPolicy: crdValidator('kyverno.imagevalidatingpolicies.yaml', 'v1'),
  };
  return cached as ReturnType<typeof consumerValidators>;
}

/**
 * Kyverno's admission check of a (Cluster)Policy's image verification (ImageVerification.Validate,
 * kyverno/kyverno api/kyverno/v1): a rule's `verifyImages[].failureAction`, or else the policy's
 * `validationFailureAction`, decides Audit or Enforce, and "mutateDigest must be set to false for
 * 'Audit' failure action". Run it on the policy after the CRD defaults (as Kyverno's webhook sees it).
 */
export function kyvernoAdmissionProblems(policy: Loose): string[] {
  const problems: string[] = [];
  const specAudit = /^audit$/i.test(policy?.spec?.validationFailureAction ?? '');
  (policy?.spec?.rules ?? []).forEach((rule: Loose, r: number) => {
    (rule.verifyImages ?? []).forEach((entry: Loose, i: number) => {
      const audit = entry.failureAction !== undefined ? /^audit$/i.test(entry.failureAction) : specAudit;
      if (audit && entry.mutateDigest === true) {
        problems.push(
          `spec.rules[${r}].verifyImages[${i}].mutateDigest: Invalid value: true: mutateDigest must be set to false for 'Audit' failure action`,
        );
      }
      if (!(entry.imageReferences?.length || entry.image))
        problems.push(`spec.rules[${r}].verifyImages[${i}]: An image reference is required`);
    });
  });
  return problems;
}

/**
 * Ratify's inline certificate provider: Go's `pem.Decode` in a loop over the value; a block that is
 * not CERTIFICATE is skipped, bytes left after the last block fail, and every block must parse.
 */
export function ratifyInlineCertificates(value: string): X509Certificate[] {
  const certificates: X509Certificate[] = [];
  let rest = value;
  for (;;) {
    const match = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([\s\S]*?)-----END \1-----(\r?\n)?/.exec(rest);
    if (!match) break;
    if (match[1] === 'CERTIFICATE')
      certificates.push(new X509Certificate(Buffer.from(match[2].replace(/\s+/g, ''), 'base64')));
    rest = rest.slice(match.index + match[0].length);
  }
  if (rest.length > 0) throw new Error(`ratify: ${rest.length} bytes after the last PEM block`);
  if (certificates.length === 0) throw new Error('ratify: no certificate in the inline value');
  return certificates;
}

/**
 * The Ratify `Verifier` (config.ratify.deislabs.io/v1beta1) as ratify-project/ratify v1.4.0 takes it:
 * no Verifier CRD is in ../shared/schemas, so the shape is written here from Ratify's own sources at
 * that tag — `charts/ratify/crds/verifier-customresourcedefinition.yaml` (spec: `name` and
 * `artifactTypes` required strings; `address`, `version` strings; `source {artifact, authProvider}`;
 * `parameters` free-form) and `pkg/verifier/notation` (NotationPluginVerifierConfig:
 * `verificationCertStores` as {storeType: {storeName: [provider names]}} with store types `ca`,
 * `signingAuthority`, `tsa`; `trustPolicyDoc` a Notation trust policy document; a cluster-scoped
 * provider is named by its bare name).
 */
export function ratifyVerifierProblems(verifier: Loose, providers: string[]): string[] {
  const problems: string[] = [];
  if (verifier?.apiVersion !== 'config.ratify.deislabs.io/v1beta1' || verifier?.kind !== 'Verifier')
    problems.push('not a config.ratify.deislabs.io/v1beta1 Verifier');
  const spec = verifier?.spec ?? {};
  const known = ['name', 'artifactTypes', 'address', 'version', 'source', 'parameters'];
  for (const key of Object.keys(spec)) if (!known.includes(key)) problems.push(`spec.${key}: unknown field (pruned)`);
  for (const key of ['name', 'artifactTypes'])
    if (typeof spec[key] !== 'string' || spec[key] === '') problems.push(`spec.${key}: Required value (string)`);
  if (spec.name !== 'notation') problems.push(`spec.name: ${JSON.stringify(spec.name)} is not the notation verifier`);
  if (
    !String(spec.artifactTypes ?? '')
      .split(',')
      .map((s: string) => s.trim())
      .includes('application/vnd.cncf.notary.signature')
  )
    problems.push('spec.artifactTypes: does not name Notation signatures');
  const parameters = spec.parameters ?? {};
  const stores = parameters.verificationCertStores;
  const declared = new Set<string>();
  if (!stores || typeof stores !== 'object' || Array.isArray(stores)) {
    problems.push('spec.parameters.verificationCertStores: Required value');
  } else {
    for (const [type, named] of Object.entries(stores as Record<string, unknown>)) {
      if (!['ca', 'signingAuthority', 'tsa'].includes(type))
        problems.push(`verificationCertStores.${type}: not a trust store type`);
      if (!named || typeof named !== 'object' || Array.isArray(named)) {
        problems.push(`verificationCertStores.${type}: must map store names to provider lists`);
        continue;
      }
      for (const [name, list] of Object.entries(named as Record<string, unknown>)) {
        declared.add(`${type}:${name}`);
        if (!Array.isArray(list) || list.length === 0 || list.some((p) => typeof p !== 'string'))
          problems.push(`verificationCertStores.${type}.${name}: must be a list of provider names`);
        else
          for (const provider of list as string[])
            if (!providers.includes(provider))
              problems.push(`verificationCertStores.${type}.${name}: no KeyManagementProvider named ${provider}`);
      }
    }
  }
  const policies = parameters.trustPolicyDoc?.trustPolicies ?? [];
  if (!policies.length) problems.push('spec.parameters.trustPolicyDoc: Required value');
  for (const policy of policies) {
    for (const store of policy.trustStores ?? [])
      if (!declared.has(store))
        problems.push(`trust policy ${policy.name}: trust store ${store} is not in verificationCertStores`);
  }
  return problems;
}
