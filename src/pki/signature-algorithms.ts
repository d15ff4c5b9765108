import * as crypto from 'node:crypto';
import { DigestSigner, HASH_LENGTH, HashAlgorithm, KEY_SPEC_INFO, KeySpec, nodeHashName } from './key-spec';
import { DerParseError, decodeOid, readChildren, readElement, readSingle } from './der-reader';
import { publicKeyObject } from './key-identifiers';
import { derNull, explicit, oid, sequence, smallInteger, tlv, unsignedIntegerContent } from './der-writer';

/** pss: RSASSA-PSS (salt = hash length, MGF1 with the same hash); pkcs1: RSASSA-PKCS1-v1_5. */
export type RsaPadding = 'pss' | 'pkcs1';

export const OID = {
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  ecdsaWithSha384: '1.2.840.10045.4.3.3',
  ecdsaWithSha512: '1.2.840.10045.4.3.4',
  sha256WithRsa: '1.2.840.113549.1.1.11',
  sha384WithRsa: '1.2.840.113549.1.1.12',
  sha512WithRsa: '1.2.840.113549.1.1.13',
  rsassaPss: '1.2.840.113549.1.1.10',
  mgf1: '1.2.840.113549.1.1.8',
  sha1: '1.3.14.3.2.26',
  sha256: '2.16.840.1.101.3.4.2.1',
  sha384: '2.16.840.1.101.3.4.2.2',
  sha512: '2.16.840.1.101.3.4.2.3',
} as const;

const HASH_OID: Record<HashAlgorithm, string> = { 'SHA-256': OID.sha256, 'SHA-384': OID.sha384, 'SHA-512': OID.sha512 };
const ECDSA_OID: Record<HashAlgorithm, string> = {
  'SHA-256': OID.ecdsaWithSha256,
  'SHA-384': OID.ecdsaWithSha384,
  'SHA-512': OID.ecdsaWithSha512,
};
const RSA_PKCS1_OID: Record<HashAlgorithm, string> = {
  'SHA-256': OID.sha256WithRsa,
  'SHA-384': OID.sha384WithRsa,
  'SHA-512': OID.sha512WithRsa,
};

/** How a CA key generation signs X.509 structures: algorithm identifier and signer call. */
export interface SignatureScheme {
  readonly keySpec: KeySpec;
  readonly kind: 'ecdsa' | 'rsa-pss' | 'rsa-pkcs1';
  readonly hash: HashAlgorithm;
  /** OpenSSL-style name, e.g. ecdsa-with-SHA384, rsassaPss-SHA384, sha384WithRSAEncryption. */
  readonly name: string;
  /** DER AlgorithmIdentifier placed in the TBS and next to the signature. */
  readonly algorithmIdentifier: Buffer;
  /** Its algorithm OID and DER parameters (absent for ECDSA). */
  readonly oid: string;
  readonly parameters?: Buffer;
  /** ECDSA field size in bytes (raw r‖s halves). */
  readonly ecFieldBytes?: number;
}

const schemeCache = new Map<string, SignatureScheme>();

/**
 * The signature algorithm for a signer's key spec: the hash is the one Notation pairs with the
 * key (NOTARY.md), so EC-256/384/521 sign with SHA-256/384/512 and RSA-2048/3072/4096 likewise.
 * SHA-1 is never produced.
 */
export function signatureSchemeFor(keySpec: KeySpec, rsaPadding: RsaPadding = 'pss'): SignatureScheme {
  const key = `${keySpec}/${rsaPadding}`;
  const cached = schemeCache.get(key);
  if (cached) return cached;
  const info = KEY_SPEC_INFO[keySpec];
  const hash = info.hash;
  const bits = hash.slice(4);
  let scheme: SignatureScheme;
  if (info.kind === 'EC') {
    scheme = {
      keySpec,
      kind: 'ecdsa',
      hash,
      name: `ecdsa-with-SHA${bits}`,
      algorithmIdentifier: sequence(oid(ECDSA_OID[hash])), // parameters absent (RFC 5758)
      oid: ECDSA_OID[hash],
      ecFieldBytes: info.rawSignatureLength! / 2,
    };
  } else if (rsaPadding === 'pkcs1') {
    scheme = {
      keySpec,
      kind: 'rsa-pkcs1',
      hash,
      name: `sha${bits}WithRSAEncryption`,
      algorithmIdentifier: sequence(oid(RSA_PKCS1_OID[hash]), derNull()),
      oid: RSA_PKCS1_OID[hash],
      parameters: derNull(),
    };
  } else {
    scheme = {
      keySpec,
      kind: 'rsa-pss',
      hash,
      name: `rsassaPss-SHA${bits}`,
      algorithmIdentifier: sequence(oid(OID.rsassaPss), pssParameters(hash)),
      oid: OID.rsassaPss,
      parameters: pssParameters(hash),
    };
  }
  schemeCache.set(key, scheme);
  return scheme;
}

