import * as crypto from 'node:crypto';
import { DigestSigner, HASH_LENGTH, HashAlgorithm, KEY_SPEC_INFO, KeySpec, nodeHashName } from '../../src/pki/key-spec';

/**
 * A DigestSigner backed by a Node crypto key, for tests and benchmarks (real signers come from
 * the HSM module). Node has no "sign this precomputed digest" call for ECDSA or RSA-PSS, so the
 * private-key step is done here from primitives: ECDSA computes k·G natively through ECDH and
 * finishes with BigInt arithmetic; RSA encodes EMSA-PSS / PKCS#1 v1.5 and uses the raw RSA
 * private operation.
 */
export interface NodeDigestSigner extends DigestSigner {
  readonly privateKey: crypto.KeyObject;
  readonly publicKey: crypto.KeyObject;
  /** PEM PKCS#8, for handing the key to the OpenSSL CLI in tests. */
  privateKeyPem(): string;
  /** How many signatures this signer has produced. */
  readonly signatureCount: number;
}

const CURVES = {
  'P-256': {
    openssl: 'prime256v1',
    n: BigInt('0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551'),
    bytes: 32,
  },
  'P-384': {
    openssl: 'secp384r1',
    n: BigInt('0xffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973'),
    bytes: 48,
  },
  'P-521': {
    openssl: 'secp521r1',
    n: BigInt('0x01' + 'ff'.repeat(32) + 'fa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e91386409'),
    bytes: 66,
  },
} as const;

const DIGEST_INFO_PREFIX: Record<HashAlgorithm, Buffer> = {
  'SHA-256': Buffer.from('3031300d060960864801650304020105000420', 'hex'),
  'SHA-384': Buffer.from('3041300d060960864801650304020205000430', 'hex'),
  'SHA-512': Buffer.from('3051300d060960864801650304020305000440', 'hex'),
};

export function createNodeSigner(spec: KeySpec): NodeDigestSigner {
  const info = KEY_SPEC_INFO[spec];
  const { privateKey } =
    info.kind === 'EC'
      ? crypto.generateKeyPairSync('ec', { namedCurve: info.curve! })
      : crypto.generateKeyPairSync('rsa', { modulusLength: info.modulusBits!, publicExponent: 0x10001 });
  return nodeSignerFromKey(spec, privateKey);
}

export function nodeSignerFromKey(spec: KeySpec, privateKey: crypto.KeyObject): NodeDigestSigner {
  const info = KEY_SPEC_INFO[spec];
  const publicKey = crypto.createPublicKey(privateKey);
  const publicKeySpki = publicKey.export({ type: 'spki', format: 'der' });
  let count = 0;
  const sign = info.kind === 'EC' ? ecdsaSigner(privateKey, info.curve!) : rsaSigner(privateKey, info.modulusBits!);
  return {
    spec,
    publicKeySpki,
    privateKey,
    publicKey,
    privateKeyPem: () => privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    get signatureCount() {
      return count;
    },
    async signDigest(digest: Buffer, hash: HashAlgorithm, rsaPadding: 'pss' | 'pkcs1' = 'pss'): Promise<Buffer> {
      if (digest.length !== HASH_LENGTH[hash]) {
        throw new Error(`signDigest: digest length ${digest.length} does not match ${hash}`);
      }
      count++;
      return sign(digest, hash, rsaPadding);
    },
  };
}

type RawSign = (digest: Buffer, hash: HashAlgorithm, rsaPadding: 'pss' | 'pkcs1') => Buffer;

function ecdsaSigner(privateKey: crypto.KeyObject, curve: keyof typeof CURVES): RawSign {
  const { openssl, n, bytes } = CURVES[curve];
  const jwk = privateKey.export({ format: 'jwk' });
  const d = toBigInt(Buffer.from(jwk.d!, 'base64url'));
  const nBits = n.toString(2).length;
  const ecdh = crypto.createECDH(openssl);
  return (digest) => {
    let e = toBigInt(digest);
    if (digest.length * 8 > nBits) e >>= BigInt(digest.length * 8 - nBits);
    for (;;) {
      const k = randomScalar(n, bytes);
      ecdh.setPrivateKey(toFixed(k, bytes));
      const point = ecdh.getPublicKey(); // 04 || X || Y, computed by OpenSSL
      const r = toBigInt(point.subarray(1, 1 + bytes)) % n;
      if (r === 0n) continue;
      const s = (modInverse(k, n) * ((e + r * d) % n)) % n;
      if (s === 0n) continue;
      return Buffer.concat([toFixed(r, bytes), toFixed(s, bytes)]);
    }
  };
}

function rsaSigner(privateKey: crypto.KeyObject, modulusBits: number): RawSign {
  return (digest, hash, rsaPadding) => {
    if (rsaPadding === 'pkcs1') {
      return crypto.privateEncrypt(
        { key: privateKey, padding: crypto.constants.RSA_PKCS1_PADDING },
        Buffer.concat([DIGEST_INFO_PREFIX[hash], digest]),
      );
    }
    const em = emsaPssEncode(digest, hash, modulusBits - 1);
    return crypto.privateEncrypt({ key: privateKey, padding: crypto.constants.RSA_NO_PADDING }, em);
  };
}

/** RFC 8017 §9.1.1 with salt length = hash length and MGF1 over the same hash. */
function emsaPssEncode(mHash: Buffer, hash: HashAlgorithm, emBits: number): Buffer {
  const hLen = HASH_LENGTH[hash];
  const emLen = Math.ceil(emBits / 8);
  const salt = crypto.randomBytes(hLen);
  const h = crypto.createHash(nodeHashName(hash)).update(Buffer.alloc(8)).update(mHash).update(salt).digest();
  const db = Buffer.alloc(emLen - hLen - 1);
  db[emLen - 2 * hLen - 2] = 0x01;
  salt.copy(db, emLen - 2 * hLen - 1);
  const mask = mgf1(h, db.length, hash);
  for (let i = 0; i < db.length; i++) db[i] ^= mask[i];
  db[0] &= 0xff >> (8 * emLen - emBits);
  return Buffer.concat([db, h, Buffer.from([0xbc])]);
}

function mgf1(seed: Buffer, length: number, hash: HashAlgorithm): Buffer {
  const out: Buffer[] = [];
  for (let counter = 0; out.length * HASH_LENGTH[hash] < length; counter++) {
    const c = Buffer.alloc(4);
    c.writeUInt32BE(counter);
    out.push(crypto.createHash(nodeHashName(hash)).update(seed).update(c).digest());
  }
  return Buffer.concat(out).subarray(0, length);
}

function randomScalar(n: bigint, bytes: number): bigint {
  for (;;) {
    const k = toBigInt(crypto.randomBytes(bytes + 8)) % n; // 64 extra bits make the modulo bias negligible
    if (k !== 0n) return k;
  }
}

function toBigInt(bytes: Buffer): bigint {
  return bytes.length === 0 ? 0n : BigInt('0x' + bytes.toString('hex'));
}

function toFixed(value: bigint, bytes: number): Buffer {
  return Buffer.from(value.toString(16).padStart(bytes * 2, '0'), 'hex');
}

function modInverse(a: bigint, m: bigint): bigint {
  let [oldR, r] = [a % m, m];
  let [oldS, s] = [1n, 0n];
  while (r !== 0n) {
    const q = oldR / r;
    [oldR, r] = [r, oldR - q * r];
    [oldS, s] = [s, oldS - q * s];
  }
  return ((oldS % m) + m) % m;
}
