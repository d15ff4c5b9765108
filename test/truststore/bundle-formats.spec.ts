import { execFileSync, spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadAll } from 'js-yaml';
import { buildCrl } from '../../src/pki/crl-builder';
import { issueTsaRootCertificate } from '../../src/pki/certificate-issuer';
import { LAYER_KINDS, LAYERS, notationTar, renderLayer } from '../../src/truststore/bundle-formats';
import { PKCS12_TRUSTSTORE_PASSWORD } from '../../src/truststore/pkcs12-truststore';
import { buildTrustPolicy, trustPolicyProblems } from '../../src/truststore/trust-policy';
import {
  canonicalize,
  certificateEntry,
  contentDigest,
  parseCanonical,
  TruststoreContent,
  validateTrustPolicySettings,
} from '../../src/truststore/truststore-content';
import { createHierarchy, subject, TestHierarchy, tempDir } from '../ca/ca-fixtures';
import { createNodeSigner } from '../support/node-signer';
import { notationLayoutProblems, storesIn, trustPolicyRuleProblems, unpackTar } from './notary-rules';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- parsed YAML documents are read loosely
type Loose = any;

/**
 * The truststore's canonical form and every bundle format, built from real certificates and CRLs
 * (Node-crypto signers, no HSM) and checked with independent tools: tar, OpenSSL, keytool, js-yaml.
 */
