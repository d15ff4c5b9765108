import 'reflect-metadata';
import * as crypto from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { PkiError, PkiErrorCode } from './pki-error';
import { DigestSigner, KeySpec } from './key-spec';
import { BASE_URL, createHierarchy, issueLeaf, subject } from '../../test/ca/ca-fixtures';
import { createNodeSigner } from '../../test/support/node-signer';
import { caGenerationUrls } from './ca-urls';
import { CertificateProfile } from './certificate-profiles';
import { readCertificateParts } from './der-reader';
import { SignatureScheme, signatureSchemeFor } from './signature-algorithms';
import { CertificateSubject, encodeSubjectName } from './subject-name';
import { digestSignerCrypto, signerCryptoKey } from './x509-signer-provider';
import {
  CaIssuer,
  IssuedCertificate,
  issueCodeSigningCertificate,
  issueIssuingCaCertificate,
  issueRootCaCertificate,
  issueTimestampingCertificate,
  issueTsaRootCertificate,
  loadCaIssuer,
} from './certificate-issuer';

const OID = {
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  ski: '2.5.29.14',
  aki: '2.5.29.35',
  crlDp: '2.5.29.31',
  aia: '1.3.6.1.5.5.7.1.1',
  freshestCrl: '2.5.29.46',
  codeSigning: '1.3.6.1.5.5.7.3.3',
  timeStamping: '1.3.6.1.5.5.7.3.8',
};
const KU = x509.KeyUsageFlags;

/** Independent views of an issued certificate: Node's OpenSSL-backed parser and @peculiar/x509. */
function inspect(issued: IssuedCertificate) {
  return { node: new crypto.X509Certificate(issued.der), peculiar: new x509.X509Certificate(issued.der) };
}

function extensionIds(cert: x509.X509Certificate): string[] {
  return cert.extensions.map((ext) => ext.type).sort();
}

/** RFC 5280 method 1, computed here from Node's own SPKI export. */
function expectedKeyId(publicKey: crypto.KeyObject): string {
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const key = new x509.PublicKey(spki);
  const bits = Buffer.from((key as unknown as { asn: { subjectPublicKey: ArrayBuffer } }).asn.subjectPublicKey);
  return crypto.createHash('sha1').update(bits).digest('hex');
}

function urls(cert: x509.X509Certificate) {
  const crlDp = cert.getExtension(x509.CRLDistributionPointsExtension);
  const aia = cert.getExtension(x509.AuthorityInfoAccessExtension);
  return {
    crl: crlDp?.distributionPoints.flatMap(
      (p) => p.distributionPoint?.fullName?.map((n) => n.uniformResourceIdentifier) ?? [],
    ),
    ocsp: aia?.ocsp.map((n) => n.value),
    caIssuers: aia?.caIssuers.map((n) => n.value),
  };
}

async function expectPkiError(
  promise: Promise<unknown> | (() => unknown),
  code: PkiErrorCode,
  field?: string,
): Promise<PkiError> {
  let error: unknown;
  try {
    await (typeof promise === 'function' ? promise() : promise);
  } catch (caught) {
    error = caught;
  }
  expect(error).toBeInstanceOf(PkiError);
  expect((error as PkiError).code).toBe(code);
  if (field) expect((error as PkiError).details?.field).toBe(field);
  return error as PkiError;
}

