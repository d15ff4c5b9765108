import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { PkiError, PkiErrorCode } from './pki-error';
import { DigestSigner, KeySpec } from './key-spec';
import { EKU_OIDS } from './certificate-profiles';
import { DerParseError, readChildren, readSingle, readSignedParts } from './der-reader';
import { keySpecOfPublicKey } from './key-identifiers';
import { derToPem, pemOrDerToDer } from './pem-codec';
import { RsaPadding, describeSignatureAlgorithm, signatureSchemeFor, verifySignature } from './signature-algorithms';
import { CertificateSubject, NameAttribute, decodeName, encodeSubjectName, validateSubject } from './subject-name';
import { digestSignerCrypto, signerCryptoKey } from './x509-signer-provider';

/** What the CSR asks for: an issuing CA key (offline root) or a code-signing key (external CA). */
export type CsrProfile = 'issuing-ca' | 'code-signing';

export interface CreateCsrParams {
  signer: DigestSigner;
  subject: CertificateSubject;
  profile: CsrProfile;
  rsaPadding?: RsaPadding;
}

export interface CreatedCsr {
  der: Buffer;
  pem: string;
}

/**
 * PKCS#10 request signed by the key it certifies (proof of possession through the signer). It
 * carries the profile's key usages as an extensionRequest, a hint for the external CA operator.
 */
export async function createCertificationRequest(params: CreateCsrParams): Promise<CreatedCsr> {
  const operation = 'createCertificationRequest';
  const subject = validateSubject(params.subject, operation);
  const scheme = signatureSchemeFor(params.signer.spec, params.rsaPadding ?? 'pss');
  const key = signerCryptoKey(params.signer, scheme);
  const subjectName = encodeSubjectName(subject);
  const KU = x509.KeyUsageFlags;
  const extensions =
    params.profile === 'issuing-ca'
      ? [
          new x509.BasicConstraintsExtension(true, 0, true),
          new x509.KeyUsagesExtension(KU.keyCertSign | KU.cRLSign | KU.digitalSignature, true),
        ]
      : [
          new x509.KeyUsagesExtension(KU.digitalSignature, true),
          new x509.ExtendedKeyUsageExtension([EKU_OIDS.codeSigning], false),
        ];
  const csr = await x509.Pkcs10CertificateRequestGenerator.create(
    {
      name: new x509.Name(subjectName),
      // exportKey('spki') on the signer key yields the signer's public key.
      keys: { privateKey: key, publicKey: key },
      signingAlgorithm: { name: scheme.oid },
      extensions,
    },
    digestSignerCrypto,
  );
  const der = Buffer.from(csr.rawData);
  const parsed = parseCertificationRequest(der); // also proves the signature verifies
  if (!parsed.subjectName.equals(subjectName)) {
    throw new PkiError('INTERNAL', `${operation}: CSR subject differs from the requested subject`, {
      field: 'subject',
    });
  }
  return { der, pem: derToPem(der, 'CERTIFICATE REQUEST') };
}

export interface ParsedCsr {
  der: Buffer;
  /** DER Name as encoded in the request. */
  subjectName: Buffer;
  subject: NameAttribute[][];
  publicKeySpki: Buffer;
  /** Null when the key is not one Notation accepts. */
  keySpec: KeySpec | null;
  signatureAlgorithm: string;
}

/** Parses a PEM or DER PKCS#10 request and verifies its self-signature. */
export function parseCertificationRequest(input: string | Buffer): ParsedCsr {
  const operation = 'parseCertificationRequest';
  const invalid = (message: string, code: PkiErrorCode = 'VALIDATION_ERROR'): PkiError =>
    new PkiError(code, `${operation}: ${message}`, { field: 'csr' });
  const der = pemOrDerToDer(input, 'CERTIFICATE REQUEST', operation);
  let parts: ReturnType<typeof readSignedParts>;
  let subjectName: Buffer;
  let publicKeySpki: Buffer;
  let subject: NameAttribute[][];
  try {
    parts = readSignedParts(der);
    const [version, name, spki] = readChildren(readSingle(parts.tbs, 0x30));
    if (!version || version.tag !== 0x02 || version.content.length !== 1 || version.content[0] !== 0) {
      throw new DerParseError('version must be v1 (0)');
    }
    if (!name || name.tag !== 0x30 || !spki || spki.tag !== 0x30)
      throw new DerParseError('malformed CertificationRequestInfo');
    subjectName = Buffer.from(name.raw);
    publicKeySpki = Buffer.from(spki.raw);
    subject = decodeName(subjectName);
  } catch (error) {
    throw invalid(`not a PKCS#10 certification request (${(error as Error).message})`);
  }
  const algorithm = describeSignatureAlgorithm(parts.signatureAlgorithm);
  if (!algorithm) throw invalid('signature algorithm is not ECDSA/RSA with SHA-256/384/512', 'UNSUPPORTED_ALGORITHM');
  if (!verifySignature(publicKeySpki, algorithm, parts.tbs, parts.signature)) {
    throw invalid('signature does not verify with the enclosed public key');
  }
  return {
    der,
    subjectName,
    subject,
    publicKeySpki,
    keySpec: keySpecOfPublicKey(publicKeySpki),
    signatureAlgorithm: algorithm.name,
  };
}
