import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import { caGenerationUrls } from '../../src/pki/ca-urls';
import { issueCodeSigningCertificate, loadCaIssuer } from '../../src/pki/certificate-issuer';
import { validateCertificateChain } from '../../src/pki/certificate-chain-validator';
import { createCertificationRequest } from '../../src/pki/certification-request';
import { pemOrDerToDer } from '../../src/pki/pem-codec';
import { PkiError } from '../../src/pki/pki-error';
import { createNodeSigner } from '../support/node-signer';
import { BASE_URL, openssl, subject, tempDir } from './ca-fixtures';

/**
 * `signet init --offline-root` and external-CA mode: Signet creates only a key and a CSR; a root
 * made and operated with the OpenSSL CLI signs it; the returned chain is validated before use.
 */
describe('offline root and external CA chains', () => {
  const tmp = tempDir();
  afterAll(() => tmp.cleanup());

  const ROOT_CONFIG = `
[req]
distinguished_name = dn
x509_extensions = v3_root
prompt = no
[dn]
C = DE
ST = Berlin
O = Offline Root Org
CN = Offline Root
[v3_root]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
`;
  const EXTENSIONS = `
[v3_issuing]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign,digitalSignature
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
crlDistributionPoints = URI:http://offline.example/root.crl
authorityInfoAccess = caIssuers;URI:http://offline.example/root.crt
[v3_leaf]
keyUsage = critical,digitalSignature
extendedKeyUsage = codeSigning
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
crlDistributionPoints = URI:http://offline.example/root.crl
authorityInfoAccess = OCSP;URI:http://offline.example/ocsp
[v3_leaf_server]
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
crlDistributionPoints = URI:http://offline.example/root.crl
`;

  let rootKey: string;
  let rootPem: string;
  let extFile: string;

  beforeAll(async () => {
    rootKey = tmp.file('root.key');
    rootPem = tmp.file('root.pem');
    extFile = tmp.file('ext.cnf', EXTENSIONS);
    const made = await openssl([
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-384',
      '-nodes',
      '-keyout',
      rootKey,
      '-config',
      tmp.file('root.cnf', ROOT_CONFIG),
      '-days',
      '3650',
      '-sha384',
      '-out',
      rootPem,
    ]);
    expect(made.code).toBe(0);
  });

  async function signWithRoot(csrPem: string, section: string, name: string, extra: string[] = []): Promise<string> {
    const out = tmp.file(`${name}.pem`);
    const signed = await openssl([
      'x509',
      '-req',
      '-in',
      tmp.file(`${name}.csr`, csrPem),
      '-CA',
      rootPem,
      '-CAkey',
      rootKey,
      '-set_serial',
      `0x${crypto.randomBytes(16).toString('hex').replace(/^./, '4')}`,
      '-days',
      '365',
      '-sha384',
      '-extfile',
      extFile,
      '-extensions',
      section,
      '-out',
      out,
      ...extra,
    ]);
    expect(signed.stderr).not.toMatch(/error/i);
    expect(signed.code).toBe(0);
    return fs.readFileSync(out, 'utf8');
  }

  it('takes an issuing CA CSR to an OpenSSL-operated root and back, then issues leaves OpenSSL verifies', async () => {
    const issuingSigner = createNodeSigner('EC-384');
    const csr = await createCertificationRequest({
      signer: issuingSigner,
      subject: subject('Signet Issuing CA'),
      profile: 'issuing-ca',
    });
    const csrCheck = await openssl([
      'req',
      '-in',
      tmp.file('issuing-check.csr', csr.pem),
      '-verify',
      '-noout',
      '-subject',
    ]);
    expect(csrCheck.code).toBe(0);
    expect(csrCheck.stderr + csrCheck.stdout).toMatch(/verify OK/);
    expect(csrCheck.stdout).toMatch(/subject=C = DE, ST = Berlin, O = Signet Test, CN = Signet Issuing CA/);

    const issuingPem = await signWithRoot(csr.pem, 'v3_issuing', 'issuing');
    const validated = validateCertificateChain({
      chain: issuingPem + fs.readFileSync(rootPem, 'utf8'),
      expectedPublicKeySpki: issuingSigner.publicKeySpki,
      leafProfile: 'issuing-ca',
    });
    expect(validated.certificates).toHaveLength(2);
    expect(validated.root.der).toEqual(pemOrDerToDer(fs.readFileSync(rootPem, 'utf8'), 'CERTIFICATE'));

    // The imported issuing CA now issues; the whole chain passes OpenSSL's strict verification.
    const issuer = loadCaIssuer({
      certificate: issuingPem,
      signer: issuingSigner,
      urls: caGenerationUrls(BASE_URL, 'issuing-offline-g1'),
    });
    const leafSigner = createNodeSigner('EC-256');
    const leaf = await issueCodeSigningCertificate({
      issuer,
      subject: subject('release'),
      publicKeySpki: leafSigner.publicKeySpki,
      validityDays: 90,
    });
    const verified = await openssl([
      'verify',
      '-x509_strict',
      '-CAfile',
      rootPem,
      '-untrusted',
      tmp.file('issuing-in.pem', issuingPem),
      tmp.file('leaf.pem', leaf.pem),
    ]);
    expect(verified.stderr).toBe('');
    expect(verified.code).toBe(0);
    expect(
      validateCertificateChain({
        chain: [leaf.der, pemOrDerToDer(issuingPem, 'CERTIFICATE'), validated.root.der],
        expectedPublicKeySpki: leafSigner.publicKeySpki,
        leafProfile: 'code-signing',
      }).leaf.subject,
    ).toEqual({ C: 'DE', ST: 'Berlin', O: 'Signet Test', CN: 'release' });
  });

  it('refuses the returned chain when its certificate is for another key', async () => {
    const issuingSigner = createNodeSigner('EC-384');
    const csr = await createCertificationRequest({
      signer: issuingSigner,
      subject: subject('Signet Issuing CA'),
      profile: 'issuing-ca',
    });
    const issuingPem = await signWithRoot(csr.pem, 'v3_issuing', 'issuing-mismatch');
    const error = catchError(() =>
      validateCertificateChain({
        chain: [issuingPem, fs.readFileSync(rootPem, 'utf8')],
        expectedPublicKeySpki: createNodeSigner('EC-384').publicKeySpki,
        leafProfile: 'issuing-ca',
      }),
    );
    expect(error.code).toBe('INVALID_CERTIFICATE');
    expect(error.details).toMatchObject({ index: 0, field: 'subjectPublicKeyInfo' });
  });

  describe('external-CA mode leaves', () => {
    const leafSigner = createNodeSigner('EC-256');
    let csrPem: string;
    beforeAll(async () => {
      csrPem = (
        await createCertificationRequest({ signer: leafSigner, subject: subject('release'), profile: 'code-signing' })
      ).pem;
    });

    it('accepts a code-signing leaf the external CA issued as asked', async () => {
      const leafPem = await signWithRoot(csrPem, 'v3_leaf', 'ext-leaf');
      const result = validateCertificateChain({
        chain: leafPem + fs.readFileSync(rootPem, 'utf8'),
        expectedPublicKeySpki: leafSigner.publicKeySpki,
        leafProfile: 'code-signing',
      });
      expect(result.leaf.subject.CN).toBe('release');
    });

    it('refuses a leaf with the wrong EKU', async () => {
      const leafPem = await signWithRoot(csrPem, 'v3_leaf_server', 'ext-server');
      const error = catchError(() =>
        validateCertificateChain({
          chain: leafPem + fs.readFileSync(rootPem, 'utf8'),
          expectedPublicKeySpki: leafSigner.publicKeySpki,
          leafProfile: 'code-signing',
        }),
      );
      expect(error.code).toBe('INVALID_CERTIFICATE');
      expect(error.details).toMatchObject({ index: 0, field: 'extendedKeyUsage' });
    });

    it('refuses a leaf whose subject lost ST', async () => {
      const leafPem = await signWithRoot(csrPem, 'v3_leaf', 'ext-no-st', ['-subj', '/C=DE/O=Signet Test/CN=release']);
      expect(
        (await openssl(['x509', '-in', tmp.file('ext-no-st-check.pem', leafPem), '-noout', '-subject'])).stdout,
      ).toMatch(/subject=C = DE, O = Signet Test, CN = release/);
      const error = catchError(() =>
        validateCertificateChain({
          chain: leafPem + fs.readFileSync(rootPem, 'utf8'),
          expectedPublicKeySpki: leafSigner.publicKeySpki,
          leafProfile: 'code-signing',
        }),
      );
      expect(error.code).toBe('INVALID_SUBJECT');
      expect(error.details).toMatchObject({ index: 0, field: 'ST' });
    });
  });
});

function catchError(fn: () => unknown): PkiError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(PkiError);
    return error as PkiError;
  }
  throw new Error('expected a PkiError');
}
