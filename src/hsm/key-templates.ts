import * as pkcs11js from 'pkcs11js';
import { HASH_LENGTH, KEY_SPEC_INFO, type HashAlgorithm, type KeySpec } from '../pki/key-spec';
import type { Mechanism, Template } from './pkcs11-api';

/** DER-encoded named-curve OIDs for CKA_EC_PARAMS. */
export const EC_PARAMS: Record<'P-256' | 'P-384' | 'P-521', Buffer> = {
  'P-256': Buffer.from('06082a8648ce3d030107', 'hex'),
  'P-384': Buffer.from('06052b81040022', 'hex'),
  'P-521': Buffer.from('06052b81040023', 'hex'),
};

export const EC_COORDINATE_LENGTH: Record<'P-256' | 'P-384' | 'P-521', number> = {
  'P-256': 32,
  'P-384': 48,
  'P-521': 66,
};

const RSA_PUBLIC_EXPONENT = Buffer.from([0x01, 0x00, 0x01]);

/**
 * Templates for a key pair generated inside the token. The private key can never leave it:
 * sensitive, never extractable, not modifiable (so nobody flips those back), not copyable.
 * The public key has its own template: SoftHSM2 rejects CKA_SENSITIVE on public keys.
 */
export function keyPairTemplates(
  spec: KeySpec,
  id: Buffer,
  label: string,
  withCopyable = true,
): {
  mechanism: Mechanism;
  publicKey: Template;
  privateKey: Template;
} {
  const info = KEY_SPEC_INFO[spec];
  const ec = info.kind === 'EC';
  const keyType = ec ? pkcs11js.CKK_EC : pkcs11js.CKK_RSA;
  const publicKey: Template = [
    { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PUBLIC_KEY },
    { type: pkcs11js.CKA_KEY_TYPE, value: keyType },
    { type: pkcs11js.CKA_TOKEN, value: true },
    { type: pkcs11js.CKA_PRIVATE, value: false },
    { type: pkcs11js.CKA_MODIFIABLE, value: false },
    { type: pkcs11js.CKA_VERIFY, value: true },
    { type: pkcs11js.CKA_ENCRYPT, value: false },
    { type: pkcs11js.CKA_WRAP, value: false },
    { type: pkcs11js.CKA_ID, value: id },
    { type: pkcs11js.CKA_LABEL, value: label },
    ...(ec
      ? [{ type: pkcs11js.CKA_EC_PARAMS, value: EC_PARAMS[info.curve as 'P-256'] }]
      : [
          { type: pkcs11js.CKA_MODULUS_BITS, value: info.modulusBits as number },
          { type: pkcs11js.CKA_PUBLIC_EXPONENT, value: RSA_PUBLIC_EXPONENT },
        ]),
  ];
  const privateKey: Template = [
    { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY },
    { type: pkcs11js.CKA_KEY_TYPE, value: keyType },
    { type: pkcs11js.CKA_TOKEN, value: true },
    { type: pkcs11js.CKA_PRIVATE, value: true },
    { type: pkcs11js.CKA_SENSITIVE, value: true },
    { type: pkcs11js.CKA_EXTRACTABLE, value: false },
    { type: pkcs11js.CKA_MODIFIABLE, value: false },
    ...(withCopyable ? [{ type: pkcs11js.CKA_COPYABLE, value: false }] : []),
    { type: pkcs11js.CKA_SIGN, value: true },
    { type: pkcs11js.CKA_DECRYPT, value: false },
    { type: pkcs11js.CKA_UNWRAP, value: false },
    { type: pkcs11js.CKA_DERIVE, value: false },
    { type: pkcs11js.CKA_ID, value: id },
    { type: pkcs11js.CKA_LABEL, value: label },
  ];
  const mechanism = { mechanism: ec ? pkcs11js.CKM_EC_KEY_PAIR_GEN : pkcs11js.CKM_RSA_PKCS_KEY_PAIR_GEN };
  return { mechanism, publicKey, privateKey };
}