/**
 * RSASSA-PSS-params (RFC 4055): hash and MGF1 hash identical, salt = hash length, trailer default;
 * hash identifiers with NULL parameters as in RFC 4055's module (and as OpenSSL and Go write them).
 */
function pssParameters(hash: HashAlgorithm): Buffer {
  const hashAlgorithm = sequence(oid(HASH_OID[hash]), derNull());
  return sequence(
    explicit(0, hashAlgorithm),
    explicit(1, sequence(oid(OID.mgf1), hashAlgorithm)),
    explicit(2, smallInteger(HASH_LENGTH[hash])),
  );
}

export function hashData(hash: HashAlgorithm, data: Buffer | readonly Buffer[]): Buffer {
  const hasher = crypto.createHash(nodeHashName(hash));
  if (Buffer.isBuffer(data)) hasher.update(data);
  else for (const part of data) hasher.update(part);
  return hasher.digest();
}

/**
 * Hashes `data` (the DER of a TBS structure, possibly in chunks), has the signer sign the digest
 * and returns the value for the X.509 signature BIT STRING (ECDSA converted to DER).
 */
export async function signTbs(
  signer: DigestSigner,
  scheme: SignatureScheme,
  data: Buffer | readonly Buffer[],
): Promise<Buffer> {
  if (signer.spec !== scheme.keySpec) {
    throw new Error(`signTbs: scheme for ${scheme.keySpec} used with a ${signer.spec} signer`);
  }
  const digest = hashData(scheme.hash, data);
  // Padding is an RSA notion; EC signers (the HSM's) refuse it.
  const padding = scheme.kind === 'ecdsa' ? undefined : scheme.kind === 'rsa-pkcs1' ? 'pkcs1' : 'pss';
  const signature = await signer.signDigest(digest, scheme.hash, padding);
  return scheme.kind === 'ecdsa' ? ecdsaRawToDer(signature, scheme.ecFieldBytes!) : signature;
}

/** IEEE P1363 r‖s → ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }. */
export function ecdsaRawToDer(raw: Buffer, fieldBytes = raw.length / 2): Buffer {
  if (raw.length !== fieldBytes * 2) {
    throw new Error(`ecdsaRawToDer: expected ${fieldBytes * 2} bytes of r‖s, got ${raw.length}`);
  }
  const r = unsignedIntegerContent(raw.subarray(0, fieldBytes));
  const s = unsignedIntegerContent(raw.subarray(fieldBytes));
  return sequence(tlv(0x02, r), tlv(0x02, s));
}

/** ECDSA-Sig-Value → fixed-size r‖s. */
export function ecdsaDerToRaw(der: Buffer, fieldBytes: number): Buffer {
  const [r, s, ...rest] = readChildren(readSingle(der, 0x30));
  if (!r || !s || rest.length || r.tag !== 0x02 || s.tag !== 0x02) throw new DerParseError('not an ECDSA-Sig-Value');
  const fixed = (value: Buffer): Buffer => {
    const trimmed = value[0] === 0 ? value.subarray(1) : value;
    if (trimmed.length > fieldBytes) throw new DerParseError('ECDSA integer too long');
    return Buffer.concat([Buffer.alloc(fieldBytes - trimmed.length), trimmed]);
  };
  return Buffer.concat([fixed(r.content), fixed(s.content)]);
}

/** A signature algorithm found in a certificate, CSR or CRL that we accept (SHA-2 only). */
export interface AcceptedSignatureAlgorithm {
  kind: 'ecdsa' | 'rsa-pss' | 'rsa-pkcs1';
  hash: HashAlgorithm;
  name: string;
  saltLength?: number;
}

const OID_TO_ALGORITHM: Record<string, AcceptedSignatureAlgorithm> = {
  [OID.ecdsaWithSha256]: { kind: 'ecdsa', hash: 'SHA-256', name: 'ecdsa-with-SHA256' },
  [OID.ecdsaWithSha384]: { kind: 'ecdsa', hash: 'SHA-384', name: 'ecdsa-with-SHA384' },
  [OID.ecdsaWithSha512]: { kind: 'ecdsa', hash: 'SHA-512', name: 'ecdsa-with-SHA512' },
  [OID.sha256WithRsa]: { kind: 'rsa-pkcs1', hash: 'SHA-256', name: 'sha256WithRSAEncryption' },
  [OID.sha384WithRsa]: { kind: 'rsa-pkcs1', hash: 'SHA-384', name: 'sha384WithRSAEncryption' },
  [OID.sha512WithRsa]: { kind: 'rsa-pkcs1', hash: 'SHA-512', name: 'sha512WithRSAEncryption' },
};
const HASH_BY_OID: Record<string, HashAlgorithm> = {
  [OID.sha256]: 'SHA-256',
  [OID.sha384]: 'SHA-384',
  [OID.sha512]: 'SHA-512',
};