describe(issueRootCaCertificate.name, () => {
  it('issues a self-signed root: CA=TRUE critical without pathLen, keyCertSign+cRLSign+digitalSignature, SKI, no EKU/AKI/URLs', async () => {
    const signer = createNodeSigner('EC-384');
    const now = new Date('2030-01-15T12:00:00.750Z');
    const root = await issueRootCaCertificate({ signer, subject: subject('Root'), validityDays: 3650, now });
    const { node, peculiar } = inspect(root);

    expect(node.ca).toBe(true);
    expect(node.subject).toBe(node.issuer);
    expect(node.verify(signer.publicKey)).toBe(true);
    const bc = peculiar.getExtension(x509.BasicConstraintsExtension)!;
    expect(bc.critical).toBe(true);
    expect(bc.ca).toBe(true);
    expect(bc.pathLength).toBeUndefined();
    const ku = peculiar.getExtension(x509.KeyUsagesExtension)!;
    expect(ku.critical).toBe(true);
    expect(ku.usages).toBe(KU.keyCertSign | KU.cRLSign | KU.digitalSignature);
    expect(peculiar.getExtension(x509.SubjectKeyIdentifierExtension)!.keyId).toBe(expectedKeyId(signer.publicKey));
    expect(extensionIds(peculiar)).toEqual([OID.basicConstraints, OID.keyUsage, OID.ski].sort());
    // Backdated by the default 5 minutes from the whole second.
    expect(peculiar.notBefore.toISOString()).toBe('2030-01-15T11:55:00.000Z');
    expect(peculiar.notAfter.getTime() - peculiar.notBefore.getTime()).toBe(3650 * 86_400_000);
    expect(root.notBefore.getTime()).toBe(peculiar.notBefore.getTime());
    expect(root.notAfter.getTime()).toBe(peculiar.notAfter.getTime());
    expect(root.subjectDn).toBe('C=DE, ST=Berlin, O=Signet Test, CN=Root');
  });

  it.each<[KeySpec, string, string]>([
    ['EC-256', 'ECDSA', 'SHA-256'],
    ['EC-384', 'ECDSA', 'SHA-384'],
    ['EC-521', 'ECDSA', 'SHA-512'],
    ['RSA-2048', 'RSA-PSS', 'SHA-256'],
    ['RSA-3072', 'RSA-PSS', 'SHA-384'],
  ])('signs with the algorithm paired with a %s key (%s %s), never SHA-1', async (spec, name, hash) => {
    const signer = createNodeSigner(spec);
    const root = await issueRootCaCertificate({ signer, subject: subject('Root'), validityDays: 30 });
    const algorithm = new x509.X509Certificate(root.der).signatureAlgorithm as {
      name: string;
      hash: { name: string };
      saltLength?: number;
    };
    expect(algorithm.name).toBe(name);
    expect(algorithm.hash.name).toBe(hash);
    if (name === 'RSA-PSS') expect(algorithm.saltLength).toBe(Number(hash.slice(4)) / 8);
    expect(new crypto.X509Certificate(root.der).verify(signer.publicKey)).toBe(true);
  });

  it('uses sha*WithRSAEncryption when an RSA CA is configured for PKCS#1 v1.5', async () => {
    const signer = createNodeSigner('RSA-3072');
    const root = await issueRootCaCertificate({
      signer,
      subject: subject('Root'),
      validityDays: 30,
      rsaPadding: 'pkcs1',
    });
    const algorithm = new x509.X509Certificate(root.der).signatureAlgorithm as { name: string; hash: { name: string } };
    expect(algorithm).toMatchObject({ name: 'RSASSA-PKCS1-v1_5', hash: { name: 'SHA-384' } });
  });

  it('honours a configurable backdate', async () => {
    const signer = createNodeSigner('EC-256');
    const now = new Date('2030-01-15T12:00:00Z');
    const root = await issueRootCaCertificate({
      signer,
      subject: subject('Root'),
      validityDays: 1,
      now,
      backdateSeconds: 0,
    });
    expect(root.notBefore.toISOString()).toBe('2030-01-15T12:00:00.000Z');
    await expectPkiError(
      issueRootCaCertificate({ signer, subject: subject('Root'), validityDays: 1, backdateSeconds: -1 }),
      'VALIDATION_ERROR',
      'backdateSeconds',
    );
  });

  it('rejects an invalid subject before signing anything', async () => {
    const signer = createNodeSigner('EC-256');
    await expectPkiError(
      issueRootCaCertificate({ signer, subject: { C: 'DE', O: 'x', CN: 'y' } as never, validityDays: 1 }),
      'INVALID_SUBJECT',
      'ST',
    );
    expect(signer.signatureCount).toBe(0);
  });

  it('refuses to hand out a certificate when the signer returns a bad signature', async () => {
    const good = createNodeSigner('EC-256');
    const faulty: DigestSigner = {
      spec: good.spec,
      publicKeySpki: good.publicKeySpki,
      signDigest: async () => Buffer.alloc(64, 1),
    };
    await expectPkiError(
      issueRootCaCertificate({ signer: faulty, subject: subject('Root'), validityDays: 1 }),
      'INTERNAL',
      'signature',
    );
  });
});

