import 'reflect-metadata';
import * as crypto from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { PkiError, PkiErrorCode } from './pki-error';
import { MAX_LEAF_VALIDITY_DAYS } from './certificate-issuer';
import { EKU_OIDS, EXTENSION_OIDS } from './certificate-profiles';
import { CertificateParts, readCertificateParts } from './der-reader';
import { keySpecOfPublicKey, samePublicKey } from './key-identifiers';
import { parsePemBlocks } from './pem-codec';
import { serialHexFromIntegerContent } from './serial-number';
import { AcceptedSignatureAlgorithm, describeSignatureAlgorithm, verifySignature } from './signature-algorithms';
import { checkSubjectName } from './subject-name';

/**
 * Validation of externally issued chains (external-CA mode, offline-root import) against the
 * NOTARY.md profiles, before a key version or issuing CA may use them. Everything Notation (and
 * OpenSSL's -x509_strict) would refuse is refused here, with the certificate index and field named.
 */

/** 'code-signing': chain for a signing key version. 'issuing-ca': our issuing CA certified by an offline root. */
export type ChainLeafProfile = 'code-signing' | 'issuing-ca';

export interface ValidateChainParams {
  /** PEM text with several CERTIFICATE blocks, or a list of PEM/DER certificates; leaf first, root last. */
  chain: string | readonly (string | Buffer)[];
  /** SubjectPublicKeyInfo of the key we hold; the leaf must certify exactly it. */
  expectedPublicKeySpki: Buffer;
  leafProfile: ChainLeafProfile;
  /** Defaults to now. */
  now?: Date;
}

export interface ChainCertificateInfo {
  der: Buffer;
  serialHex: string;
  subjectName: Buffer;
  notBefore: Date;
  notAfter: Date;
  sha256Fingerprint: string;
}

export interface ValidatedChain {
  /** DER, leaf first, root last. */
  certificates: Buffer[];
  leaf: ChainCertificateInfo & { subject: Record<string, string> };
  root: ChainCertificateInfo;
}

const MAX_CHAIN_LENGTH = 8;
const DAY_MS = 86_400_000;
/** Critical extensions verifiers know how to process; any other critical extension is refused. */
const UNDERSTOOD_CRITICAL = new Set<string>([
  EXTENSION_OIDS.basicConstraints,
  EXTENSION_OIDS.keyUsage,
  EXTENSION_OIDS.extKeyUsage,
  '2.5.29.17', // subjectAltName
  '2.5.29.30', // nameConstraints
  '2.5.29.32', // certificatePolicies
]);

interface ChainItem {
  index: number;
  role: string;
  der: Buffer;
  parts: CertificateParts;
  cert: x509.X509Certificate;
  algorithm: AcceptedSignatureAlgorithm;
}

