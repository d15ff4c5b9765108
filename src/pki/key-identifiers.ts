import * as crypto from 'node:crypto';
import { KeySpec } from './key-spec';
import { DerParseError, readChildren, readSingle } from './der-reader';

/** The subjectPublicKey BIT STRING value (without the unused-bits octet) of a SubjectPublicKeyInfo. */
export function subjectPublicKeyBits(subjectPublicKeyInfo: Buffer): Buffer {
  const [algorithm, bits] = readChildren(readSingle(subjectPublicKeyInfo, 0x30));
  if (!algorithm || algorithm.tag !== 0x30 || !bits || bits.tag !== 0x03 || bits.content[0] !== 0) {
    throw new DerParseError('not a SubjectPublicKeyInfo');
  }
  return bits.content.subarray(1);
}

/**
 * Key identifier for SKI/AKI: SHA-1 over the subjectPublicKey bits, RFC 5280 §4.2.1.2 method 1.
 * It is an identifier, not a signature, and it is what OpenSSL and most CAs compute; the OCSP
 * responder key hash (RFC 6960 byKey) is defined the same way.
 */
export function subjectKeyIdentifier(subjectPublicKeyInfo: Buffer): Buffer {
  return crypto.createHash('sha1').update(subjectPublicKeyBits(subjectPublicKeyInfo)).digest();
}

const KEY_CACHE_LIMIT = 256;
const keyCache = new Map<string, crypto.KeyObject>();

/**
 * Node KeyObject for a DER SPKI, memoised: CA keys are parsed on every certificate, CRL and OCSP
 * signature check, and parsing dominates otherwise. Throws on an invalid SPKI.
 */
export function publicKeyObject(subjectPublicKeyInfo: Buffer): crypto.KeyObject {
  const cacheKey = subjectPublicKeyInfo.toString('base64');
  let key = keyCache.get(cacheKey);
  if (!key) {
    key = crypto.createPublicKey({ key: subjectPublicKeyInfo, format: 'der', type: 'spki' });
    if (keyCache.size >= KEY_CACHE_LIMIT) keyCache.delete(keyCache.keys().next().value!);
    keyCache.set(cacheKey, key);
  }
  return key;
}

const CURVE_SPECS: Record<string, KeySpec> = { prime256v1: 'EC-256', secp384r1: 'EC-384', secp521r1: 'EC-521' };
const RSA_SPECS: Record<number, KeySpec> = { 2048: 'RSA-2048', 3072: 'RSA-3072', 4096: 'RSA-4096' };

/** The key spec of a public key, or null when it is not one Notation accepts. */
export function keySpecOfPublicKey(subjectPublicKeyInfo: Buffer): KeySpec | null {
  let key: crypto.KeyObject;
  try {
    key = publicKeyObject(subjectPublicKeyInfo);
  } catch {
    return null;
  }
  const details = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'ec') return CURVE_SPECS[details.namedCurve ?? ''] ?? null;
  // Only rsaEncryption keys: an id-RSASSA-PSS SPKI ('rsa-pss') is not a Notation key spec.
  if (key.asymmetricKeyType === 'rsa') return RSA_SPECS[details.modulusLength ?? 0] ?? null;
  return null;
}

/** Same public key, whatever the SPKI encoding details (e.g. compressed vs uncompressed EC points). */
export function samePublicKey(a: Buffer, b: Buffer): boolean {
  if (a.equals(b)) return true;
  try {
    return publicKeyObject(a).equals(publicKeyObject(b));
  } catch {
    return false;
  }
}