/** AES-256 key for sealing secrets at rest: encrypt/decrypt only, never leaves the token. */
export function sealingKeyTemplate(id: Buffer, label: string, withCopyable = true): Template {
  return [
    { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
    { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
    { type: pkcs11js.CKA_VALUE_LEN, value: 32 },
    { type: pkcs11js.CKA_TOKEN, value: true },
    { type: pkcs11js.CKA_PRIVATE, value: true },
    { type: pkcs11js.CKA_SENSITIVE, value: true },
    { type: pkcs11js.CKA_EXTRACTABLE, value: false },
    { type: pkcs11js.CKA_MODIFIABLE, value: false },
    ...(withCopyable ? [{ type: pkcs11js.CKA_COPYABLE, value: false }] : []),
    { type: pkcs11js.CKA_ENCRYPT, value: true },
    { type: pkcs11js.CKA_DECRYPT, value: true },
    { type: pkcs11js.CKA_WRAP, value: false },
    { type: pkcs11js.CKA_UNWRAP, value: false },
    { type: pkcs11js.CKA_SIGN, value: false },
    { type: pkcs11js.CKA_VERIFY, value: false },
    { type: pkcs11js.CKA_ID, value: id },
    { type: pkcs11js.CKA_LABEL, value: label },
  ];
}

const HASH_MECHANISM: Record<HashAlgorithm, { hashAlg: number; mgf: number }> = {
  'SHA-256': { hashAlg: pkcs11js.CKM_SHA256, mgf: pkcs11js.CKG_MGF1_SHA256 },
  'SHA-384': { hashAlg: pkcs11js.CKM_SHA384, mgf: pkcs11js.CKG_MGF1_SHA384 },
  'SHA-512': { hashAlg: pkcs11js.CKM_SHA512, mgf: pkcs11js.CKG_MGF1_SHA512 },
};

/** DER DigestInfo prefixes (RFC 8017 §9.2 note 1): CKM_RSA_PKCS signs DigestInfo, not the bare digest. */
const DIGEST_INFO_PREFIX: Record<HashAlgorithm, Buffer> = {
  'SHA-256': Buffer.from('3031300d060960864801650304020105000420', 'hex'),
  'SHA-384': Buffer.from('3041300d060960864801650304020205000430', 'hex'),
  'SHA-512': Buffer.from('3051300d060960864801650304020305000440', 'hex'),
};

export function digestInfo(hash: HashAlgorithm, digest: Buffer): Buffer {
  return Buffer.concat([DIGEST_INFO_PREFIX[hash], digest]);
}

// Mechanism objects are parsed by pkcs11js on every call; building them once saves allocations on the hot path.
const ECDSA_MECHANISM: Mechanism = { mechanism: pkcs11js.CKM_ECDSA };
const RSA_PKCS_MECHANISM: Mechanism = { mechanism: pkcs11js.CKM_RSA_PKCS };
function pssMechanism(hash: HashAlgorithm): Mechanism {
  const parameter: pkcs11js.RsaPSS = {
    type: pkcs11js.CK_PARAMS_RSA_PSS,
    ...HASH_MECHANISM[hash],
    saltLen: HASH_LENGTH[hash],
  };
  return { mechanism: pkcs11js.CKM_RSA_PKCS_PSS, parameter };
}
const PSS_MECHANISMS: Record<HashAlgorithm, Mechanism> = {
  'SHA-256': pssMechanism('SHA-256'),
  'SHA-384': pssMechanism('SHA-384'),
  'SHA-512': pssMechanism('SHA-512'),
};

/** AES-GCM with the 2.40 parameter layout (ulIvBits) that SoftHSM2 and current HSMs expect. */
export function aesGcmMechanism(iv: Buffer, aad: Buffer, tagBits: number): Mechanism {
  const parameter: pkcs11js.GcmParams = { type: pkcs11js.CK_PARAMS_GCM, iv, ivBits: iv.length * 8, aad, tagBits };
  return { mechanism: pkcs11js.CKM_AES_GCM, parameter };
}

export function ecdsaMechanism(): Mechanism {
  return ECDSA_MECHANISM;
}

/** RSASSA-PSS over a precomputed digest, salt length = hash length (what Notation verifies). */
export function rsaPssMechanism(hash: HashAlgorithm): Mechanism {
  return PSS_MECHANISMS[hash];
}

export function rsaPkcs1Mechanism(): Mechanism {
  return RSA_PKCS_MECHANISM;
}

/** Which spec a token object describes; undefined for keys Signet would not have generated. */
export function specFromAttributes(keyType: number, ecParams?: Buffer, modulusBits?: number): KeySpec | undefined {
  if (keyType === pkcs11js.CKK_EC && ecParams) {
    const curve = (Object.keys(EC_PARAMS) as Array<keyof typeof EC_PARAMS>).find((name) =>
      EC_PARAMS[name].equals(ecParams),
    );
    return curve && Object.values(KEY_SPEC_INFO).find((info) => info.curve === curve)?.spec;
  }
  if (keyType === pkcs11js.CKK_RSA && modulusBits !== undefined) {
    return Object.values(KEY_SPEC_INFO).find((i) => i.modulusBits === modulusBits)?.spec;
  }
  return undefined;
}