export function validateCertificateChain(params: ValidateChainParams): ValidatedChain {
  const operation = 'validateCertificateChain';
  const now = params.now ?? new Date();
  const ders = toDerList(params.chain, operation);
  if (ders.length < 2) {
    throw new PkiError(
      'INVALID_CERTIFICATE',
      `${operation}: the chain needs the leaf and its root (leaf first, root last)`,
      {
        field: 'chain',
      },
    );
  }
  if (ders.length > MAX_CHAIN_LENGTH) {
    throw new PkiError('INVALID_CERTIFICATE', `${operation}: more than ${MAX_CHAIN_LENGTH} certificates`, {
      field: 'chain',
    });
  }
  const items = ders.map((der, index) =>
    parseItem(der, index, index === 0 ? 'leaf' : index === ders.length - 1 ? 'root' : 'intermediate CA', operation),
  );
  const fail = (item: ChainItem, field: string, message: string, code: PkiErrorCode = 'INVALID_CERTIFICATE'): never => {
    throw new PkiError(code, `${operation}: certificate[${item.index}] (${item.role}) ${message}`, {
      index: item.index,
      field,
    });
  };

  const leaf = items[0];
  if (!samePublicKey(leaf.parts.subjectPublicKeyInfo, params.expectedPublicKeySpki)) {
    fail(leaf, 'subjectPublicKeyInfo', 'does not certify the expected public key');
  }
  const leafSubject = checkSubjectName(leaf.parts.subject, `${operation}: certificate[0] (leaf)`, { index: 0 });

  for (const item of items) {
    checkCommon(item, now, fail);
    const isLast = item.index === items.length - 1;
    if (item.index === 0 && params.leafProfile === 'code-signing') checkCodeSigningLeaf(item, fail);
    else checkCaCertificate(item, params.leafProfile, fail);
    if (!isLast) {
      const parent = items[item.index + 1];
      if (isSelfSigned(item)) fail(item, 'issuer', 'is self-signed; only the root (last) may be');
      if (!item.parts.issuer.equals(parent.parts.subject))
        fail(item, 'issuer', `issuer name is not the subject of certificate[${parent.index}]`);
      const aki = item.cert.getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId;
      const parentSki = parent.cert.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
      if (aki && parentSki && aki.toLowerCase() !== parentSki.toLowerCase()) {
        fail(item, 'authorityKeyIdentifier', `AKI does not match the SKI of certificate[${parent.index}]`);
      }
      if (!verifySignature(parent.parts.subjectPublicKeyInfo, item.algorithm, item.parts.tbs, item.parts.signature)) {
        fail(item, 'signature', `signature does not verify with the key of certificate[${parent.index}]`);
      }
    } else if (!isSelfSigned(item)) {
      fail(item, 'issuer', 'the last certificate must be a self-signed root');
    }
  }

  const info = (item: ChainItem): ChainCertificateInfo => ({
    der: item.der,
    serialHex: serialHexFromIntegerContent(item.parts.serialContent),
    subjectName: Buffer.from(item.parts.subject),
    notBefore: item.cert.notBefore,
    notAfter: item.cert.notAfter,
    sha256Fingerprint: crypto.createHash('sha256').update(item.der).digest('hex'),
  });
  return {
    certificates: items.map((item) => item.der),
    leaf: { ...info(leaf), subject: leafSubject },
    root: info(items[items.length - 1]),
  };
}

type Fail = (item: ChainItem, field: string, message: string, code?: PkiErrorCode) => never;

function toDerList(chain: ValidateChainParams['chain'], operation: string): Buffer[] {
  const inputs = typeof chain === 'string' ? [chain] : [...chain];
  const ders: Buffer[] = [];
  for (const input of inputs) {
    if (Buffer.isBuffer(input) && !input.subarray(0, 64).toString('latin1').includes('-----BEGIN')) {
      ders.push(input);
      continue;
    }
    for (const block of parsePemBlocks(input.toString(), operation)) {
      if (block.label !== 'CERTIFICATE') {
        throw new PkiError(
          'INVALID_CERTIFICATE',
          `${operation}: only CERTIFICATE PEM blocks are allowed, found '${block.label}'`,
          {
            field: 'chain',
          },
        );
      }
      ders.push(block.der);
    }
  }
  return ders;
}

function parseItem(der: Buffer, index: number, role: string, operation: string): ChainItem {
  let parts: CertificateParts;
  let cert: x509.X509Certificate;
  try {
    parts = readCertificateParts(der);
    cert = new x509.X509Certificate(der);
    // @peculiar/x509 decodes extension values lazily, on first use: decode them here, so a
    // malformed one (say an AKI whose OCTET STRING is empty) is refused as a bad certificate
    // rather than throwing from a later check.
    void cert.extensions;
  } catch (error) {
    throw new PkiError(
      'INVALID_CERTIFICATE',
      `${operation}: certificate[${index}] (${role}) is not a DER X.509 certificate (${(error as Error).message})`,
      {
        index,
        field: 'certificate',
      },
    );
  }
  const algorithm = describeSignatureAlgorithm(parts.signatureAlgorithm);
  if (!algorithm) {
    throw new PkiError(
      'INVALID_CERTIFICATE',
      `${operation}: certificate[${index}] (${role}) signature algorithm is not ECDSA/RSA with SHA-256/384/512 (SHA-1 and MD5 are refused)`,
      { index, field: 'signatureAlgorithm' },
    );
  }
  return { index, role, der, parts, cert, algorithm };
}

