/**
 * Key specs and the algorithm pairs Notation accepts (NOTARY.md). Part of the PKI core (which builds
 * X.509 over a DigestSigner); shared by hsm (which signs), ca and keys (which choose specs) and
 * signing (which validates requests).
 */
export const KEY_SPECS = ['EC-256', 'EC-384', 'EC-521', 'RSA-2048', 'RSA-3072', 'RSA-4096'] as const;
export type KeySpec = (typeof KEY_SPECS)[number];

export const HASH_ALGORITHMS = ['SHA-256', 'SHA-384', 'SHA-512'] as const;
export type HashAlgorithm = (typeof HASH_ALGORITHMS)[number];

export type SigningAlgorithm =
  | 'RSASSA-PSS-SHA-256'
  | 'RSASSA-PSS-SHA-384'
  | 'RSASSA-PSS-SHA-512'
  | 'ECDSA-SHA-256'
  | 'ECDSA-SHA-384'
  | 'ECDSA-SHA-512';

export interface KeySpecInfo {
  spec: KeySpec;
  kind: 'EC' | 'RSA';
  /** EC curve name (Node/OpenSSL naming) or RSA modulus bits. */
  curve?: 'P-256' | 'P-384' | 'P-521';
  modulusBits?: 2048 | 3072 | 4096;
  /** The one hash Notation pairs with this spec. */
  hash: HashAlgorithm;
  signingAlgorithm: SigningAlgorithm;
  jwsAlg: string;
  /** ECDSA raw r||s length in bytes. */
  rawSignatureLength?: number;
}

export const KEY_SPEC_INFO: Record<KeySpec, KeySpecInfo> = {
  'EC-256': {
    spec: 'EC-256',
    kind: 'EC',
    curve: 'P-256',
    hash: 'SHA-256',
    signingAlgorithm: 'ECDSA-SHA-256',
    jwsAlg: 'ES256',
    rawSignatureLength: 64,
  },
  'EC-384': {
    spec: 'EC-384',
    kind: 'EC',
    curve: 'P-384',
    hash: 'SHA-384',
    signingAlgorithm: 'ECDSA-SHA-384',
    jwsAlg: 'ES384',
    rawSignatureLength: 96,
  },
  'EC-521': {
    spec: 'EC-521',
    kind: 'EC',
    curve: 'P-521',
    hash: 'SHA-512',
    signingAlgorithm: 'ECDSA-SHA-512',
    jwsAlg: 'ES512',
    rawSignatureLength: 132,
  },
  'RSA-2048': {
    spec: 'RSA-2048',
    kind: 'RSA',
    modulusBits: 2048,
    hash: 'SHA-256',
    signingAlgorithm: 'RSASSA-PSS-SHA-256',
    jwsAlg: 'PS256',
  },
  'RSA-3072': {
    spec: 'RSA-3072',
    kind: 'RSA',
    modulusBits: 3072,
    hash: 'SHA-384',
    signingAlgorithm: 'RSASSA-PSS-SHA-384',
    jwsAlg: 'PS384',
  },
  'RSA-4096': {
    spec: 'RSA-4096',
    kind: 'RSA',
    modulusBits: 4096,
    hash: 'SHA-512',
    signingAlgorithm: 'RSASSA-PSS-SHA-512',
    jwsAlg: 'PS512',
  },
};

export const HASH_LENGTH: Record<HashAlgorithm, number> = { 'SHA-256': 32, 'SHA-384': 48, 'SHA-512': 64 };

/** Node's crypto name for a hash ("sha256"). */
export function nodeHashName(hash: HashAlgorithm): 'sha256' | 'sha384' | 'sha512' {
  return hash.replace('SHA-', 'sha') as 'sha256' | 'sha384' | 'sha512';
}

export function isKeySpec(value: unknown): value is KeySpec {
  return typeof value === 'string' && (KEY_SPECS as readonly string[]).includes(value);
}

export function isHashAlgorithm(value: unknown): value is HashAlgorithm {
  return typeof value === 'string' && (HASH_ALGORITHMS as readonly string[]).includes(value);
}

/**
 * What the CA (and anything else that produces signatures over structures it builds) receives
 * instead of a key: it hashes, asks for a signature over the digest, and never sees PKCS#11.
 */
export interface DigestSigner {
  readonly spec: KeySpec;
  /** SubjectPublicKeyInfo, DER. */
  readonly publicKeySpki: Buffer;
  /**
   * Signs a digest computed with `hash`. ECDSA returns raw r||s (IEEE P1363); RSA returns
   * RSASSA-PSS with salt = hash length unless `rsaPadding` is 'pkcs1'.
   */
  signDigest(digest: Buffer, hash: HashAlgorithm, rsaPadding?: 'pss' | 'pkcs1'): Promise<Buffer>;
}
