import 'reflect-metadata';
import { KeyObject } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { PkiError } from './pki-error';
import { DigestSigner } from './key-spec';
import { CaEndpointUrls, assertEndpointUrls } from './ca-urls';
import { CertificateProfile, PROFILES_REQUIRING_URLS, profileExtensions } from './certificate-profiles';
import { readCertificateParts } from './der-reader';
import { bitString, explicit, sequence, tlvOf, unsignedInteger, x509Time } from './der-writer';
import { keySpecOfPublicKey, publicKeyObject, samePublicKey, subjectKeyIdentifier } from './key-identifiers';
import { derToPem, pemOrDerToDer } from './pem-codec';
import { generateSerialNumber } from './serial-number';
import {
  RsaPadding,
  SignatureScheme,
  signTbs,
  signatureSchemeFor,
  verificationAlgorithm,
  verifySignatureInBackground,
} from './signature-algorithms';
import { CertificateSubject, encodeSubjectName, subjectToDn, validateSubject } from './subject-name';

const DAY_MS = 86_400_000;
export const DEFAULT_BACKDATE_SECONDS = 300;
/** NOTARY.md: leaf validity ≤ 460 days (also applied to TSA signing certificates). */
export const MAX_LEAF_VALIDITY_DAYS = 460;
const MAX_CA_VALIDITY_DAYS = 36_500;
const MAX_BACKDATE_SECONDS = 86_400;

/**
 * One CA key generation ready to issue: its certificate, the signer for its key and the endpoints
 * its children point at. Build it with `loadCaIssuer` (cheap; callers may cache it per generation).
 */
export interface CaIssuer {
  readonly certificate: Buffer;
  /** The exact DER of the CA's subject, copied into children's issuer field. */
  readonly subjectName: Buffer;
  readonly publicKeySpki: Buffer;
  /** The same key as a Node KeyObject, imported once: every issued signature is checked against it. */
  readonly publicKey: KeyObject;
  /** The CA's SKI (from its certificate), used as children's AKI and the CRL's AKI. */
  readonly keyIdentifier: Buffer;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** basicConstraints pathLenConstraint; undefined = unlimited. */
  readonly pathLength?: number;
  readonly signer: DigestSigner;
  /** Signature algorithm for certificates and CRLs. */
  readonly scheme: SignatureScheme;
  readonly urls?: CaEndpointUrls;
}

export interface LoadCaIssuerParams {
  /** DER or PEM certificate of the CA key generation. */
  certificate: Buffer | string;
  signer: DigestSigner;
  /** This generation's endpoints, written into what it issues (required to issue issuing CAs and leaves). */
  urls?: CaEndpointUrls;
  /** RSA CAs only: 'pss' (default) or 'pkcs1' for certificates and CRLs. */
  rsaPadding?: RsaPadding;
}