describe(issueIssuingCaCertificate.name, () => {
  it('issues pathLen 0, keyCertSign+cRLSign+digitalSignature, SKI+AKI, CRL DP and AIA at the root generation endpoints', async () => {
    const h = await createHierarchy('EC-384');
    const { node, peculiar } = inspect(h.issuing);
    const rootNode = new crypto.X509Certificate(h.root.der);

    expect(node.ca).toBe(true);
    expect(node.checkIssued(rootNode)).toBe(true);
    expect(node.verify(h.rootSigner.publicKey)).toBe(true);
    const bc = peculiar.getExtension(x509.BasicConstraintsExtension)!;
    expect(bc).toMatchObject({ critical: true, ca: true, pathLength: 0 });
    const ku = peculiar.getExtension(x509.KeyUsagesExtension)!;
    expect(ku.critical).toBe(true);
    expect(ku.usages).toBe(KU.keyCertSign | KU.cRLSign | KU.digitalSignature);
    expect(peculiar.getExtension(x509.SubjectKeyIdentifierExtension)!.keyId).toBe(
      expectedKeyId(h.issuingSigner.publicKey),
    );
    expect(peculiar.getExtension(x509.AuthorityKeyIdentifierExtension)!.keyId).toBe(
      expectedKeyId(h.rootSigner.publicKey),
    );
    expect(urls(peculiar)).toEqual({
      crl: [`${BASE_URL}/pki/root-g1.crl`],
      ocsp: [`${BASE_URL}/ocsp/root-g1`],
      caIssuers: [`${BASE_URL}/pki/root-g1.crt`],
    });
    expect(extensionIds(peculiar)).toEqual(
      [OID.basicConstraints, OID.keyUsage, OID.ski, OID.aki, OID.crlDp, OID.aia].sort(),
    );
    // The issuer field is byte-identical to the root's subject.
    expect(node.issuer).toBe(rootNode.subject);
  });

  it('refuses a subordinate CA under an issuing CA (pathLen 0)', async () => {
    const h = await createHierarchy('EC-256');
    const other = createNodeSigner('EC-256');
    await expectPkiError(
      issueIssuingCaCertificate({
        issuer: h.issuingIssuer,
        subject: subject('Sub'),
        publicKeySpki: other.publicKeySpki,
        validityDays: 30,
      }),
      'VALIDATION_ERROR',
      'issuer',
    );
  });

  it('refuses a CA that would outlive its root', async () => {
    const h = await createHierarchy('EC-256');
    const other = createNodeSigner('EC-256');
    await expectPkiError(
      issueIssuingCaCertificate({
        issuer: h.rootIssuer,
        subject: subject('Sub'),
        publicKeySpki: other.publicKeySpki,
        validityDays: 4000,
      }),
      'VALIDATION_ERROR',
      'validityDays',
    );
  });
});

