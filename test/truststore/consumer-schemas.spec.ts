import { loadAll } from 'js-yaml';
import { issueTsaRootCertificate } from '../../src/pki/certificate-issuer';
import { BUNDLE_FORMATS, renderLayer } from '../../src/truststore/bundle-formats';
import { trustPolicyProblems } from '../../src/truststore/trust-policy';
import {
  certificateEntry,
  TruststoreContent,
  validateTrustManagerSettings,
} from '../../src/truststore/truststore-content';
import { createHierarchy, subject, TestHierarchy } from '../ca/ca-fixtures';
import { celRuleSites, crdValidator, loadCrd, objectMetaProblems } from '../support/crd-schemas';
import {
  consumerValidators,
  kyvernoAdmissionProblems,
  ratifyInlineCertificates,
  ratifyVerifierProblems,
  TRUST_MANAGER_BUNDLE_RULES,
} from '../support/consumer-rules';
import { createNodeSigner } from '../support/node-signer';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- parsed YAML documents are read loosely
type Loose = any;

/**
 * Every cluster-side bundle format against the consumer's own CRD (../shared/schemas, unmodified):
 * JSON Schema through ajv with the Kubernetes extensions, the CEL rules written out in TypeScript
 * (test/support/consumer-rules.ts names each), and the consumers' admission rules the CRDs do not
 * carry (Kyverno's mutateDigest/Audit refusal, Ratify's PEM reading and Verifier shape).
 */
