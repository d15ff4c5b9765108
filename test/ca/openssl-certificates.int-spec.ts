import { KeySpec } from '../../src/pki/key-spec';
import { issueTimestampingCertificate, issueTsaRootCertificate, loadCaIssuer } from '../../src/pki/certificate-issuer';
import { createNodeSigner } from '../support/node-signer';
import { BASE_URL, TestHierarchy, createHierarchy, issueLeaf, openssl, subject, tempDir } from './ca-fixtures';

/** OpenSSL as the independent verifier of what the ca core issues. */
describe('certificate chains checked by the OpenSSL CLI', () => {
  const tmp = tempDir();
  afterAll(() => tmp.cleanup());

  async function verifyChain(h: TestHierarchy, leafPem: string, name: string) {
    const root = tmp.file(`${name}-root.pem`, h.root.pem);
    const issuing = tmp.file(`${name}-issuing.pem`, h.issuing.pem);
    const leaf = tmp.file(`${name}-leaf.pem`, leafPem);
    return {
      result: await openssl(['verify', '-x509_strict', '-CAfile', root, '-untrusted', issuing, leaf]),
      root,
      issuing,
      leaf,
    };
  }

  describe('EC-384 CA hierarchy', () => {
    let h: TestHierarchy;
    beforeAll(async () => {
      h = await createHierarchy('EC-384');
    });

    it.each<KeySpec>(['EC-256', 'EC-384', 'RSA-3072', 'EC-521'])(
      'verifies a %s leaf with verify -x509_strict',
      async (spec) => {
        const { leaf } = await issueLeaf(h.issuingIssuer, spec);
        const { result, leaf: leafFile } = await verifyChain(h, leaf.pem, `ec384-${spec}`);
        expect(result.stderr).toBe('');
        expect(result.code).toBe(0);
        expect(result.stdout.trim()).toBe(`${leafFile}: OK`);
      },
    );

    it('fails verification without the issuing CA or against a foreign root (the check can fail)', async () => {
      const { leaf } = await issueLeaf(h.issuingIssuer, 'EC-256');
      const leafFile = tmp.file('lonely-leaf.pem', leaf.pem);
      const rootFile = tmp.file('lonely-root.pem', h.root.pem);
      const missing = await openssl(['verify', '-x509_strict', '-CAfile', rootFile, leafFile]);
      expect(missing.code).not.toBe(0);
      expect(missing.stdout + missing.stderr).toMatch(/unable to get local issuer certificate/);

      const other = await createHierarchy('EC-384');
      const foreignRoot = tmp.file('foreign-root.pem', other.root.pem);
      const issuing = tmp.file('own-issuing.pem', h.issuing.pem);
      const foreign = await openssl([
        'verify',
        '-x509_strict',
        '-CAfile',
        foreignRoot,
        '-untrusted',
        issuing,
        leafFile,
      ]);
      expect(foreign.code).not.toBe(0);
    });

    it('shows the code-signing profile in x509 -text', async () => {
      const { leaf } = await issueLeaf(h.issuingIssuer, 'EC-256');
      const text = (await openssl(['x509', '-noout', '-text', '-in', tmp.file('text-leaf.pem', leaf.pem)])).stdout;
      expect(text).toMatch(/Signature Algorithm: ecdsa-with-SHA384/);
      expect(text).toMatch(/X509v3 Key Usage: critical\s+Digital Signature\n/);
      expect(text).toMatch(/X509v3 Extended Key Usage: \s*\n\s+Code Signing\n/);
      expect(text).toMatch(/X509v3 Subject Key Identifier:/);
      expect(text).toMatch(/X509v3 Authority Key Identifier:/);
      expect(text).toContain(`URI:${BASE_URL}/pki/issuing-g1.crl`);
      expect(text).toContain(`OCSP - URI:${BASE_URL}/ocsp/issuing-g1`);
      expect(text).toContain(`CA Issuers - URI:${BASE_URL}/pki/issuing-g1.crt`);
      expect(text).not.toMatch(/Basic Constraints|Freshest CRL|Subject Alternative Name/);
      expect(text).toMatch(/Subject: C = DE, ST = Berlin, O = Signet Test, CN = release-EC-256/);
    });

    it('shows the issuing and root CA profiles in x509 -text', async () => {
      const issuing = (await openssl(['x509', '-noout', '-text', '-in', tmp.file('text-issuing.pem', h.issuing.pem)]))
        .stdout;
      expect(issuing).toMatch(/X509v3 Basic Constraints: critical\s+CA:TRUE, pathlen:0\n/);
      expect(issuing).toMatch(/X509v3 Key Usage: critical\s+Digital Signature, Certificate Sign, CRL Sign\n/);
      expect(issuing).toContain(`URI:${BASE_URL}/pki/root-g1.crl`);
      expect(issuing).toContain(`OCSP - URI:${BASE_URL}/ocsp/root-g1`);
      expect(issuing).not.toMatch(/Extended Key Usage/);

      const root = (await openssl(['x509', '-noout', '-text', '-in', tmp.file('text-root.pem', h.root.pem)])).stdout;
      expect(root).toMatch(/X509v3 Basic Constraints: critical\s+CA:TRUE\n/);
      expect(root).toMatch(/X509v3 Key Usage: critical\s+Digital Signature, Certificate Sign, CRL Sign\n/);
      expect(root).not.toMatch(
        /Authority Key Identifier|Extended Key Usage|CRL Distribution|Authority Information Access/,
      );
    });
  });

  describe.each<[KeySpec, 'pss' | 'pkcs1']>([
    ['RSA-3072', 'pss'],
    ['RSA-3072', 'pkcs1'],
    ['EC-256', 'pss'],
  ])('%s CA hierarchy (RSA padding %s)', (caSpec, rsaPadding) => {
    let h: TestHierarchy;
    beforeAll(async () => {
      h = await createHierarchy(caSpec, { rsaPadding });
    });

    it.each<KeySpec>(['EC-256', 'RSA-3072'])('verifies a %s leaf with verify -x509_strict', async (leafSpec) => {
      const { leaf } = await issueLeaf(h.issuingIssuer, leafSpec);
      const { result } = await verifyChain(h, leaf.pem, `${caSpec}-${rsaPadding}-${leafSpec}`);
      expect(result.stderr).toBe('');
      expect(result.code).toBe(0);
    });

    it('names the expected signature algorithm', async () => {
      const text = (
        await openssl(['x509', '-noout', '-text', '-in', tmp.file(`${caSpec}-${rsaPadding}-alg.pem`, h.issuing.pem)])
      ).stdout;
      if (caSpec === 'EC-256') expect(text).toMatch(/Signature Algorithm: ecdsa-with-SHA256/);
      else if (rsaPadding === 'pss') {
        expect(text).toMatch(
          /Signature Algorithm: rsassaPss\s+Hash Algorithm: sha384\s+Mask Algorithm: mgf1 with sha384\s+Salt Length: 0x30/,
        );
      } else expect(text).toMatch(/Signature Algorithm: sha384WithRSAEncryption/);
      expect(text).not.toMatch(/sha1/i);
    });
  });

  it('issues a TSA chain that OpenSSL accepts for the timestampsign purpose (EKU timeStamping critical)', async () => {
    const rootSigner = createNodeSigner('EC-384');
    const root = await issueTsaRootCertificate({
      signer: rootSigner,
      subject: subject('Signet TSA Root'),
      validityDays: 3650,
    });
    const issuer = loadCaIssuer({ certificate: root.der, signer: rootSigner });
    const tsa = await issueTimestampingCertificate({
      issuer,
      subject: subject('Signet TSA'),
      publicKeySpki: createNodeSigner('EC-256').publicKeySpki,
      validityDays: 365,
    });
    const rootFile = tmp.file('tsa-root.pem', root.pem);
    const tsaFile = tmp.file('tsa.pem', tsa.pem);
    const result = await openssl(['verify', '-x509_strict', '-purpose', 'timestampsign', '-CAfile', rootFile, tsaFile]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const text = (await openssl(['x509', '-noout', '-text', '-in', tsaFile])).stdout;
    expect(text).toMatch(/X509v3 Extended Key Usage: critical\s+Time Stamping\n/);
    // A code-signing leaf is not a timestamping certificate.
    const h = await createHierarchy('EC-256');
    const { leaf } = await issueLeaf(h.issuingIssuer);
    const wrong = await openssl([
      'verify',
      '-x509_strict',
      '-purpose',
      'timestampsign',
      '-CAfile',
      tmp.file('ts-neg-root.pem', h.root.pem),
      '-untrusted',
      tmp.file('ts-neg-iss.pem', h.issuing.pem),
      tmp.file('ts-neg-leaf.pem', leaf.pem),
    ]);
    expect(wrong.code).not.toBe(0);
  });
});