describe('truststore bundle formats', () => {
  let old: TestHierarchy;
  let next: TestHierarchy;
  let content: TruststoreContent;
  const work = tempDir('signet-truststore-');

  beforeAll(async () => {
    old = await createHierarchy('EC-384');
    next = await createHierarchy('EC-256');
    const crl = async (h: TestHierarchy, n: number) => {
      const built = await buildCrl({
        issuer: h.issuingIssuer,
        crlNumber: n,
        thisUpdate: new Date('2026-03-04T00:00:00Z'),
        nextUpdate: new Date('2026-03-05T00:00:00Z'),
        entries: [],
      });
      return {
        ca: 'issuing',
        generation: `issuing-g${n}`,
        crlNumber: String(n),
        thisUpdate: '2026-03-04T00:00:00.000Z',
        nextUpdate: '2026-03-05T00:00:00.000Z',
        der: built.der.toString('base64'),
      };
    };
    const tsaSigner = createNodeSigner('EC-384');
    const tsaRoot = await issueTsaRootCertificate({
      signer: tsaSigner,
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
      crls: [await crl(old, 1), await crl(next, 2)],
      trustedIdentities: [
        'x509.subject: C=DE, ST=Berlin, O=Signet Test, CN=release',
        'x509.subject: C=DE, ST=Berlin, O=Signet Test, OU=Builds, CN=nightly',
      ],
    };
  });
  afterAll(() => work.cleanup());

  describe('canonical form', () => {
    it('is the same bytes whatever the order of the lists, and its digest changes with any content', () => {
      const reordered: TruststoreContent = {
        ...content,
        roots: [...content.roots].reverse(),
        crls: [...content.crls].reverse(),
        trustedIdentities: [...content.trustedIdentities].reverse(),
      };
      expect(canonicalize(reordered).equals(canonicalize(content))).toBe(true);
      const digest = contentDigest(canonicalize(content));
      expect(digest).toMatch(/^sha256:[0-9a-f]{64}$/);
      expect(contentDigest(canonicalize({ ...content, roots: content.roots.slice(0, 1) }))).not.toBe(digest);
      expect(
        contentDigest(canonicalize({ ...content, crls: [{ ...content.crls[0], crlNumber: '9' }, content.crls[1]] })),
      ).not.toBe(digest);
      expect(
        contentDigest(canonicalize({ ...content, trustPolicy: { ...content.trustPolicy, level: 'audit' } })),
      ).not.toBe(digest);
      expect(contentDigest(canonicalize({ ...content, trustedIdentities: [] }))).not.toBe(digest);
    });

    it('round-trips and refuses stored bytes that do not match the digest', () => {
      const canonical = canonicalize(content);
      expect(parseCanonical(canonical, contentDigest(canonical)).roots.map((r) => r.generation)).toEqual([
        'root-g1',
        'root-g2',
      ]);
      const tampered = Buffer.from(canonical.toString('utf8').replace('"strict"', '"audit"'));
      expect(() => parseCanonical(tampered, contentDigest(canonical))).toThrow(/does not match/);
    });

    it('fills trust policy defaults and refuses settings Notation would not accept', () => {
      expect(validateTrustPolicySettings(undefined, 'test')).toEqual({ registryScopes: ['*'], level: 'strict' });
      for (const bad of [
        { level: 'skip' },
        { registryScopes: [] },
        { registryScopes: ['*', 'registry.example.com/app'] },
        { registryScopes: ['registry.example.com/app:latest'] },
        { registryScopes: ['registry.example.com/App'] },
        { registryScopes: ['registry.example.com'] },
        { registryScopes: ['registry.example.com/app', 'registry.example.com/app'] },
        { levels: 'strict' },
      ]) {
        expect(() => validateTrustPolicySettings(bad, 'test')).toThrow(/trustPolicy/);
      }
    });
  });

  describe('trust policy', () => {
    it('the generated policy passes every rule; each rule is enforced by the validator', () => {
      const policy = buildTrustPolicy(content);
      expect(trustPolicyProblems(policy)).toEqual([]);
      expect(policy.trustPolicies[0]).toEqual({
        name: 'signet-production',
        registryScopes: content.trustPolicy.registryScopes,
        signatureVerification: { level: 'strict', verifyTimestamp: 'afterCertExpiry' },
        trustStores: ['ca:production', 'tsa:production'],
        trustedIdentities: content.trustedIdentities,
      });
      const base = policy.trustPolicies[0];
      const broken = (change: Record<string, unknown>, extra: Record<string, unknown>[] = []) => ({
        version: '1.0',
        trustPolicies: [{ ...base, ...change }, ...extra],
      });
      expect(
        trustPolicyProblems(broken({ signatureVerification: { level: 'strict', verifyTimestamp: 'sometimes' } })),
      ).toEqual(expect.arrayContaining([expect.stringMatching(/verifyTimestamp must be/)]));
      expect(trustPolicyProblems({ ...policy, version: '2.0' })).not.toEqual([]);
      expect(trustPolicyProblems(broken({}, [{ ...base }]))).toEqual(
        expect.arrayContaining([expect.stringMatching(/not unique/)]),
      );
      expect(trustPolicyProblems(broken({}, [{ ...base, name: 'other' }]))).toEqual(
        expect.arrayContaining([expect.stringMatching(/already appears/)]),
      );
      expect(trustPolicyProblems(broken({ registryScopes: ['*', 'registry.example.com/app'] }))).toEqual(
        expect.arrayContaining([expect.stringMatching(/stand alone/)]),
      );
      expect(trustPolicyProblems(broken({ signatureVerification: { level: 'skip' } }))).toEqual(
        expect.arrayContaining([expect.stringMatching(/skip takes no/)]),
      );
      expect(
        trustPolicyProblems(
          broken({ signatureVerification: { level: 'skip' }, trustStores: [], trustedIdentities: [] }),
        ),
      ).toEqual([]);
      expect(trustPolicyProblems(broken({ trustStores: [] }))).toEqual(
        expect.arrayContaining([expect.stringMatching(/trustStores must be/)]),
      );
      expect(trustPolicyProblems(broken({ trustStores: ['tsa:production'] }))).toEqual(
        expect.arrayContaining([expect.stringMatching(/needs a ca/)]),
      );
      expect(trustPolicyProblems(broken({ trustStores: ['ca:bad/name'] }))).not.toEqual([]);
      expect(trustPolicyProblems(broken({ trustedIdentities: [] }))).not.toEqual([]);
      expect(trustPolicyProblems(broken({ trustedIdentities: ['x509.subject: C=DE, O=Signet Test, CN=x'] }))).toEqual(
        expect.arrayContaining([expect.stringMatching(/ST exactly once/)]),
      );
      expect(trustPolicyProblems(broken({ trustedIdentities: ['x509.subject: C=DE+ST=B, O=S, CN=x'] }))).not.toEqual(
        [],
      );
      expect(trustPolicyProblems(broken({ trustedIdentities: ['*', content.trustedIdentities[0]] }))).not.toEqual([]);
    });

    it('trusts "*" identities only while no signing key exists under the roots', () => {
      expect(buildTrustPolicy({ ...content, trustedIdentities: [] }).trustPolicies[0].trustedIdentities).toEqual(['*']);
      expect(buildTrustPolicy({ ...content, tsaRoots: [] }).trustPolicies[0].trustStores).toEqual(['ca:production']);
    });
  });

  it('notation: unpacks to a layout that passes every NOTARY.md rule, one root per file, with a valid trust policy', async () => {
    const tarball = await renderLayer('notation', content);
    const dir = path.join(work.dir, 'notation');
    unpackTar(tarball, dir);
    expect(notationLayoutProblems(dir)).toEqual([]);
    expect(storesIn(dir).sort()).toEqual(['ca/production', 'tsa/production']);
    expect(fs.readdirSync(path.join(dir, 'truststore/x509/ca/production')).sort()).toEqual([
      'root-g1.pem',
      'root-g2.pem',
    ]);
    const stored = new X509Certificate(fs.readFileSync(path.join(dir, 'truststore/x509/ca/production/root-g2.pem')));
    // byte-identical to the root (Notation matches trust anchors byte for byte)
    expect(stored.raw.equals(next.root.der)).toBe(true);
    // trustpolicy.json is the name every released Notation 1.x reads; 2.x reads trustpolicy.oci.json
    // first, so the same bytes go there too (an older bundle's copy is overwritten, never preferred).
    expect(fs.readdirSync(dir).sort()).toEqual(['trustpolicy.json', 'trustpolicy.oci.json', 'truststore']);
    const policyText = fs.readFileSync(path.join(dir, 'trustpolicy.json'), 'utf8');
    expect(fs.readFileSync(path.join(dir, 'trustpolicy.oci.json'), 'utf8')).toBe(policyText);
    const policy = JSON.parse(policyText);
    expect(trustPolicyRuleProblems(policy, storesIn(dir))).toEqual([]);
    expect(trustPolicyProblems(policy)).toEqual([]);
    // deterministic: one version, one tar
    expect((await notationTar(content)).equals(tarball)).toBe(true);
    // Entry times come from the content (the newest root's notBefore), never from the build time.
    const listing = execFileSync('tar', ['--full-time', '-tvf', path.join(work.dir, 'notation.tar')], {
      encoding: 'utf8',
    });
    const newest = [...content.roots, ...content.tsaRoots]
      .map((r) => r.notBefore)
      .sort()
      .at(-1)!;
    expect(listing).toContain(newest.slice(0, 10));
  });

  it('pem: root certificates, then the labelled TSA section, then CRLs, each readable by OpenSSL', async () => {
    const pem = (await renderLayer('pem', content)).toString('utf8');
    const labels = [...pem.matchAll(/-----BEGIN ([A-Z0-9 ]+)-----/g)].map((m) => m[1]);
    expect(labels).toEqual(['CERTIFICATE', 'CERTIFICATE', 'CERTIFICATE', 'X509 CRL', 'X509 CRL']);
    const tsaHeading = pem.indexOf('# TSA root certificates');
    expect(tsaHeading).toBeGreaterThan(pem.indexOf(content.roots[1].generation));
    expect(pem.indexOf('-----BEGIN X509 CRL-----')).toBeGreaterThan(tsaHeading);
    const file = work.file('bundle.pem', pem);
    const certs = spawnSync('openssl', ['crl2pkcs7', '-nocrl', '-certfile', file], { encoding: 'utf8' });
    expect(certs.status).toBe(0);
    const crl = spawnSync('openssl', ['crl', '-in', file, '-noout', '-crlnumber'], { encoding: 'utf8' });
    expect(crl.stdout).toMatch(/crlNumber=0x0*1\s/);
    // roots.pem: CERTIFICATE blocks of the roots only, nothing before or after
    const roots = (await renderLayer('roots', content)).toString('utf8');
    expect(roots).toMatch(/^-----BEGIN CERTIFICATE-----/);
    expect(roots.trimEnd()).toMatch(/-----END CERTIFICATE-----$/);
    expect(roots.match(/BEGIN CERTIFICATE/g)).toHaveLength(2);
  });

  it('pkcs12: a truststore OpenSSL and Java keytool read, every root and TSA root a trusted entry, deterministic', async () => {
    const p12 = await renderLayer('pkcs12', content);
    const file = work.file('truststore.p12', p12);
    const info12 = spawnSync(
      'openssl',
      ['pkcs12', '-in', file, '-nokeys', '-passin', `pass:${PKCS12_TRUSTSTORE_PASSWORD}`],
      { encoding: 'utf8' },
    );
    expect(info12.stderr).not.toMatch(/error/i);
    expect(info12.status).toBe(0);
    expect(info12.stdout.match(/BEGIN CERTIFICATE/g)).toHaveLength(3);
    expect(info12.stdout).toContain('friendlyName: root-g1');
    const wrong = spawnSync('openssl', ['pkcs12', '-in', file, '-nokeys', '-passin', 'pass:wrong'], {
      encoding: 'utf8',
    });
    expect(wrong.status).not.toBe(0);
    const keytool = spawnSync(
      'keytool',
      ['-list', '-keystore', file, '-storetype', 'PKCS12', '-storepass', PKCS12_TRUSTSTORE_PASSWORD],
      { encoding: 'utf8' },
    );
    expect(keytool.stdout).toMatch(/contains 3 entries/);
    expect(keytool.stdout.match(/trustedCertEntry/g)).toHaveLength(3);
    expect((await renderLayer('pkcs12', content)).equals(p12)).toBe(true);
  });

  it('ratify: a KeyManagementProvider whose inline value holds CERTIFICATE blocks only, nothing after the last', async () => {
    const yaml = (await renderLayer('ratify', content)).toString('utf8');
    const [kmp, tsa, verifier] = loadAll(yaml) as Array<Loose>;
    // then the TSA roots' provider and the Verifier using both (consumer-schemas.spec.ts checks them against Ratify)
    expect([tsa.kind, verifier.kind]).toEqual(['KeyManagementProvider', 'Verifier']);
    expect(kmp).toMatchObject({
      apiVersion: 'config.ratify.deislabs.io/v1beta1',
      kind: 'KeyManagementProvider',
      metadata: { name: 'signet-production' },
      spec: { type: 'inline', parameters: { contentType: 'certificate' } },
    });
    const value: string = kmp.spec.parameters.value;
    expect([...value.matchAll(/-----BEGIN ([A-Z0-9 ]+)-----/g)].map((m) => m[1])).toEqual([
      'CERTIFICATE',
      'CERTIFICATE',
    ]);
    expect(value.endsWith('-----END CERTIFICATE-----')).toBe(true);
    expect(value.startsWith('-----BEGIN CERTIFICATE-----')).toBe(true);
    expect(yaml).not.toContain('X509 CRL');
  });

  it('kyverno: a Notary verifyImages entry with one attestor entry per root', async () => {
    const [doc] = loadAll((await renderLayer('kyverno', content)).toString('utf8')) as Array<Loose>;
    const entry = doc.verifyImages[0];
    expect(entry.type).toBe('Notary');
    expect(entry.imageReferences).toEqual([
      'registry.example.com/app:*',
      'registry.example.com/app@*',
      'registry.example.com:5000/team/tool:*',
      'registry.example.com:5000/team/tool@*',
    ]);
    expect(entry.attestors[0].count).toBe(1);
    const certs = entry.attestors[0].entries.map((e: Loose) => new X509Certificate(e.certificates.cert).raw);
    expect(certs.map((c: Buffer) => c.equals(old.root.der) || c.equals(next.root.der))).toEqual([true, true]);
  });

  it('trust-manager: a Bundle and the source ConfigMap in the trust namespace', async () => {
    const docs = loadAll((await renderLayer('trust-manager', content)).toString('utf8')) as Array<Loose>;
    expect(docs.map((d) => `${d.apiVersion} ${d.kind}`)).toEqual([
      'v1 ConfigMap',
      'trust.cert-manager.io/v1alpha1 Bundle',
    ]);
    const [configMap, bundle] = docs;
    expect(configMap.metadata).toMatchObject({ name: 'signet-production-roots', namespace: 'cert-manager' });
    expect(bundle.spec.sources).toEqual([{ configMap: { name: 'signet-production-roots', key: 'roots.pem' } }]);
    expect(bundle.spec.target).toEqual({
      configMap: { key: 'signet-production.pem' },
      namespaceSelector: { matchLabels: { 'signet.io/trust': 'true' } },
    });
    expect(configMap.data['roots.pem'].match(/BEGIN CERTIFICATE/g)).toHaveLength(2);
  });

  it('a CRL-only change alters the PEM bundle alone: every other layer keeps its bytes (targets upload one blob)', async () => {
    const changed: TruststoreContent = {
      ...content,
      crls: [{ ...content.crls[0], crlNumber: '5', der: content.crls[1].der }, content.crls[1]],
    };
    const differing: string[] = [];
    for (const kind of LAYER_KINDS)
      if (!(await renderLayer(kind, content)).equals(await renderLayer(kind, changed))) differing.push(kind);
    expect(differing).toEqual(['pem']);
  });

  it('every layer has a title the OCI artifact and a ConfigMap key accept', () => {
    for (const spec of Object.values(LAYERS)) expect(spec.title).toMatch(/^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/);
  });
});