describe('bundle formats against the consumers’ CRDs', () => {
  let old: TestHierarchy;
  let next: TestHierarchy;
  let content: TruststoreContent;
  const validators = () => consumerValidators();
  const docs = async (format: Parameters<typeof renderLayer>[0], of: TruststoreContent = content) =>
    loadAll((await renderLayer(format, of)).toString('utf8')) as Loose[];

  beforeAll(async () => {
    old = await createHierarchy('EC-384');
    next = await createHierarchy('EC-256');
    const tsaRoot = await issueTsaRootCertificate({
      signer: createNodeSigner('EC-384'),
      subject: subject('Test TSA Root'),
      validityDays: 3650,
    });
    content = {
      format: 'signet-truststore/1',
      name: 'production',
      trustPolicy: {
        registryScopes: ['registry.example.com/app', 'registry.example.com:5000/team/tool'],
        level: 'strict',
      },
      roots: [certificateEntry('root', 'root-g1', old.root.der), certificateEntry('root', 'root-g2', next.root.der)],
      tsaRoots: [certificateEntry('tsa-root', 'tsa-root-g1', tsaRoot.der)],
      crls: [],
      trustedIdentities: ['x509.subject: C=DE, ST=Berlin, O=Signet Test, CN=release'],
    };
    validators(); // compile once (the Kyverno CRDs are large)
  }, 60_000);

  it('the CEL rules checked are every rule of the CRDs Signet writes objects for', () => {
    // trust-manager Bundle: five rules (the configMap and secret sources share one text).
    expect(celRuleSites(loadCrd('trust-manager.bundles.yaml'), 'v1alpha1').map((s) => s.at)).toEqual([
      '/spec/sources/items',
      '/spec/sources/items/configMap',
      '/spec/sources/items/secret',
      '/spec/target',
      '/spec/target/additionalFormats',
    ]);
    expect(TRUST_MANAGER_BUNDLE_RULES.map((r) => r.name)).toHaveLength(4);
    // Ratify's KeyManagementProvider and Kyverno's ClusterPolicy and ImageValidatingPolicy carry none.
    expect(celRuleSites(loadCrd('ratify.keymanagementproviders.yaml'), 'v1beta1')).toEqual([]);
    expect(celRuleSites(loadCrd('kyverno.clusterpolicies.yaml'), 'v1')).toEqual([]);
    expect(celRuleSites(loadCrd('kyverno.imagevalidatingpolicies.yaml'), 'v1')).toEqual([]);
  });

  it('the validator finds what the API server would refuse or prune (so a pass means something)', () => {
    const { keyManagementProvider, bundle } = validators();
    const kmp = {
      apiVersion: 'config.ratify.deislabs.io/v1beta1',
      kind: 'KeyManagementProvider',
      metadata: { name: 'x' },
      spec: { type: 'inline', parameters: {} },
    };
    expect(keyManagementProvider.problems(kmp)).toEqual([]);
    expect(keyManagementProvider.problems({ ...kmp, spec: { ...kmp.spec, typo: 1 } })).toEqual([
      expect.stringContaining('(typo)'),
    ]);
    expect(keyManagementProvider.problems({ ...kmp, metadata: { name: 'Bad_Name' } })).toEqual([
      expect.stringContaining('metadata.name'),
    ]);
    const good = {
      apiVersion: 'trust.cert-manager.io/v1alpha1',
      kind: 'Bundle',
      metadata: { name: 'b' },
      spec: { sources: [{ inLine: 'x' }], target: { configMap: { key: 'k' } } },
    };
    expect(bundle.problems(good)).toEqual([]);
    expect(
      bundle.problems({ ...good, spec: { ...good.spec, sources: [{ inLine: 'x', useDefaultCAs: true }] } }),
    ).toEqual([expect.stringContaining('[spec.sources[]: exactly one of')]);
    expect(bundle.problems({ ...good, spec: { ...good.spec, target: { namespaceSelector: {} } } })).toEqual([
      expect.stringContaining('[spec.target: at least one of'),
    ]);
    expect(bundle.problems({ ...good, spec: { ...good.spec, sources: [{ configMap: { key: 'k' } }] } })).toEqual([
      expect.stringContaining('exactly one of name, selector'),
    ]);
  });

  it('ratify: the roots and TSA-roots KeyManagementProviders pass the CRD and Ratify’s PEM reading; the Notation Verifier uses both with the pinned policy', async () => {
    const [roots, tsa, verifier, ...more] = await docs('ratify');
    expect(more).toEqual([]);
    const { keyManagementProvider } = validators();
    for (const kmp of [roots, tsa]) expect(keyManagementProvider.problems(kmp)).toEqual([]);
    expect([roots.metadata.name, tsa.metadata.name]).toEqual(['signet-production', 'signet-production-tsa']);
    expect(ratifyInlineCertificates(roots.spec.parameters.value).map((c) => c.raw)).toEqual([
      old.root.der,
      next.root.der,
    ]);
    expect(ratifyInlineCertificates(tsa.spec.parameters.value).map((c) => c.raw.toString('base64'))).toEqual([
      content.tsaRoots[0].der,
    ]);

    expect(ratifyVerifierProblems(verifier, [roots.metadata.name, tsa.metadata.name])).toEqual([]);
    expect(objectMetaProblems(verifier, 'Cluster')).toEqual([]);
    expect(verifier.spec.parameters.verificationCertStores).toEqual({
      ca: { production: ['signet-production'] },
      tsa: { production: ['signet-production-tsa'] },
    });
    const policy = verifier.spec.parameters.trustPolicyDoc;
    expect(trustPolicyProblems(policy)).toEqual([]);
    // Identity-pinned, and timestamps count after the leaf expires — as the notation format has it.
    expect(policy.trustPolicies[0]).toMatchObject({
      trustStores: ['ca:production', 'tsa:production'],
      trustedIdentities: content.trustedIdentities,
      signatureVerification: { level: 'strict', verifyTimestamp: 'afterCertExpiry' },
    });
    // The checker itself catches a Verifier naming a provider that is not there.
    expect(ratifyVerifierProblems(verifier, [roots.metadata.name])).toEqual([
      expect.stringContaining('no KeyManagementProvider named signet-production-tsa'),
    ]);
  });

  it('ratify: without TSA roots there is no tsa provider and no tsa store', async () => {
    const [roots, verifier, ...more] = await docs('ratify', { ...content, tsaRoots: [] });
    expect(more).toEqual([]);
    expect(ratifyVerifierProblems(verifier, [roots.metadata.name])).toEqual([]);
    expect(verifier.spec.parameters.verificationCertStores).toEqual({ ca: { production: ['signet-production'] } });
  });

  it('kyverno: the verifyImages fragment merged into a ClusterPolicy at the CRD defaults passes the CRD and Kyverno’s admission rule', async () => {
    const [fragment] = await docs('kyverno');
    const { clusterPolicy } = validators();
    const policy = clusterPolicy.withDefaults({
      apiVersion: 'kyverno.io/v1',
      kind: 'ClusterPolicy',
      metadata: { name: 'signet-production' },
      spec: {
        rules: [{ name: 'signet-production', match: { any: [{ resources: { kinds: ['Pod'] } }] }, ...fragment }],
      },
    });
    // The defaults the refusal comes from are really there …
    expect(policy.spec.validationFailureAction).toBe('Audit');
    expect(policy.spec.rules[0].verifyImages[0].mutateDigest).toBe(true);
    expect(clusterPolicy.problems(policy)).toEqual([]);
    // … and the fragment decides the failure action itself, so Kyverno accepts the rule.
    expect(kyvernoAdmissionProblems(policy)).toEqual([]);
    expect(fragment.verifyImages[0].failureAction).toBe('Enforce');
    // Without it Kyverno would refuse the policy (the rule as Kyverno words it).
    const { failureAction: _dropped, ...audit } = policy.spec.rules[0].verifyImages[0];
    expect(
      kyvernoAdmissionProblems({
        ...policy,
        spec: { ...policy.spec, rules: [{ ...policy.spec.rules[0], verifyImages: [audit] }] },
      }),
    ).toEqual([
      "spec.rules[0].verifyImages[0].mutateDigest: Invalid value: true: mutateDigest must be set to false for 'Audit' failure action",
    ]);
  });

  it('kyverno-ivp: an ImageValidatingPolicy the CRD accepts, one Notary attestor with the roots and the TSA roots', async () => {
    expect(BUNDLE_FORMATS).toContain('kyverno-ivp');
    const [policy, ...more] = await docs('kyverno-ivp');
    expect(more).toEqual([]);
    const { imageValidatingPolicy } = validators();
    expect(imageValidatingPolicy.problems(policy)).toEqual([]);
    // the stored version (v1beta1, the one older Kyverno releases serve) takes the same object
    expect(imageValidatingPolicy.crd.versions.find((v) => v.storage)!.name).toBe('v1beta1');
    expect(
      crdValidator('kyverno.imagevalidatingpolicies.yaml', 'v1beta1').problems({
        ...policy,
        apiVersion: 'policies.kyverno.io/v1beta1',
      }),
    ).toEqual([]);
    const [attestor] = policy.spec.attestors;
    expect(ratifyInlineCertificates(attestor.notary.certs.value).map((c) => c.raw)).toEqual([
      old.root.der,
      next.root.der,
    ]);
    expect(ratifyInlineCertificates(attestor.notary.tsaCerts.value).map((c) => c.raw.toString('base64'))).toEqual([
      content.tsaRoots[0].der,
    ]);
    expect(policy.spec.validations[0].expression).toContain(`attestors.${attestor.name}`);
    // Init and ephemeral containers run images too: each kind is checked, and the subresource that
    // adds ephemeral containers is matched (an unsigned debug container would otherwise get in).
    for (const kind of ['containers', 'initContainers', 'ephemeralContainers']) {
      expect(policy.spec.validations[0].expression).toContain(
        `images.${kind}.all(image, verifyImageSignatures(image, [attestors.${attestor.name}]) > 0)`,
      );
    }
    expect(policy.spec.matchConstraints.resourceRules[0].resources).toEqual(['pods', 'pods/ephemeralcontainers']);
    expect(attestor.name).toMatch(/^[A-Za-z_][A-Za-z0-9_]*$/); // a CEL identifier
    expect(policy.spec.matchImageReferences).toEqual([
      { glob: 'registry.example.com/app:*' },
      { glob: 'registry.example.com/app@*' },
      { glob: 'registry.example.com:5000/team/tool:*' },
      { glob: 'registry.example.com:5000/team/tool@*' },
    ]);
    expect(policy.spec.validationActions).toEqual(['Deny']);
    const [noTsa] = await docs('kyverno-ivp', { ...content, tsaRoots: [] });
    expect(imageValidatingPolicy.problems(noTsa)).toEqual([]);
    expect(noTsa.spec.attestors[0].notary.tsaCerts).toBeUndefined();
  });

  it('trust-manager: the Bundle passes the CRD and all its CEL rules, and writes only into selected namespaces (default: signet.io/trust=true)', async () => {
    const [configMap, bundle] = await docs('trust-manager');
    const { bundle: validator } = validators();
    expect(validator.problems(bundle)).toEqual([]);
    expect(objectMetaProblems(configMap, 'Namespaced')).toEqual([]);
    expect(bundle.spec.target.namespaceSelector).toEqual({ matchLabels: { 'signet.io/trust': 'true' } });
    // The rules were evaluated on the output, not just listed.
    for (const rule of TRUST_MANAGER_BUNDLE_RULES.filter(
      (r) => !/additionalFormats|configMap \/ \.secret/.test(r.name),
    ))
      expect(validator.evaluated.get(rule.rule)).toBeGreaterThan(0);
    expect(validator.evaluated.get(TRUST_MANAGER_BUNDLE_RULES[1].rule)).toBeGreaterThan(0);

    const chosen = validateTrustManagerSettings(
      {
        namespaceSelector: {
          matchLabels: { team: 'payments' },
          matchExpressions: [{ key: 'env', operator: 'In', values: ['prod', 'stage'] }],
        },
      },
      'test',
    )!;
    const [, scoped] = await docs('trust-manager', { ...content, trustManager: chosen });
    expect(validator.problems(scoped)).toEqual([]);
    expect(scoped.spec.target.namespaceSelector).toEqual({
      matchLabels: { team: 'payments' },
      matchExpressions: [{ key: 'env', operator: 'In', values: ['prod', 'stage'] }],
    });
    const [, everywhere] = await docs('trust-manager', {
      ...content,
      trustManager: validateTrustManagerSettings({ namespaceSelector: {} }, 'test')!,
    });
    expect(validator.problems(everywhere)).toEqual([]);
    expect(everywhere.spec.target.namespaceSelector).toEqual({});
  });

  it('trust-manager settings: bad selectors are refused with the field named', () => {
    expect(validateTrustManagerSettings(undefined, 'test')).toBeUndefined();
    expect(validateTrustManagerSettings({}, 'test')).toBeUndefined();
    for (const [bad, field] of [
      [{ namespaceSelector: { matchLabels: { 'bad key!': 'x' } } }, 'trustManager.namespaceSelector.matchLabels'],
      [{ namespaceSelector: { matchLabels: { ok: 'x'.repeat(64) } } }, 'trustManager.namespaceSelector.matchLabels'],
      [
        { namespaceSelector: { matchExpressions: [{ key: 'env', operator: 'In' }] } },
        'trustManager.namespaceSelector.matchExpressions[0].values',
      ],
      [
        { namespaceSelector: { matchExpressions: [{ key: 'env', operator: 'Exists', values: ['x'] }] } },
        'trustManager.namespaceSelector.matchExpressions[0].values',
      ],
      [
        { namespaceSelector: { matchExpressions: [{ key: 'env', operator: 'Near' }] } },
        'trustManager.namespaceSelector.matchExpressions[0].operator',
      ],
      [{ namespaceSelector: { matchFields: {} } }, 'trustManager.namespaceSelector.matchFields'],
      [{ selector: {} }, 'trustManager.selector'],
      ['all', 'trustManager'],
    ] as Array<[unknown, string]>) {
      expect(() => validateTrustManagerSettings(bad, 'test')).toThrow(expect.objectContaining({ details: { field } }));
    }
  });
});