export function loadCaIssuer(params: LoadCaIssuerParams): CaIssuer {
  const operation = 'loadCaIssuer';
  const der = pemOrDerToDer(params.certificate, 'CERTIFICATE', operation);
  let parts;
  let certificate: x509.X509Certificate;
  try {
    parts = readCertificateParts(der);
    certificate = new x509.X509Certificate(der);
  } catch (error) {
    throw new PkiError(
      'INVALID_CERTIFICATE',
      `${operation}: 'certificate' is not a DER X.509 certificate (${(error as Error).message})`,
      {
        field: 'certificate',
      },
    );
  }
  const basicConstraints = certificate.getExtension(x509.BasicConstraintsExtension);
  const keyUsage = certificate.getExtension(x509.KeyUsagesExtension);
  if (!basicConstraints?.ca || !keyUsage || !(keyUsage.usages & x509.KeyUsageFlags.keyCertSign)) {
    throw new PkiError(
      'INVALID_CERTIFICATE',
      `${operation}: 'certificate' is not a CA certificate (basicConstraints CA and keyCertSign)`,
      {
        field: 'certificate',
      },
    );
  }
  if (!samePublicKey(parts.subjectPublicKeyInfo, params.signer.publicKeySpki)) {
    throw new PkiError('VALIDATION_ERROR', `${operation}: 'signer' public key does not match the CA certificate`, {
      field: 'signer',
    });
  }
  if (keySpecOfPublicKey(parts.subjectPublicKeyInfo) !== params.signer.spec) {
    throw new PkiError(
      'VALIDATION_ERROR',
      `${operation}: 'signer' key spec ${params.signer.spec} does not match the CA key`,
      {
        field: 'signer',
      },
    );
  }
  if (params.urls) assertEndpointUrls(params.urls, operation);
  const ski = certificate.getExtension(x509.SubjectKeyIdentifierExtension);
  return {
    certificate: der,
    subjectName: Buffer.from(parts.subject),
    publicKeySpki: Buffer.from(parts.subjectPublicKeyInfo),
    publicKey: publicKeyObject(parts.subjectPublicKeyInfo),
    keyIdentifier: ski ? Buffer.from(ski.keyId, 'hex') : subjectKeyIdentifier(parts.subjectPublicKeyInfo),
    notBefore: certificate.notBefore,
    notAfter: certificate.notAfter,
    pathLength: basicConstraints.pathLength,
    signer: params.signer,
    scheme: signatureSchemeFor(params.signer.spec, params.rsaPadding ?? 'pss'),
    urls: params.urls,
  };
}

export interface IssuedCertificate {
  der: Buffer;
  pem: string;
  /** Canonical serial (lower-case hex, 32 digits). */
  serialHex: string;
  notBefore: Date;
  notAfter: Date;
  /** "C=.., ST=.., O=.., CN=.." */
  subjectDn: string;
  profile: CertificateProfile;
}

interface ValidityOptions {
  /** Lifetime in days, counted from the backdated notBefore. */
  validityDays: number;
  /** Defaults to the current time. */
  now?: Date;
  /** notBefore = now − backdate, for clock skew (default 300 s). */
  backdateSeconds?: number;
}

export interface IssueRootParams extends ValidityOptions {
  signer: DigestSigner;
  subject: CertificateSubject;
  rsaPadding?: RsaPadding;
}

export interface IssueFromCaParams extends ValidityOptions {
  issuer: CaIssuer;
  subject: CertificateSubject;
  /** SubjectPublicKeyInfo (DER) of the key being certified. */
  publicKeySpki: Buffer;
}

/** Self-signed root CA: CA=TRUE (no pathLen), keyCertSign+cRLSign+digitalSignature, SKI, no EKU. */
export function issueRootCaCertificate(params: IssueRootParams): Promise<IssuedCertificate> {
  return issueSelfSigned('root-ca', params, 'issueRootCaCertificate');
}

/** Self-signed TSA root: like a root CA, with pathLen 0 (it issues TSA signing certificates directly). */
export function issueTsaRootCertificate(params: IssueRootParams): Promise<IssuedCertificate> {
  return issueSelfSigned('tsa-root', params, 'issueTsaRootCertificate');
}

/** Issuing CA under `issuer` (a root): pathLen 0, CRL DP and AIA at the root generation's endpoints. */
export function issueIssuingCaCertificate(params: IssueFromCaParams): Promise<IssuedCertificate> {
  return issueFromCa('issuing-ca', params, 'issueIssuingCaCertificate');
}

/** Code-signing leaf: KU digitalSignature (critical), EKU codeSigning, CRL DP + AIA of the issuing generation. */
export function issueCodeSigningCertificate(params: IssueFromCaParams): Promise<IssuedCertificate> {
  return issueFromCa('code-signing', params, 'issueCodeSigningCertificate');
}

/** TSA signing certificate: KU digitalSignature, EKU timeStamping only (critical); URLs only if the issuer has them. */
export function issueTimestampingCertificate(params: IssueFromCaParams): Promise<IssuedCertificate> {
  return issueFromCa('timestamping', params, 'issueTimestampingCertificate');
}

