import 'reflect-metadata';
import * as crypto from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { PkiError, PkiErrorCode } from './pki-error';
import { DigestSigner } from './key-spec';
import { BASE_URL, TestHierarchy, createHierarchy, issueLeaf } from '../../test/ca/ca-fixtures';
import { NodeDigestSigner, createNodeSigner } from '../../test/support/node-signer';
import { validateCertificateChain } from './certificate-chain-validator';
import { readCertificateParts } from './der-reader';
import { derToPem } from './pem-codec';
import { generateSerialNumber } from './serial-number';
import { signatureSchemeFor } from './signature-algorithms';
import { digestSignerCrypto, signerCryptoKey } from './x509-signer-provider';

const KU = x509.KeyUsageFlags;
const CODE_SIGNING = '1.3.6.1.5.5.7.3.3';

/**
 * Certificates with arbitrary contents (the kind an external CA might return), signed by a
 * test signer; each case below breaks exactly one rule.
 */
async function craft(options: {
  issuer: { signer: DigestSigner; certificate?: Buffer };
  subject: string;
  publicKeySpki: Buffer;
  extensions: x509.Extension[];
  notBefore?: Date;
  notAfter?: Date;
}): Promise<Buffer> {
  const subjectName = new x509.Name(options.subject);
  const issuerName = options.issuer.certificate
    ? new x509.Name(readCertificateParts(options.issuer.certificate).subject)
    : subjectName;
  const cert = await x509.X509CertificateGenerator.create(
    {
      serialNumber: generateSerialNumber(),
      subject: subjectName,
      issuer: issuerName,
      notBefore: options.notBefore ?? new Date(Date.now() - 60_000),
      notAfter: options.notAfter ?? new Date(Date.now() + 30 * 86_400_000),
      publicKey: options.publicKeySpki,
      signingKey: signerCryptoKey(options.issuer.signer, signatureSchemeFor(options.issuer.signer.spec)),
      extensions: options.extensions,
    },
    digestSignerCrypto,
  );
  return Buffer.from(cert.rawData);
}

function keyId(spki: Buffer): string {
  const bits = Buffer.from(
    (new x509.PublicKey(spki) as unknown as { asn: { subjectPublicKey: ArrayBuffer } }).asn.subjectPublicKey,
  );
  return crypto.createHash('sha1').update(bits).digest('hex');
}

function leafExtensions(
  leafSpki: Buffer,
  issuerSpki: Buffer,
  overrides: {
    ku?: number | null;
    kuCritical?: boolean;
    eku?: string[] | null;
    extra?: x509.Extension[];
    ocsp?: string | null;
    crl?: string | null;
  } = {},
): x509.Extension[] {
  const extensions: x509.Extension[] = [];
  if (overrides.ku !== null)
    extensions.push(new x509.KeyUsagesExtension(overrides.ku ?? KU.digitalSignature, overrides.kuCritical ?? true));
  if (overrides.eku !== null) extensions.push(new x509.ExtendedKeyUsageExtension(overrides.eku ?? [CODE_SIGNING]));
  extensions.push(new x509.SubjectKeyIdentifierExtension(keyId(leafSpki)));
  extensions.push(new x509.AuthorityKeyIdentifierExtension(keyId(issuerSpki)));
  const crl = overrides.crl === undefined ? `${BASE_URL}/pki/ext.crl` : overrides.crl;
  const ocsp = overrides.ocsp === undefined ? `${BASE_URL}/ocsp/ext` : overrides.ocsp;
  if (crl) extensions.push(new x509.CRLDistributionPointsExtension([crl]));
  if (ocsp) extensions.push(new x509.AuthorityInfoAccessExtension({ ocsp: [ocsp] }));
  return [...extensions, ...(overrides.extra ?? [])];
}

function expectChainError(
  fn: () => unknown,
  code: PkiErrorCode,
  details: { index?: number; field?: string },
): PkiError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(PkiError);
    expect((error as PkiError).code).toBe(code);
    expect((error as PkiError).details).toMatchObject(details);
    return error as PkiError;
  }
  throw new Error(`expected ${code}`);
}

const GOOD_SUBJECT = 'C=DE, ST=Berlin, O=External Corp, CN=release';

