/**
 * The pure PKI core: X.509 profiles, issuance over a DigestSigner, CSRs, external chain
 * validation, CRLs, OCSP responses, RFC 3161 timestamp requests and tokens, and the DER and PEM
 * codecs under them. Bytes and a signer in, bytes out: no Nest, database or PKCS#11 here, and no
 * import of the rest of Signet (.dependency-cruiser.cjs). It refuses with a PkiError of its own,
 * which Signet maps to its API codes (observability/pki-errors.ts); the key-spec vocabulary and the
 * DigestSigner contract it builds on are defined here (key-spec.ts) and used by hsm, ca and signing.
 */
export type { PkiErrorCode } from './pki-error';
export { PKI_ERROR_CODES, PkiError } from './pki-error';

export type { DigestSigner, HashAlgorithm, KeySpec, KeySpecInfo, SigningAlgorithm } from './key-spec';
export {
  HASH_ALGORITHMS,
  HASH_LENGTH,
  KEY_SPECS,
  KEY_SPEC_INFO,
  isHashAlgorithm,
  isKeySpec,
  nodeHashName,
} from './key-spec';

export type { CaEndpointUrls } from './ca-urls';
export { assertHttpUrl, caGenerationUrls } from './ca-urls';

export type {
  CaIssuer,
  IssueFromCaParams,
  IssueRootParams,
  IssuedCertificate,
  LoadCaIssuerParams,
} from './certificate-issuer';
export {
  DEFAULT_BACKDATE_SECONDS,
  MAX_LEAF_VALIDITY_DAYS,
  issueCodeSigningCertificate,
  issueIssuingCaCertificate,
  issueRootCaCertificate,
  issueTimestampingCertificate,
  issueTsaRootCertificate,
  loadCaIssuer,
} from './certificate-issuer';

export type { CertificateProfile } from './certificate-profiles';
export { EKU_OIDS, EXTENSION_OIDS } from './certificate-profiles';

export type {
  ChainCertificateInfo,
  ChainLeafProfile,
  ValidateChainParams,
  ValidatedChain,
} from './certificate-chain-validator';
export { validateCertificateChain } from './certificate-chain-validator';

export type { CreateCsrParams, CreatedCsr, CsrProfile, ParsedCsr } from './certification-request';
export { createCertificationRequest, parseCertificationRequest } from './certification-request';

export type { BuildCrlParams, BuiltCrl, CrlEntry } from './crl-builder';
export { MAX_CRL_BYTES, buildCrl } from './crl-builder';

export { keySpecOfPublicKey, samePublicKey, subjectKeyIdentifier, subjectPublicKeyBits } from './key-identifiers';

export type {
  CertIdHash,
  OcspCertId,
  OcspCertStatus,
  OcspErrorStatus,
  OcspResponder,
  OcspResponseOptions,
  OcspStatusLookup,
  ParsedOcspRequest,
} from './ocsp-responder';
export {
  DEFAULT_OCSP_VALIDITY_SECONDS,
  OcspMalformedRequestError,
  createOcspResponder,
  decodeOcspGetRequest,
  ocspErrorResponse,
  ocspResponseForError,
  parseOcspRequest,
  respondToOcspRequest,
} from './ocsp-responder';

export type { PemBlock, PemLabel } from './pem-codec';
export { derToPem, parsePemBlocks, pemOrDerToDer } from './pem-codec';

export type { RevocationReason } from './revocation-reasons';
export { REASON_CODES, REVOCATION_REASONS, isRevocationReason } from './revocation-reasons';

export {
  generateSerialNumber,
  normalizeSerialHex,
  serialHexFromIntegerContent,
  serialHexToIntegerContent,
} from './serial-number';

export type { RsaPadding, SignatureScheme } from './signature-algorithms';
export { ecdsaDerToRaw, ecdsaRawToDer, signTbs, signatureSchemeFor } from './signature-algorithms';

export type { CertificateSubject } from './subject-name';
export {
  checkSubjectName,
  encodeSubjectName,
  notationTrustedIdentity,
  subjectToDn,
  validateSubject,
} from './subject-name';

export { DigestSignerCrypto, digestSignerCrypto, signerCryptoKey } from './x509-signer-provider';

export {
  TimestampTokenBuilder,
  assertTimestampingCertificate,
  encodeRejectionResponse,
} from './timestamp-token.builder';
export { parseTimestampRequest } from './timestamp-request.parser';
export type { TimestampRequest } from './timestamp-request.parser';
export { TimestampRejection } from './timestamp-rejection';
export type { PkiFailureInfo } from './timestamp-rejection';

export * as derWriter from './der-writer';
export * as derReader from './der-reader';