function checkCommon(item: ChainItem, now: Date, fail: Fail): void {
  const { cert, parts } = item;
  if (!parts.tbsSignatureAlgorithm.equals(parts.signatureAlgorithm))
    fail(item, 'signatureAlgorithm', 'TBS and outer signature algorithms differ');
  if (parts.version !== 2) fail(item, 'version', 'is not an X.509 v3 certificate');
  const serial = parts.serialContent;
  if (serial[0] & 0x80) fail(item, 'serialNumber', 'serial number is negative');
  if (serial.length > 20 && !(serial.length === 21 && serial[0] === 0))
    fail(item, 'serialNumber', 'serial number is longer than 20 octets');
  if (now < cert.notBefore || now > cert.notAfter) {
    fail(item, 'validity', `is not valid now (${cert.notBefore.toISOString()} – ${cert.notAfter.toISOString()})`);
  }
  if (!acceptableChainKey(parts.subjectPublicKeyInfo)) {
    fail(item, 'subjectPublicKeyInfo', 'key is not EC P-256/P-384/P-521 or RSA ≥ 2048 bits', 'UNSUPPORTED_ALGORITHM');
  }
  for (const ext of cert.extensions) {
    if (ext.critical && !UNDERSTOOD_CRITICAL.has(ext.type))
      fail(item, ext.type, `has an unsupported critical extension ${ext.type}`);
  }
  if (cert.getExtension(EXTENSION_OIDS.freshestCRL))
    fail(item, 'freshestCRL', 'has a FreshestCRL (delta CRL) pointer, which Notation does not support');
  checkRevocationUrls(item, fail, false);
}

function checkCodeSigningLeaf(item: ChainItem, fail: Fail): void {
  const { cert } = item;
  const keyUsage = cert.getExtension(x509.KeyUsagesExtension);
  if (!keyUsage || !keyUsage.critical) fail(item, 'keyUsage', 'keyUsage must be present and critical');
  if (keyUsage!.usages !== x509.KeyUsageFlags.digitalSignature)
    fail(item, 'keyUsage', 'keyUsage must be digitalSignature only');
  const eku = cert.getExtension(x509.ExtendedKeyUsageExtension);
  if (!eku) fail(item, 'extendedKeyUsage', 'extendedKeyUsage must be present with codeSigning');
  const usages = eku!.usages.map(String);
  if (usages.length !== 1 || usages[0] !== EKU_OIDS.codeSigning) {
    fail(item, 'extendedKeyUsage', `extendedKeyUsage must be codeSigning only (found ${usages.join(', ')})`);
  }
  const basicConstraints = cert.getExtension(x509.BasicConstraintsExtension);
  if (basicConstraints?.ca) fail(item, 'basicConstraints', 'a code-signing leaf must not be a CA');
  if (!cert.getExtension(x509.SubjectKeyIdentifierExtension))
    fail(item, 'subjectKeyIdentifier', 'subjectKeyIdentifier is missing');
  if (!cert.getExtension(x509.AuthorityKeyIdentifierExtension))
    fail(item, 'authorityKeyIdentifier', 'authorityKeyIdentifier is missing');
  if (cert.notAfter.getTime() - cert.notBefore.getTime() > MAX_LEAF_VALIDITY_DAYS * DAY_MS) {
    fail(item, 'validity', `validity exceeds ${MAX_LEAF_VALIDITY_DAYS} days`);
  }
  if (!keySpecOfPublicKey(item.parts.subjectPublicKeyInfo))
    fail(item, 'subjectPublicKeyInfo', 'key is not a Notation key spec', 'UNSUPPORTED_ALGORITHM');
  checkRevocationUrls(item, fail, true);
}