async function issueSelfSigned(
  profile: CertificateProfile,
  params: IssueRootParams,
  operation: string,
): Promise<IssuedCertificate> {
  const subject = validateSubject(params.subject, operation);
  const subjectName = encodeSubjectName(subject);
  const spki = params.signer.publicKeySpki;
  assertSupportedKey(spki, operation, 'signer');
  const { notBefore, notAfter } = validityWindow(params, MAX_CA_VALIDITY_DAYS, operation);
  const keyId = subjectKeyIdentifier(spki);
  return sign({
    profile,
    operation,
    subject,
    subjectName,
    issuerName: subjectName,
    publicKeySpki: spki,
    notBefore,
    notAfter,
    extensions: profileExtensions(profile, { subjectKeyIdentifier: keyId }),
    signer: params.signer,
    scheme: signatureSchemeFor(params.signer.spec, params.rsaPadding ?? 'pss'),
    issuerPublicKey: publicKeyObject(spki),
  });
}

async function issueFromCa(
  profile: CertificateProfile,
  params: IssueFromCaParams,
  operation: string,
): Promise<IssuedCertificate> {
  const { issuer } = params;
  const subject = validateSubject(params.subject, operation);
  assertSupportedKey(params.publicKeySpki, operation, 'publicKeySpki');
  if (samePublicKey(params.publicKeySpki, issuer.publicKeySpki)) {
    throw new PkiError('VALIDATION_ERROR', `${operation}: 'publicKeySpki' is the issuer's own key`, {
      field: 'publicKeySpki',
    });
  }
  if (PROFILES_REQUIRING_URLS.includes(profile) && !issuer.urls) {
    throw new PkiError('VALIDATION_ERROR', `${operation}: 'issuer.urls' is required (CRL DP and AIA)`, {
      field: 'issuer.urls',
    });
  }
  if (profile === 'issuing-ca' && issuer.pathLength !== undefined && issuer.pathLength < 1) {
    throw new PkiError(
      'VALIDATION_ERROR',
      `${operation}: issuer pathLen ${issuer.pathLength} does not allow a subordinate CA`,
      {
        field: 'issuer',
      },
    );
  }
  const maxDays = profile === 'issuing-ca' ? MAX_CA_VALIDITY_DAYS : MAX_LEAF_VALIDITY_DAYS;
  const { notBefore, notAfter } = validityWindow(params, maxDays, operation);
  const now = params.now ?? new Date();
  if (now < issuer.notBefore || now > issuer.notAfter) {
    throw new PkiError('ISSUER_NOT_VALID_NOW', `${operation}: the issuer certificate is not valid now`, {
      field: 'issuer',
    });
  }
  // A child outliving its issuer breaks every untimestamped signature when the issuer expires.
  if (notAfter > issuer.notAfter) {
    throw new PkiError(
      'VALIDATION_ERROR',
      `${operation}: 'validityDays' ends after the issuer expires (${issuer.notAfter.toISOString()})`,
      { field: 'validityDays', issuerNotAfter: issuer.notAfter.toISOString() },
    );
  }
  return sign({
    profile,
    operation,
    subject,
    subjectName: encodeSubjectName(subject),
    issuerName: issuer.subjectName,
    publicKeySpki: params.publicKeySpki,
    notBefore,
    notAfter,
    extensions: profileExtensions(profile, {
      subjectKeyIdentifier: subjectKeyIdentifier(params.publicKeySpki),
      authorityKeyIdentifier: issuer.keyIdentifier,
      issuerUrls: issuer.urls,
    }),
    signer: issuer.signer,
    scheme: issuer.scheme,
    issuerPublicKey: issuer.publicKey,
  });
}