describe(issueCodeSigningCertificate.name, () => {
  let h: Awaited<ReturnType<typeof createHierarchy>>;
  beforeAll(async () => {
    h = await createHierarchy('EC-384');
  });

  it.each<KeySpec>(['EC-256', 'EC-384', 'EC-521', 'RSA-2048', 'RSA-3072', 'RSA-4096'])(
    'issues a %s leaf that follows the code-signing profile exactly',
    async (spec) => {
      const { signer, leaf } = await issueLeaf(h.issuingIssuer, spec);
      const { node, peculiar } = inspect(leaf);

      expect(node.ca).toBe(false);
      expect(node.verify(h.issuingSigner.publicKey)).toBe(true);
      expect(node.checkIssued(new crypto.X509Certificate(h.issuing.der))).toBe(true);
      expect(node.publicKey.equals(signer.publicKey)).toBe(true);
      const ku = peculiar.getExtension(x509.KeyUsagesExtension)!;
      expect(ku.critical).toBe(true);
      expect(ku.usages).toBe(KU.digitalSignature);
      const eku = peculiar.getExtension(x509.ExtendedKeyUsageExtension)!;
      expect(eku.usages).toEqual([OID.codeSigning]);
      expect(node.keyUsage).toEqual([OID.codeSigning]); // Node's name for the EKU list
      expect(peculiar.getExtension(x509.BasicConstraintsExtension)).toBeNull();
      expect(peculiar.getExtension(OID.freshestCrl)).toBeNull();
      expect(peculiar.getExtension(x509.SubjectKeyIdentifierExtension)!.keyId).toBe(expectedKeyId(signer.publicKey));
      expect(peculiar.getExtension(x509.AuthorityKeyIdentifierExtension)!.keyId).toBe(
        expectedKeyId(h.issuingSigner.publicKey),
      );
      expect(urls(peculiar)).toEqual({
        crl: [`${BASE_URL}/pki/issuing-g1.crl`],
        ocsp: [`${BASE_URL}/ocsp/issuing-g1`],
        caIssuers: [`${BASE_URL}/pki/issuing-g1.crt`],
      });
      expect(extensionIds(peculiar)).toEqual(
        [OID.keyUsage, OID.extKeyUsage, OID.ski, OID.aki, OID.crlDp, OID.aia].sort(),
      );
      expect(node.subject).toBe(`C=DE\nST=Berlin\nO=Signet Test\nCN=release-${spec}`);
      expect(leaf.serialHex).toMatch(/^[4-7][0-9a-f]{31}$/);
      expect(node.serialNumber.toLowerCase()).toBe(leaf.serialHex);
    },
  );

  it('refuses to hand out a leaf when the issuing CA signer returns a bad signature', async () => {
    const faulty: DigestSigner = {
      spec: h.issuingSigner.spec,
      publicKeySpki: h.issuingSigner.publicKeySpki,
      signDigest: async () => Buffer.alloc(96, 1),
    };
    await expectPkiError(issueLeaf({ ...h.issuingIssuer, signer: faulty }), 'INTERNAL', 'signature');
  });

  it('accepts 460 days and refuses 461', async () => {
    const { leaf } = await issueLeaf(h.issuingIssuer, 'EC-256', { validityDays: 460 });
    expect(leaf.notAfter.getTime() - leaf.notBefore.getTime()).toBe(460 * 86_400_000);
    await expectPkiError(
      issueLeaf(h.issuingIssuer, 'EC-256', { validityDays: 461 }),
      'VALIDATION_ERROR',
      'validityDays',
    );
  });

  it('refuses to issue from an expired issuer', async () => {
    await expectPkiError(
      issueLeaf(h.issuingIssuer, 'EC-256', { validityDays: 1, now: new Date(Date.now() + 6 * 365 * 86_400_000) }),
      'ISSUER_NOT_VALID_NOW',
      'issuer',
    );
  });

  it('refuses a leaf that would outlive its issuing CA', async () => {
    const soon = new Date(h.issuing.notAfter.getTime() - 10 * 86_400_000);
    await expectPkiError(
      issueLeaf(h.issuingIssuer, 'EC-256', { validityDays: 30, now: soon }),
      'VALIDATION_ERROR',
      'validityDays',
    );
  });

  it('needs the issuer generation URLs', async () => {
    const withoutUrls = loadCaIssuer({ certificate: h.issuing.der, signer: h.issuingSigner });
    await expectPkiError(issueLeaf(withoutUrls), 'VALIDATION_ERROR', 'issuer.urls');
  });

  it('refuses keys Notation does not accept, and the issuer own key', async () => {
    const ed = crypto.generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'der' });
    await expectPkiError(
      issueCodeSigningCertificate({
        issuer: h.issuingIssuer,
        subject: subject('x'),
        publicKeySpki: ed,
        validityDays: 1,
      }),
      'UNSUPPORTED_ALGORITHM',
      'publicKeySpki',
    );
    await expectPkiError(
      issueCodeSigningCertificate({
        issuer: h.issuingIssuer,
        subject: subject('x'),
        publicKeySpki: h.issuingSigner.publicKeySpki,
        validityDays: 1,
      }),
      'VALIDATION_ERROR',
      'publicKeySpki',
    );
  });

  it('gives 1,000 certificates unique, positive serials of 16 octets with at least 64 varying random bits', async () => {
    const signer = createNodeSigner('EC-256');
    const serials: Buffer[] = [];
    for (let i = 0; i < 1000; i++) {
      const leaf = await issueCodeSigningCertificate({
        issuer: h.issuingIssuer,
        subject: subject('bulk'),
        publicKeySpki: signer.publicKeySpki,
        validityDays: 1,
      });
      // Read the DER INTEGER straight from the certificate: tbs → [0] version → serial.
      const tbs = new x509.X509Certificate(leaf.der);
      serials.push(Buffer.from(tbs.serialNumber, 'hex'));
      const node = new crypto.X509Certificate(leaf.der);
      expect(node.serialNumber.toLowerCase().replace(/^0+/, '')).toBe(leaf.serialHex);
    }
    const hex = new Set(serials.map((s) => s.toString('hex')));
    expect(hex.size).toBe(1000);
    for (const serial of serials) {
      expect(serial.length).toBe(16); // DER content octets: no 00 pad needed, ≤ 20
      expect(serial[0] & 0x80).toBe(0); // positive
      expect(serial[0]).toBeGreaterThan(0); // no leading zero octet
    }
    // Every bit position that is random must take both values somewhere in 1,000 samples.
    let varying = 0;
    for (let bit = 0; bit < 128; bit++) {
      const ones = serials.filter((s) => (s[bit >> 3] >> (7 - (bit & 7))) & 1).length;
      if (ones > 0 && ones < serials.length) varying++;
    }
    expect(varying).toBeGreaterThanOrEqual(64);
    expect(varying).toBe(126);
  });
});