/**
 * Identifies an AlgorithmIdentifier, or returns null for anything we refuse (SHA-1, MD5, PSS with
 * mismatched MGF1 hash or salt ≠ hash length — the shapes Go's crypto/x509, which Notation uses,
 * accepts).
 */
export function describeSignatureAlgorithm(algorithmIdentifier: Buffer): AcceptedSignatureAlgorithm | null {
  try {
    const [algorithm, params] = readChildren(readSingle(algorithmIdentifier, 0x30));
    if (!algorithm || algorithm.tag !== 0x06) return null;
    const id = decodeOid(algorithm.content);
    if (id !== OID.rsassaPss) return OID_TO_ALGORITHM[id] ?? null;
    if (!params || params.tag !== 0x30) return null;
    let hash: HashAlgorithm | undefined;
    let mgfHash: HashAlgorithm | undefined;
    let saltLength = 20;
    for (const field of readChildren(params)) {
      const inner = readElement(field.content);
      if (field.tag === 0xa0) hash = HASH_BY_OID[decodeOid(readChildren(inner)[0].content)];
      else if (field.tag === 0xa1) {
        const [mgf, mgfParams] = readChildren(inner);
        if (decodeOid(mgf.content) !== OID.mgf1 || !mgfParams) return null;
        mgfHash = HASH_BY_OID[decodeOid(readChildren(mgfParams)[0].content)];
      } else if (field.tag === 0xa2) saltLength = Number(BigInt('0x' + (inner.content.toString('hex') || '0')));
      else if (field.tag === 0xa3) {
        if (inner.content.length !== 1 || inner.content[0] !== 1) return null;
      } else return null;
    }
    if (!hash || mgfHash !== hash || saltLength !== HASH_LENGTH[hash]) return null;
    return { kind: 'rsa-pss', hash, name: `rsassaPss-SHA${hash.slice(4)}`, saltLength };
  } catch {
    return null;
  }
}

/** How to verify what `scheme` signs, without parsing its AlgorithmIdentifier again. */
export function verificationAlgorithm(scheme: SignatureScheme): AcceptedSignatureAlgorithm {
  return scheme.kind === 'rsa-pss'
    ? { kind: scheme.kind, hash: scheme.hash, name: scheme.name, saltLength: HASH_LENGTH[scheme.hash] }
    : { kind: scheme.kind, hash: scheme.hash, name: scheme.name };
}

/** Node's verify key input for an accepted algorithm (ECDSA value in DER, PSS salt as encoded). */
function verifyKeyInput(key: crypto.KeyObject, algorithm: AcceptedSignatureAlgorithm): crypto.VerifyKeyObjectInput {
  switch (algorithm.kind) {
    case 'ecdsa':
      return { key, dsaEncoding: 'der' };
    case 'rsa-pkcs1':
      return { key, padding: crypto.constants.RSA_PKCS1_PADDING };
    case 'rsa-pss':
      return { key, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: algorithm.saltLength };
  }
}

/** Verifies an X.509-style signature (ECDSA value in DER) with Node crypto. */
export function verifySignature(
  subjectPublicKeyInfo: Buffer,
  algorithm: AcceptedSignatureAlgorithm,
  data: Buffer,
  signature: Buffer,
): boolean {
  try {
    return crypto.verify(
      nodeHashName(algorithm.hash),
      data,
      verifyKeyInput(publicKeyObject(subjectPublicKeyInfo), algorithm),
      signature,
    );
  } catch {
    return false;
  }
}

/**
 * `verifySignature` with a KeyObject, on the libuv thread pool: for per-request paths, where the
 * event loop should not wait while OpenSSL verifies (about 0.6 ms for a P-384 signature on the
 * 2-core benchmark machine, more than assembling the certificate it covers).
 */
export function verifySignatureInBackground(
  publicKey: crypto.KeyObject,
  algorithm: AcceptedSignatureAlgorithm,
  data: Buffer,
  signature: Buffer,
): Promise<boolean> {
  return new Promise((resolve) => {
    try {
      crypto.verify(
        nodeHashName(algorithm.hash),
        data,
        verifyKeyInput(publicKey, algorithm),
        signature,
        (error, valid) => resolve(!error && valid),
      );
    } catch {
      resolve(false);
    }
  });
}