interface SignRequest {
  profile: CertificateProfile;
  operation: string;
  subject: CertificateSubject;
  /** Exact DER of the subject Name. */
  subjectName: Buffer;
  /** Exact DER of the issuer's subject Name, copied byte for byte. */
  issuerName: Buffer;
  publicKeySpki: Buffer;
  notBefore: Date;
  notAfter: Date;
  /** DER `Extension` elements, in certificate order (profileExtensions). */
  extensions: Buffer[];
  signer: DigestSigner;
  scheme: SignatureScheme;
  issuerPublicKey: KeyObject;
}

/** version [0] EXPLICIT Version DEFAULT v1: always v3 (extensions). */
const VERSION_V3 = explicit(0, unsignedInteger(Buffer.from([2])));

/**
 * Assembles the TBSCertificate directly in DER (RFC 5280 §4.1): every byte is ours, names and the
 * SubjectPublicKeyInfo are copied verbatim, and no ASN.1 object model is built per certificate.
 * The signer signs the TBS; a signature that does not verify with the issuer key (a faulty signer)
 * never gets a certificate out.
 */
async function sign(request: SignRequest): Promise<IssuedCertificate> {
  const serialHex = generateSerialNumber();
  const { scheme } = request;
  const tbs = sequence(
    VERSION_V3,
    unsignedInteger(Buffer.from(serialHex, 'hex')),
    scheme.algorithmIdentifier,
    request.issuerName,
    sequence(x509Time(request.notBefore), x509Time(request.notAfter)),
    request.subjectName,
    request.publicKeySpki,
    explicit(3, tlvOf(0x30, request.extensions)),
  );
  const signature = await signTbs(request.signer, scheme, tbs);
  if (!(await verifySignatureInBackground(request.issuerPublicKey, verificationAlgorithm(scheme), tbs, signature))) {
    throw new PkiError(
      'INTERNAL',
      `${request.operation}: issued certificate signature does not verify with the issuer key`,
      { field: 'signature' },
    );
  }
  const der = sequence(tbs, scheme.algorithmIdentifier, bitString(signature));
  return {
    der,
    pem: derToPem(der, 'CERTIFICATE'),
    serialHex,
    notBefore: request.notBefore,
    notAfter: request.notAfter,
    subjectDn: subjectToDn(request.subject),
    profile: request.profile,
  };
}

function assertSupportedKey(spki: Buffer, operation: string, field: string): void {
  if (!keySpecOfPublicKey(spki)) {
    throw new PkiError(
      'UNSUPPORTED_ALGORITHM',
      `${operation}: '${field}' is not an EC P-256/P-384/P-521 or RSA 2048/3072/4096 key`,
      {
        field,
      },
    );
  }
}

function validityWindow(
  options: ValidityOptions,
  maxDays: number,
  operation: string,
): { notBefore: Date; notAfter: Date } {
  const { validityDays } = options;
  if (
    typeof validityDays !== 'number' ||
    !Number.isFinite(validityDays) ||
    validityDays <= 0 ||
    validityDays > maxDays
  ) {
    throw new PkiError('VALIDATION_ERROR', `${operation}: 'validityDays' must be > 0 and ≤ ${maxDays}`, {
      field: 'validityDays',
      max: maxDays,
    });
  }
  const backdate = options.backdateSeconds ?? DEFAULT_BACKDATE_SECONDS;
  if (!Number.isInteger(backdate) || backdate < 0 || backdate > MAX_BACKDATE_SECONDS) {
    throw new PkiError(
      'VALIDATION_ERROR',
      `${operation}: 'backdateSeconds' must be an integer 0..${MAX_BACKDATE_SECONDS}`,
      {
        field: 'backdateSeconds',
      },
    );
  }
  // Whole seconds: X.509 times carry no fractions, and the returned dates must match the certificate.
  const now = Math.floor((options.now ?? new Date()).getTime() / 1000) * 1000;
  const notBefore = new Date(now - backdate * 1000);
  const notAfter = new Date(notBefore.getTime() + Math.floor((validityDays * DAY_MS) / 1000) * 1000);
  return { notBefore, notAfter };
}