function checkCaCertificate(item: ChainItem, leafProfile: ChainLeafProfile, fail: Fail): void {
  const { cert } = item;
  const basicConstraints = cert.getExtension(x509.BasicConstraintsExtension);
  if (!basicConstraints?.ca || !basicConstraints.critical)
    fail(item, 'basicConstraints', 'must be a CA (basicConstraints critical, CA=TRUE)');
  const keyUsage = cert.getExtension(x509.KeyUsagesExtension);
  if (!keyUsage || !keyUsage.critical || !(keyUsage.usages & x509.KeyUsageFlags.keyCertSign)) {
    fail(item, 'keyUsage', 'keyUsage must be critical and include keyCertSign');
  }
  if (!cert.getExtension(x509.SubjectKeyIdentifierExtension))
    fail(item, 'subjectKeyIdentifier', 'subjectKeyIdentifier is missing');
  // A CA's EKU constrains everything below it; it must allow code signing (or be absent).
  const eku = cert.getExtension(x509.ExtendedKeyUsageExtension);
  if (
    eku &&
    !eku.usages.map(String).some((usage) => usage === EKU_OIDS.codeSigning || usage === EKU_OIDS.anyExtendedKeyUsage)
  ) {
    fail(item, 'extendedKeyUsage', 'a CA extendedKeyUsage must allow codeSigning');
  }
  // CA certificates below this one in the chain (our issuing CA counts: it will issue leaves).
  const casBelow = leafProfile === 'issuing-ca' ? item.index : item.index - 1;
  if (basicConstraints!.pathLength !== undefined && casBelow > basicConstraints!.pathLength) {
    fail(
      item,
      'basicConstraints',
      `pathLen ${basicConstraints!.pathLength} does not allow ${casBelow} CA certificate(s) below it`,
    );
  }
  if (item.index === 0 && leafProfile === 'issuing-ca') {
    // Our issuing CA profile: pathLen 0, signs certificates, CRLs and its own OCSP responses.
    const required = x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature;
    if ((keyUsage!.usages & required) !== required)
      fail(item, 'keyUsage', 'keyUsage must include keyCertSign, cRLSign and digitalSignature');
    if (basicConstraints!.pathLength !== 0) fail(item, 'basicConstraints', 'an issuing CA must have pathLen 0');
    if (!cert.getExtension(x509.AuthorityKeyIdentifierExtension))
      fail(item, 'authorityKeyIdentifier', 'authorityKeyIdentifier is missing');
  }
}

/** CRL DP and AIA URLs must be http:// (Notation refuses https); a leaf needs at least one revocation pointer. */
function checkRevocationUrls(item: ChainItem, fail: Fail, requireOne: boolean): void {
  const { cert } = item;
  const crlUrls: string[] = [];
  const crlDp = cert.getExtension(x509.CRLDistributionPointsExtension);
  for (const point of crlDp?.distributionPoints ?? []) {
    for (const name of point.distributionPoint?.fullName ?? []) {
      if (name.uniformResourceIdentifier) crlUrls.push(name.uniformResourceIdentifier);
    }
  }
  const aia = cert.getExtension(x509.AuthorityInfoAccessExtension);
  const ocspUrls = (aia?.ocsp ?? []).filter((name) => name.type === 'url').map((name) => name.value);
  for (const url of [...crlUrls, ...ocspUrls]) {
    if (!url.startsWith('http://'))
      fail(item, 'revocationUrls', `revocation URL ${url} is not http:// (Notation refuses https and other schemes)`);
  }
  if (requireOne && crlUrls.length === 0 && ocspUrls.length === 0) {
    fail(item, 'revocationUrls', 'has neither an OCSP URL nor a CRL distribution point');
  }
}

function isSelfSigned(item: ChainItem): boolean {
  return (
    item.parts.issuer.equals(item.parts.subject) &&
    verifySignature(item.parts.subjectPublicKeyInfo, item.algorithm, item.parts.tbs, item.parts.signature)
  );
}

function acceptableChainKey(spki: Buffer): boolean {
  try {
    const key = crypto.createPublicKey({ key: spki, format: 'der', type: 'spki' });
    const details = key.asymmetricKeyDetails ?? {};
    if (key.asymmetricKeyType === 'ec')
      return ['prime256v1', 'secp384r1', 'secp521r1'].includes(details.namedCurve ?? '');
    if (key.asymmetricKeyType === 'rsa') return (details.modulusLength ?? 0) >= 2048;
    return false;
  } catch {
    return false;
  }
}