describe(validateCertificateChain.name, () => {
  let h: TestHierarchy;
  let leafSigner: NodeDigestSigner;
  let leaf: Buffer;
  beforeAll(async () => {
    h = await createHierarchy('EC-384');
    const issued = await issueLeaf(h.issuingIssuer, 'EC-256');
    leafSigner = issued.signer;
    leaf = issued.leaf.der;
  });

  const chainOf = (leafDer: Buffer) => [leafDer, h.issuing.der, h.root.der];
  const validate = (
    chain: Buffer[] | string,
    overrides: Partial<Parameters<typeof validateCertificateChain>[0]> = {},
  ) =>
    validateCertificateChain({
      chain,
      expectedPublicKeySpki: leafSigner.publicKeySpki,
      leafProfile: 'code-signing',
      ...overrides,
    });
  const craftLeaf = (
    extensions: x509.Extension[],
    options: { subject?: string; notBefore?: Date; notAfter?: Date } = {},
  ) =>
    craft({
      issuer: { signer: h.issuingSigner, certificate: h.issuing.der },
      subject: options.subject ?? GOOD_SUBJECT,
      publicKeySpki: leafSigner.publicKeySpki,
      extensions,
      notBefore: options.notBefore,
      notAfter: options.notAfter,
    });

  it('accepts a chain Signet issued, as one PEM text or a DER list, and describes leaf and root', () => {
    const pem = chainOf(leaf)
      .map((der) => derToPem(der, 'CERTIFICATE'))
      .join('');
    for (const input of [pem, chainOf(leaf)]) {
      const result = validate(input);
      expect(result.certificates).toEqual(chainOf(leaf));
      expect(result.leaf.subject).toEqual({ C: 'DE', ST: 'Berlin', O: 'Signet Test', CN: 'release-EC-256' });
      expect(result.leaf.serialHex).toBe(new crypto.X509Certificate(leaf).serialNumber.toLowerCase());
      expect(result.root.sha256Fingerprint).toBe(crypto.createHash('sha256').update(h.root.der).digest('hex'));
    }
  });

  it('refuses a certificate whose extension value does not decode (an AKI with an empty OCTET STRING: a fuzz finding, was a 500)', () => {
    const issuing = Buffer.from(h.issuing.der);
    // extnID authorityKeyIdentifier (06 03 55 1d 23), then the extnValue OCTET STRING's tag: its length becomes 0.
    const at = issuing.indexOf(Buffer.from([0x06, 0x03, 0x55, 0x1d, 0x23, 0x04]));
    expect(at).toBeGreaterThan(0);
    issuing[at + 6] = 0x00;
    expectChainError(() => validate([leaf, issuing, h.root.der]), 'INVALID_CERTIFICATE', {
      index: 1,
      field: 'certificate',
    });
  });

  it('accepts an externally crafted leaf that follows the profile', async () => {
    const external = await craftLeaf(leafExtensions(leafSigner.publicKeySpki, h.issuingSigner.publicKeySpki));
    expect(validate(chainOf(external)).leaf.subject.O).toBe('External Corp');
  });

  it('refuses a leaf that certifies another key', async () => {
    const other = await issueLeaf(h.issuingIssuer, 'EC-256');
    expectChainError(() => validate(chainOf(other.leaf.der)), 'INVALID_CERTIFICATE', {
      index: 0,
      field: 'subjectPublicKeyInfo',
    });
  });

  it.each<[string, Parameters<typeof leafExtensions>[2], string]>([
    ['EKU serverAuth', { eku: ['1.3.6.1.5.5.7.3.1'] }, 'extendedKeyUsage'],
    ['EKU codeSigning + timeStamping', { eku: [CODE_SIGNING, '1.3.6.1.5.5.7.3.8'] }, 'extendedKeyUsage'],
    ['EKU anyExtendedKeyUsage', { eku: ['2.5.29.37.0'] }, 'extendedKeyUsage'],
    ['no EKU', { eku: null }, 'extendedKeyUsage'],
    ['keyUsage with keyEncipherment', { ku: KU.digitalSignature | KU.keyEncipherment }, 'keyUsage'],
    ['non-critical keyUsage', { kuCritical: false }, 'keyUsage'],
    ['no keyUsage', { ku: null }, 'keyUsage'],
    ['an https OCSP URL', { ocsp: 'https://pki.example.com/ocsp' }, 'revocationUrls'],
    ['no revocation pointers', { ocsp: null, crl: null }, 'revocationUrls'],
    ['a CA=TRUE leaf', { extra: [new x509.BasicConstraintsExtension(true, undefined, true)] }, 'basicConstraints'],
    [
      'a FreshestCRL pointer',
      {
        extra: [
          new x509.Extension('2.5.29.46', false, new x509.CRLDistributionPointsExtension(['http://x/delta.crl']).value),
        ],
      },
      'freshestCRL',
    ],
    [
      'an unknown critical extension',
      { extra: [new x509.Extension('1.2.3.4.5', true, new Uint8Array([5, 0]).buffer)] },
      '1.2.3.4.5',
    ],
  ])('refuses a leaf with %s', async (_label, overrides, field) => {
    const bad = await craftLeaf(leafExtensions(leafSigner.publicKeySpki, h.issuingSigner.publicKeySpki, overrides));
    expectChainError(() => validate(chainOf(bad)), 'INVALID_CERTIFICATE', { index: 0, field });
  });

  it.each([
    ['missing ST', 'C=DE, O=External Corp, CN=release', 'ST'],
    ['missing C', 'ST=Berlin, O=External Corp, CN=release', 'C'],
    ['missing O', 'C=DE, ST=Berlin, CN=release', 'O'],
    ['an emailAddress', 'C=DE, ST=Berlin, O=External Corp, CN=release, E=ops@example.com', 'emailAddress'],
    ['a multi-valued RDN', 'C=DE, ST=Berlin, O=External Corp+OU=Builds, CN=release', 'subject'],
    ['a duplicated O', 'C=DE, ST=Berlin, O=A, O=B, CN=release', 'O'],
  ])('refuses a leaf subject with %s (INVALID_SUBJECT)', async (_label, subjectDn, field) => {
    const bad = await craftLeaf(leafExtensions(leafSigner.publicKeySpki, h.issuingSigner.publicKeySpki), {
      subject: subjectDn,
    });
    expectChainError(() => validate(chainOf(bad)), 'INVALID_SUBJECT', { index: 0, field });
  });

  it('refuses a leaf valid for more than 460 days, and one that has expired', async () => {
    const long = await craftLeaf(leafExtensions(leafSigner.publicKeySpki, h.issuingSigner.publicKeySpki), {
      notAfter: new Date(Date.now() + 461 * 86_400_000),
    });
    expectChainError(() => validate(chainOf(long)), 'INVALID_CERTIFICATE', { index: 0, field: 'validity' });
    expectChainError(
      () => validate(chainOf(leaf), { now: new Date(Date.now() + 400 * 86_400_000) }),
      'INVALID_CERTIFICATE',
      {
        index: 0,
        field: 'validity',
      },
    );
  });

  it('refuses chains in the wrong order, without their root, or with a leaf signed by someone else', async () => {
    expectChainError(() => validate([h.issuing.der, leaf, h.root.der]), 'INVALID_CERTIFICATE', { index: 0 });
    expectChainError(() => validate([leaf, h.issuing.der]), 'INVALID_CERTIFICATE', { index: 1, field: 'issuer' });
    expectChainError(() => validate([leaf]), 'INVALID_CERTIFICATE', { field: 'chain' });
    // Same names, different issuing key: the signature link breaks.
    const impostor = createNodeSigner('EC-384');
    const forged = await craft({
      issuer: { signer: impostor, certificate: h.issuing.der },
      subject: GOOD_SUBJECT,
      publicKeySpki: leafSigner.publicKeySpki,
      extensions: leafExtensions(leafSigner.publicKeySpki, h.issuingSigner.publicKeySpki),
    });
    expectChainError(() => validate(chainOf(forged)), 'INVALID_CERTIFICATE', { index: 0, field: 'signature' });
  });

  it('refuses a SHA-1 signed certificate anywhere in the chain', async () => {
    const keys = (await crypto.webcrypto.subtle.generateKey(
      { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-1' },
      true,
      ['sign', 'verify'],
    )) as crypto.webcrypto.CryptoKeyPair;
    const sha1Root = await x509.X509CertificateGenerator.createSelfSigned(
      {
        serialNumber: '01',
        name: 'C=DE, ST=Berlin, O=Old, CN=SHA-1 Root',
        keys,
        signingAlgorithm: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-1' } as never,
        extensions: [
          new x509.BasicConstraintsExtension(true, undefined, true),
          new x509.KeyUsagesExtension(KU.keyCertSign, true),
        ],
      },
      crypto.webcrypto as never,
    );
    expectChainError(() => validate([leaf, h.issuing.der, Buffer.from(sha1Root.rawData)]), 'INVALID_CERTIFICATE', {
      index: 2,
      field: 'signatureAlgorithm',
    });
  });

  it('refuses an intermediate whose pathLen does not allow the CA below it', async () => {
    // root → policy CA (pathLen 0) → issuing CA → leaf: the policy CA has one CA below it.
    const policySigner = createNodeSigner('EC-384');
    const policy = await craft({
      issuer: { signer: h.rootSigner, certificate: h.root.der },
      subject: 'C=DE, ST=Berlin, O=Signet Test, CN=Policy CA',
      publicKeySpki: policySigner.publicKeySpki,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(KU.keyCertSign | KU.cRLSign, true),
        new x509.SubjectKeyIdentifierExtension(keyId(policySigner.publicKeySpki)),
        new x509.AuthorityKeyIdentifierExtension(keyId(h.rootSigner.publicKeySpki)),
      ],
    });
    const issuing = await craft({
      issuer: { signer: policySigner, certificate: policy },
      subject: 'C=DE, ST=Berlin, O=Signet Test, CN=Issuing under policy',
      publicKeySpki: h.issuingSigner.publicKeySpki,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(KU.keyCertSign | KU.cRLSign | KU.digitalSignature, true),
        new x509.SubjectKeyIdentifierExtension(keyId(h.issuingSigner.publicKeySpki)),
        new x509.AuthorityKeyIdentifierExtension(keyId(policySigner.publicKeySpki)),
      ],
    });
    const leafUnder = await craft({
      issuer: { signer: h.issuingSigner, certificate: issuing },
      subject: GOOD_SUBJECT,
      publicKeySpki: leafSigner.publicKeySpki,
      extensions: leafExtensions(leafSigner.publicKeySpki, h.issuingSigner.publicKeySpki),
    });
    expectChainError(() => validate([leafUnder, issuing, policy, h.root.der]), 'INVALID_CERTIFICATE', {
      index: 2,
      field: 'basicConstraints',
    });
    // In offline-root mode the same policy CA may not sit above our issuing CA either.
    expectChainError(
      () =>
        validateCertificateChain({
          chain: [issuing, policy, h.root.der],
          expectedPublicKeySpki: h.issuingSigner.publicKeySpki,
          leafProfile: 'issuing-ca',
        }),
      'INVALID_CERTIFICATE',
      { index: 1, field: 'basicConstraints' },
    );
  });

  it('only lets CERTIFICATE blocks through', () => {
    const pem =
      derToPem(leaf, 'CERTIFICATE') +
      `-----BEGIN PRIVATE KEY-----\n${Buffer.from('secret').toString('base64')}\n-----END PRIVATE KEY-----\n`;
    expectChainError(() => validate(pem), 'INVALID_CERTIFICATE', { field: 'chain' });
  });

  describe('issuing-ca mode (offline root import)', () => {
    const validateIssuing = (chain: Buffer[]) =>
      validateCertificateChain({
        chain,
        expectedPublicKeySpki: h.issuingSigner.publicKeySpki,
        leafProfile: 'issuing-ca',
      });

    it('accepts Signet issuing CA under its root', () => {
      expect(validateIssuing([h.issuing.der, h.root.der]).leaf.subject.CN).toBe('Test Issuing CA EC-384');
    });

    it.each<[string, x509.Extension[], string]>([
      [
        'no pathLen',
        [
          new x509.BasicConstraintsExtension(true, undefined, true),
          new x509.KeyUsagesExtension(KU.keyCertSign | KU.cRLSign | KU.digitalSignature, true),
        ],
        'basicConstraints',
      ],
      [
        'no cRLSign',
        [
          new x509.BasicConstraintsExtension(true, 0, true),
          new x509.KeyUsagesExtension(KU.keyCertSign | KU.digitalSignature, true),
        ],
        'keyUsage',
      ],
      [
        'a non-critical basicConstraints',
        [
          new x509.BasicConstraintsExtension(true, 0, false),
          new x509.KeyUsagesExtension(KU.keyCertSign | KU.cRLSign | KU.digitalSignature, true),
        ],
        'basicConstraints',
      ],
      [
        'an EKU without codeSigning',
        [
          new x509.BasicConstraintsExtension(true, 0, true),
          new x509.KeyUsagesExtension(KU.keyCertSign | KU.cRLSign | KU.digitalSignature, true),
          new x509.ExtendedKeyUsageExtension(['1.3.6.1.5.5.7.3.1']),
        ],
        'extendedKeyUsage',
      ],
    ])('refuses an issuing CA certificate with %s', async (_label, extensions, field) => {
      const bad = await craft({
        issuer: { signer: h.rootSigner, certificate: h.root.der },
        subject: 'C=DE, ST=Berlin, O=Signet Test, CN=Issuing',
        publicKeySpki: h.issuingSigner.publicKeySpki,
        extensions: [
          ...extensions,
          new x509.SubjectKeyIdentifierExtension(keyId(h.issuingSigner.publicKeySpki)),
          new x509.AuthorityKeyIdentifierExtension(keyId(h.rootSigner.publicKeySpki)),
        ],
      });
      expectChainError(() => validateIssuing([bad, h.root.der]), 'INVALID_CERTIFICATE', { index: 0, field });
    });
  });
});