describe('TSA profiles', () => {
  it('issues a TSA root (pathLen 0) and a timestamping certificate with critical EKU timeStamping only', async () => {
    const rootSigner = createNodeSigner('EC-384');
    const root = await issueTsaRootCertificate({
      signer: rootSigner,
      subject: subject('TSA Root'),
      validityDays: 3650,
    });
    const rootView = inspect(root).peculiar;
    expect(rootView.getExtension(x509.BasicConstraintsExtension)).toMatchObject({
      critical: true,
      ca: true,
      pathLength: 0,
    });
    expect(rootView.getExtension(x509.KeyUsagesExtension)!.usages).toBe(
      KU.keyCertSign | KU.cRLSign | KU.digitalSignature,
    );

    const issuer = loadCaIssuer({ certificate: root.pem, signer: rootSigner });
    const tsaSigner = createNodeSigner('EC-256');
    const tsa = await issueTimestampingCertificate({
      issuer,
      subject: subject('Signet TSA'),
      publicKeySpki: tsaSigner.publicKeySpki,
      validityDays: 365,
    });
    const { node, peculiar } = inspect(tsa);
    expect(node.verify(rootSigner.publicKey)).toBe(true);
    const eku = peculiar.getExtension(x509.ExtendedKeyUsageExtension)!;
    expect(eku.critical).toBe(true);
    expect(eku.usages).toEqual([OID.timeStamping]);
    const ku = peculiar.getExtension(x509.KeyUsagesExtension)!;
    expect(ku).toMatchObject({ critical: true, usages: KU.digitalSignature });
    expect(peculiar.getExtension(x509.BasicConstraintsExtension)).toBeNull();
    expect(extensionIds(peculiar)).toEqual([OID.keyUsage, OID.extKeyUsage, OID.ski, OID.aki].sort());
  });

  it('adds CRL DP and AIA to a timestamping certificate when the TSA root has endpoints', async () => {
    const rootSigner = createNodeSigner('EC-256');
    const root = await issueTsaRootCertificate({
      signer: rootSigner,
      subject: subject('TSA Root'),
      validityDays: 3650,
    });
    const issuer = loadCaIssuer({
      certificate: root.der,
      signer: rootSigner,
      urls: caGenerationUrls(BASE_URL, 'tsa-root-g1'),
    });
    const tsa = await issueTimestampingCertificate({
      issuer,
      subject: subject('Signet TSA'),
      publicKeySpki: createNodeSigner('EC-256').publicKeySpki,
      validityDays: 30,
    });
    expect(urls(inspect(tsa).peculiar).ocsp).toEqual([`${BASE_URL}/ocsp/tsa-root-g1`]);
  });
});

