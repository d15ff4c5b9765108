import type { HashAlgorithm } from './key-spec';

/** Object identifiers of RFC 3161 / RFC 5652 / RFC 5035 that the TSA reads or writes. */
export const TSA_OIDS = {
  /** RFC 5652 id-signedData. */
  signedData: '1.2.840.113549.1.7.2',
  /** RFC 3161 id-ct-TSTInfo: the eContentType of a timestamp token. */
  tstInfo: '1.2.840.113549.1.9.16.1.4',
  /** RFC 5652 signed attributes. */
  contentType: '1.2.840.113549.1.9.3',
  messageDigest: '1.2.840.113549.1.9.4',
  signingTime: '1.2.840.113549.1.9.5',
  /** RFC 5035 id-aa-signingCertificateV2 (ESSCertIDv2), required by Notation. */
  signingCertificateV2: '1.2.840.113549.1.9.16.2.47',
  sha256: '2.16.840.1.101.3.4.2.1',
  sha384: '2.16.840.1.101.3.4.2.2',
  sha512: '2.16.840.1.101.3.4.2.3',
} as const;

export const HASH_OIDS: Record<HashAlgorithm, string> = {
  'SHA-256': TSA_OIDS.sha256,
  'SHA-384': TSA_OIDS.sha384,
  'SHA-512': TSA_OIDS.sha512,
};

/** Message-imprint hash algorithms the TSA accepts; SHA-1, MD5, SHA-224 and SHA-3 are refused (badAlg). */
export const IMPRINT_HASH_BY_OID: ReadonlyMap<string, HashAlgorithm> = new Map(
  (Object.entries(HASH_OIDS) as Array<[HashAlgorithm, string]>).map(([hash, oid]) => [oid, hash]),
);
