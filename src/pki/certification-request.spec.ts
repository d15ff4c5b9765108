import 'reflect-metadata';
import * as crypto from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { PkiError, PkiErrorCode } from './pki-error';
import { subject } from '../../test/ca/ca-fixtures';
import { createNodeSigner } from '../../test/support/node-signer';
import { createCertificationRequest, parseCertificationRequest } from './certification-request';
import { derToPem } from './pem-codec';

/** Typed view of a CSR extension (Pkcs10CertificateRequest.getExtension takes an OID). */
function csrExtension<T extends x509.Extension>(
  csr: x509.Pkcs10CertificateRequest,
  type: new (raw: ArrayBuffer) => T,
  oid: string,
): T | null {
  const ext = csr.getExtension(oid);
  return ext ? new type(ext.rawData) : null;
}
const BC = '2.5.29.19';
const KU = '2.5.29.15';
const EKU = '2.5.29.37';

function expectError(fn: () => unknown, code: PkiErrorCode, field?: string): void {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(PkiError);
    expect((error as PkiError).code).toBe(code);
    if (field) expect((error as PkiError).details?.field).toBe(field);
    return;
  }
  throw new Error(`expected ${code}`);
}

describe(createCertificationRequest.name, () => {
  it.each(['EC-384', 'RSA-3072'] as const)(
    'creates a %s issuing-CA CSR signed through the DigestSigner',
    async (spec) => {
      const signer = createNodeSigner(spec);
      const csr = await createCertificationRequest({
        signer,
        subject: subject('Signet Issuing CA'),
        profile: 'issuing-ca',
      });
      expect(csr.pem).toMatch(/^-----BEGIN CERTIFICATE REQUEST-----\n/);

      const parsed = new x509.Pkcs10CertificateRequest(csr.der);
      expect(await parsed.verify(crypto.webcrypto as never)).toBe(true);
      expect(parsed.subject).toBe('C=DE, ST=Berlin, O=Signet Test, CN=Signet Issuing CA');
      expect(Buffer.from(parsed.publicKey.rawData)).toEqual(signer.publicKeySpki);
      const bc = csrExtension(parsed, x509.BasicConstraintsExtension, BC)!;
      expect(bc).toMatchObject({ ca: true, pathLength: 0, critical: true });
      expect(csrExtension(parsed, x509.KeyUsagesExtension, KU)!.usages).toBe(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature,
      );
      expect(signer.signatureCount).toBe(1);
    },
  );

  it('asks for digitalSignature and codeSigning in a code-signing CSR', async () => {
    const csr = await createCertificationRequest({
      signer: createNodeSigner('EC-256'),
      subject: subject('release'),
      profile: 'code-signing',
    });
    const parsed = new x509.Pkcs10CertificateRequest(csr.der);
    expect(csrExtension(parsed, x509.KeyUsagesExtension, KU)!.usages).toBe(x509.KeyUsageFlags.digitalSignature);
    expect(csrExtension(parsed, x509.ExtendedKeyUsageExtension, EKU)!.usages).toEqual(['1.3.6.1.5.5.7.3.3']);
    expect(csrExtension(parsed, x509.BasicConstraintsExtension, BC)).toBeNull();
  });

  it('validates the subject before asking the signer for anything', async () => {
    const signer = createNodeSigner('EC-256');
    const error = await createCertificationRequest({
      signer,
      subject: { C: 'DE', ST: 'Berlin', CN: 'x' } as never,
      profile: 'code-signing',
    }).catch((caught: unknown) => caught);
    expect((error as PkiError).code).toBe('INVALID_SUBJECT');
    expect((error as PkiError).details?.field).toBe('O');
    expect(signer.signatureCount).toBe(0);
  });
});

describe(parseCertificationRequest.name, () => {
  it('returns subject, key and key spec of a PEM or DER request', async () => {
    const signer = createNodeSigner('RSA-2048');
    const csr = await createCertificationRequest({ signer, subject: subject('x'), profile: 'code-signing' });
    for (const input of [csr.pem, csr.der]) {
      const parsed = parseCertificationRequest(input);
      expect(parsed.publicKeySpki).toEqual(signer.publicKeySpki);
      expect(parsed.keySpec).toBe('RSA-2048');
      expect(parsed.signatureAlgorithm).toBe('rsassaPss-SHA256');
      expect(parsed.subject.flat().map((a) => `${a.shortName}=${a.value}`)).toEqual([
        'C=DE',
        'ST=Berlin',
        'O=Signet Test',
        'CN=x',
      ]);
    }
  });

  it('accepts a CSR made by OpenSSL-compatible WebCrypto code and refuses a tampered one', async () => {
    const keys = (await crypto.webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
      'sign',
      'verify',
    ])) as crypto.webcrypto.CryptoKeyPair;
    const csr = await x509.Pkcs10CertificateRequestGenerator.create(
      { name: 'C=US, ST=WA, O=Acme, CN=external', keys, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } as never },
      crypto.webcrypto as never,
    );
    const der = Buffer.from(csr.rawData);
    expect(parseCertificationRequest(der).keySpec).toBe('EC-256');
    const tampered = Buffer.from(der);
    tampered[tampered.indexOf(Buffer.from('external')) + 1] ^= 0x01;
    expectError(() => parseCertificationRequest(tampered), 'VALIDATION_ERROR', 'csr');
  });

  it('refuses SHA-1 signed requests and garbage', async () => {
    const keys = (await crypto.webcrypto.subtle.generateKey(
      { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-1' },
      true,
      ['sign', 'verify'],
    )) as crypto.webcrypto.CryptoKeyPair;
    const sha1 = await x509.Pkcs10CertificateRequestGenerator.create(
      { name: 'CN=old', keys, signingAlgorithm: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-1' } as never },
      crypto.webcrypto as never,
    );
    expectError(() => parseCertificationRequest(Buffer.from(sha1.rawData)), 'UNSUPPORTED_ALGORITHM', 'csr');
    expectError(() => parseCertificationRequest(Buffer.from('30030201', 'hex')), 'VALIDATION_ERROR', 'csr');
    expectError(
      () => parseCertificationRequest(derToPem(Buffer.from('3000', 'hex'), 'CERTIFICATE')),
      'VALIDATION_ERROR',
    );
  });
});