describe(loadCaIssuer.name, () => {
  it('refuses a non-CA certificate, a signer for another key, and https endpoints', async () => {
    const h = await createHierarchy('EC-256');
    const { signer, leaf } = await issueLeaf(h.issuingIssuer);
    await expectPkiError(() => loadCaIssuer({ certificate: leaf.der, signer }), 'INVALID_CERTIFICATE', 'certificate');
    await expectPkiError(
      () => loadCaIssuer({ certificate: h.issuing.der, signer: h.rootSigner }),
      'VALIDATION_ERROR',
      'signer',
    );
    await expectPkiError(
      () =>
        loadCaIssuer({
          certificate: h.issuing.der,
          signer: h.issuingSigner,
          urls: { crl: 'https://x/pki/a.crl', ocsp: 'http://x/ocsp/a', caIssuers: 'http://x/pki/a.crt' },
        }),
      'VALIDATION_ERROR',
      'urls.crl',
    );
    await expectPkiError(
      () => loadCaIssuer({ certificate: Buffer.from('garbage'), signer: h.issuingSigner }),
      'INVALID_CERTIFICATE',
    );
  });

  it('takes the issuer key identifier and exact subject bytes from the certificate', async () => {
    const h = await createHierarchy('EC-256');
    const issuer: CaIssuer = h.issuingIssuer;
    const peculiar = new x509.X509Certificate(h.issuing.der);
    expect(issuer.keyIdentifier.toString('hex')).toBe(peculiar.getExtension(x509.SubjectKeyIdentifierExtension)!.keyId);
    expect(h.issuing.der.includes(issuer.subjectName)).toBe(true);
    expect(issuer.pathLength).toBe(0);
  });
});

/**
 * Certificates are assembled in DER by hand. This is how they were built before, with
 * @peculiar/x509's generator and the profile restated with its extension classes: the same inputs
 * (serial, times, names, key, signer) must give the same TBSCertificate byte for byte, and with a
 * deterministic signature (RSA PKCS#1 v1.5) the same certificate.
 */
describe('direct DER certificate assembly', () => {
  const NOW = new Date('2030-01-15T12:00:00.400Z');
  const CA_KU = KU.keyCertSign | KU.cRLSign | KU.digitalSignature;
  const PROFILE: Record<CertificateProfile, () => x509.Extension[]> = {
    'root-ca': () => [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(CA_KU, true),
    ],
    'tsa-root': () => [new x509.BasicConstraintsExtension(true, 0, true), new x509.KeyUsagesExtension(CA_KU, true)],
    'issuing-ca': () => [new x509.BasicConstraintsExtension(true, 0, true), new x509.KeyUsagesExtension(CA_KU, true)],
    'code-signing': () => [
      new x509.KeyUsagesExtension(KU.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([OID.codeSigning], false),
    ],
    timestamping: () => [
      new x509.KeyUsagesExtension(KU.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([OID.timeStamping], true),
    ],
  };

  interface Inputs {
    profile: CertificateProfile;
    subject: CertificateSubject;
    publicKeySpki: Buffer;
    /** The CA's signer (the key's own for self-signed certificates). */
    signer: DigestSigner;
    scheme: SignatureScheme;
    /** Absent for self-signed certificates. */
    issuer?: CaIssuer;
  }

  async function generatorReference(issued: IssuedCertificate, inputs: Inputs): Promise<Buffer> {
    const extensions = [
      ...PROFILE[inputs.profile](),
      await x509.SubjectKeyIdentifierExtension.create(inputs.publicKeySpki),
    ];
    const { issuer } = inputs;
    if (issuer) {
      const issuerSki = new x509.X509Certificate(issuer.certificate).getExtension(
        x509.SubjectKeyIdentifierExtension,
      )!.keyId;
      extensions.push(new x509.AuthorityKeyIdentifierExtension(issuerSki, false));
      if (issuer.urls) {
        extensions.push(new x509.CRLDistributionPointsExtension([issuer.urls.crl], false));
        extensions.push(
          new x509.AuthorityInfoAccessExtension(
            { ocsp: [issuer.urls.ocsp], caIssuers: [issuer.urls.caIssuers] },
            false,
          ),
        );
      }
    }
    const subjectName = encodeSubjectName(inputs.subject);
    const generated = await x509.X509CertificateGenerator.create(
      {
        serialNumber: issued.serialHex,
        subject: new x509.Name(subjectName),
        issuer: new x509.Name(issuer ? issuer.subjectName : subjectName),
        notBefore: issued.notBefore,
        notAfter: issued.notAfter,
        publicKey: inputs.publicKeySpki,
        signingKey: signerCryptoKey(inputs.signer, inputs.scheme),
        extensions,
      },
      digestSignerCrypto,
    );
    return Buffer.from(generated.rawData);
  }

  async function expectSameAsGenerator(issued: IssuedCertificate, inputs: Inputs): Promise<void> {
    const reference = await generatorReference(issued, inputs);
    const ours = readCertificateParts(issued.der);
    const theirs = readCertificateParts(reference);
    expect(ours.tbs.toString('hex')).toBe(theirs.tbs.toString('hex'));
    expect(ours.signatureAlgorithm.toString('hex')).toBe(theirs.signatureAlgorithm.toString('hex'));
    if (inputs.scheme.kind === 'rsa-pkcs1') expect(issued.der.toString('hex')).toBe(reference.toString('hex'));
  }

  it.each<[KeySpec, 'pss' | 'pkcs1']>([
    ['EC-384', 'pss'],
    ['RSA-2048', 'pkcs1'],
    ['RSA-3072', 'pss'],
  ])('builds a %s (%s) root and issuing CA exactly as the generator did', async (spec, rsaPadding) => {
    const h = await createHierarchy(spec, { rsaPadding, now: NOW });
    const scheme = signatureSchemeFor(spec, rsaPadding);
    await expectSameAsGenerator(h.root, {
      profile: 'root-ca',
      subject: subject(`Test Root ${spec}`),
      publicKeySpki: h.rootSigner.publicKeySpki,
      signer: h.rootSigner,
      scheme,
    });
    await expectSameAsGenerator(h.issuing, {
      profile: 'issuing-ca',
      subject: subject(`Test Issuing CA ${spec}`),
      publicKeySpki: h.issuingSigner.publicKeySpki,
      signer: h.rootSigner,
      scheme,
      issuer: h.rootIssuer,
    });
  });

  it('encodes a notAfter from 2050 on as GeneralizedTime, as the generator did', async () => {
    const signer = createNodeSigner('RSA-2048');
    const root = await issueRootCaCertificate({
      signer,
      subject: subject('Long Root'),
      validityDays: 36_500,
      now: NOW,
      rsaPadding: 'pkcs1',
    });
    expect(root.notAfter.getUTCFullYear()).toBe(2129);
    expect(new x509.X509Certificate(root.der).notAfter.getTime()).toBe(root.notAfter.getTime());
    // GeneralizedTime (tag 0x18, 15 octets) "2129…Z"; notBefore stays UTCTime.
    expect(root.der.includes(Buffer.concat([Buffer.from([0x18, 0x0f]), Buffer.from('2129', 'ascii')]))).toBe(true);
    expect(root.der.includes(Buffer.concat([Buffer.from([0x17, 0x0d]), Buffer.from('300115115500Z', 'ascii')]))).toBe(
      true,
    );
    await expectSameAsGenerator(root, {
      profile: 'root-ca',
      subject: subject('Long Root'),
      publicKeySpki: signer.publicKeySpki,
      signer,
      scheme: signatureSchemeFor('RSA-2048', 'pkcs1'),
    });
  });

  it.each<[KeySpec, KeySpec, 'pss' | 'pkcs1']>([
    ['EC-384', 'EC-256', 'pss'],
    ['EC-384', 'RSA-3072', 'pss'],
    ['RSA-2048', 'EC-521', 'pkcs1'],
    ['RSA-2048', 'RSA-4096', 'pkcs1'],
    ['RSA-3072', 'EC-384', 'pss'],
  ])(
    'builds a code-signing leaf under a %s issuing CA for a %s key (%s) exactly as the generator did',
    async (caSpec, leafSpec, rsaPadding) => {
      const h = await createHierarchy(caSpec, { rsaPadding, now: NOW });
      const { signer, leaf } = await issueLeaf(h.issuingIssuer, leafSpec, { now: NOW, validityDays: 90 });
      await expectSameAsGenerator(leaf, {
        profile: 'code-signing',
        subject: subject(`release-${leafSpec}`),
        publicKeySpki: signer.publicKeySpki,
        signer: h.issuingSigner,
        scheme: signatureSchemeFor(caSpec, rsaPadding),
        issuer: h.issuingIssuer,
      });
    },
  );

  it.each([true, false])(
    'builds a TSA root and a timestamping certificate (issuer URLs: %s) exactly as the generator did',
    async (withUrls) => {
      const rootSigner = createNodeSigner('RSA-2048');
      const scheme = signatureSchemeFor('RSA-2048', 'pkcs1');
      const root = await issueTsaRootCertificate({
        signer: rootSigner,
        subject: subject('TSA Root'),
        validityDays: 3650,
        now: NOW,
        rsaPadding: 'pkcs1',
      });
      await expectSameAsGenerator(root, {
        profile: 'tsa-root',
        subject: subject('TSA Root'),
        publicKeySpki: rootSigner.publicKeySpki,
        signer: rootSigner,
        scheme,
      });
      const issuer = loadCaIssuer({
        certificate: root.der,
        signer: rootSigner,
        rsaPadding: 'pkcs1',
        urls: withUrls ? caGenerationUrls(BASE_URL, 'tsa-root-g1') : undefined,
      });
      const tsaSigner = createNodeSigner('EC-256');
      const tsa = await issueTimestampingCertificate({
        issuer,
        subject: subject('Signet TSA'),
        publicKeySpki: tsaSigner.publicKeySpki,
        validityDays: 365,
        now: NOW,
      });
      await expectSameAsGenerator(tsa, {
        profile: 'timestamping',
        subject: subject('Signet TSA'),
        publicKeySpki: tsaSigner.publicKeySpki,
        signer: rootSigner,
        scheme,
        issuer,
      });
    },
  );

  it('gives a code-signing leaf exactly the profile as @peculiar/x509 parses it: v3, extensions in order with their criticality and values', async () => {
    const h = await createHierarchy('EC-384', { now: NOW });
    const { signer, leaf } = await issueLeaf(h.issuingIssuer, 'EC-256', { now: NOW, validityDays: 90 });
    const cert = new x509.X509Certificate(leaf.der);
    const issuingCert = new x509.X509Certificate(h.issuing.der);

    expect(cert.serialNumber).toBe(leaf.serialHex);
    expect(cert.issuer).toBe(issuingCert.subject);
    expect(cert.subject).toBe('C=DE, ST=Berlin, O=Signet Test, CN=release-EC-256');
    expect(cert.notBefore.toISOString()).toBe('2030-01-15T11:55:00.000Z');
    expect(cert.notAfter.toISOString()).toBe('2030-04-15T11:55:00.000Z');
    expect(cert.signatureAlgorithm).toMatchObject({ name: 'ECDSA', hash: { name: 'SHA-384' } });
    expect(Buffer.from(cert.publicKey.rawData).equals(signer.publicKeySpki)).toBe(true);
    expect(await cert.verify({ publicKey: issuingCert.publicKey, signatureOnly: true })).toBe(true);
    expect(readCertificateParts(leaf.der).version).toBe(2);

    expect(cert.extensions.map((ext) => [ext.type, ext.critical])).toEqual([
      [OID.keyUsage, true],
      [OID.extKeyUsage, false],
      [OID.ski, false],
      [OID.aki, false],
      [OID.crlDp, false],
      [OID.aia, false],
    ]);
    expect(cert.getExtension(x509.KeyUsagesExtension)!.usages).toBe(KU.digitalSignature);
    expect(cert.getExtension(x509.ExtendedKeyUsageExtension)!.usages).toEqual([OID.codeSigning]);
    expect(cert.getExtension(x509.SubjectKeyIdentifierExtension)!.keyId).toBe(expectedKeyId(signer.publicKey));
    const aki = cert.getExtension(x509.AuthorityKeyIdentifierExtension)!;
    expect(aki.keyId).toBe(expectedKeyId(h.issuingSigner.publicKey));
    expect(aki.certId).toBeUndefined();
    expect(urls(cert)).toEqual({
      crl: [`${BASE_URL}/pki/issuing-g1.crl`],
      ocsp: [`${BASE_URL}/ocsp/issuing-g1`],
      caIssuers: [`${BASE_URL}/pki/issuing-g1.crt`],
    });
    // Nothing after the signature, and the issuer name bytes are the issuing CA's subject bytes.
    expect(leaf.der.length).toBe(cert.rawData.byteLength);
    expect(readCertificateParts(leaf.der).issuer.equals(readCertificateParts(h.issuing.der).subject)).toBe(true);
  });
});
