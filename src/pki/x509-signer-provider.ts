// @peculiar/x509 resolves its algorithm providers through tsyringe, which needs the polyfill first.
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import { DigestSigner } from './key-spec';
import { SignatureScheme, signTbs } from './signature-algorithms';

/**
 * WebCrypto bridge for @peculiar/x509: its generators sign through `crypto.subtle.sign(alg, key,
 * tbs)`. A key made by `signerCryptoKey` carries a DigestSigner instead of key material; the
 * bridge hashes the TBS with Node crypto and asks the signer for a signature over the digest, so
 * the HSM (or any other signer) plugs in as a provider and never sees a structure. Everything
 * else is delegated to Node's WebCrypto.
 *
 * The key's algorithm is named by its OID with DER parameters: @peculiar/x509 then writes that
 * AlgorithmIdentifier verbatim (its own RSA-PSS encoding omits the NULL hash parameters that
 * OpenSSL and Go write), and treats the returned bytes as the final signature value, so
 * certificates, CSRs, CRLs and OCSP responses all go through the one `signTbs` path.
 */
const SIGNER = Symbol('signet.digestSigner');

interface SignerKeyInternals {
  signer: DigestSigner;
  scheme: SignatureScheme;
}

type SignerCryptoKey = webcrypto.CryptoKey & { readonly [SIGNER]: SignerKeyInternals };

/** The algorithm object that makes @peculiar/x509 emit the scheme's exact AlgorithmIdentifier. */
export function webCryptoAlgorithm(scheme: SignatureScheme): { name: string; parameters?: ArrayBuffer } {
  return scheme.parameters ? { name: scheme.oid, parameters: toArrayBuffer(scheme.parameters) } : { name: scheme.oid };
}

/** A CryptoKey-shaped handle whose private-key operations go to `signer`. */
export function signerCryptoKey(signer: DigestSigner, scheme: SignatureScheme): webcrypto.CryptoKey {
  if (signer.spec !== scheme.keySpec) {
    throw new Error(`signerCryptoKey: scheme for ${scheme.keySpec} used with a ${signer.spec} signer`);
  }
  const key = {
    type: 'private',
    extractable: false,
    usages: ['sign'],
    algorithm: webCryptoAlgorithm(scheme),
    [SIGNER]: { signer, scheme },
  };
  return Object.freeze(key) as unknown as SignerCryptoKey;
}

function signerInternals(key: unknown): SignerKeyInternals | undefined {
  return typeof key === 'object' && key !== null && SIGNER in key ? (key as SignerCryptoKey)[SIGNER] : undefined;
}

function algorithmName(algorithm: unknown): string {
  return typeof algorithm === 'string' ? algorithm : String((algorithm as { name?: unknown })?.name ?? '');
}

function toBuffer(data: ArrayBuffer | ArrayBufferView): Buffer {
  return ArrayBuffer.isView(data)
    ? Buffer.from(data.buffer, data.byteOffset, data.byteLength)
    : Buffer.from(data as ArrayBuffer);
}

function toArrayBuffer(buffer: Buffer): ArrayBuffer {
  return buffer.buffer.slice(buffer.byteOffset, buffer.byteOffset + buffer.byteLength) as ArrayBuffer;
}

const SUBTLE_METHODS = [
  'decrypt',
  'deriveBits',
  'deriveKey',
  'digest',
  'encrypt',
  'exportKey',
  'generateKey',
  'importKey',
  'sign',
  'unwrapKey',
  'verify',
  'wrapKey',
] as const;

function createSubtle(): webcrypto.SubtleCrypto {
  const node = webcrypto.subtle as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
  const subtle: Record<string, (...args: unknown[]) => Promise<unknown>> = {};
  for (const method of SUBTLE_METHODS) subtle[method] = node[method].bind(webcrypto.subtle);

  subtle.sign = async (algorithm: unknown, key: unknown, data: unknown): Promise<unknown> => {
    const internals = signerInternals(key);
    if (!internals) return node.sign.call(webcrypto.subtle, algorithm, key, data);
    const { signer, scheme } = internals;
    // The generator merges caller and key algorithms; refuse anything but the scheme we chose.
    if (algorithmName(algorithm) !== scheme.oid) {
      throw new Error(`DigestSignerCrypto.sign: algorithm ${algorithmName(algorithm)} does not match ${scheme.name}`);
    }
    return toArrayBuffer(await signTbs(signer, scheme, toBuffer(data as ArrayBufferView)));
  };

  subtle.exportKey = async (format: unknown, key: unknown): Promise<unknown> => {
    const internals = signerInternals(key);
    if (!internals) return node.exportKey.call(webcrypto.subtle, format, key);
    if (format !== 'spki') throw new Error(`DigestSignerCrypto.exportKey: only 'spki' is available for a signer key`);
    return toArrayBuffer(internals.signer.publicKeySpki);
  };

  return subtle as unknown as webcrypto.SubtleCrypto;
}

/** The `crypto` argument for @peculiar/x509 generators. Stateless; one instance serves all signers. */
export class DigestSignerCrypto {
  readonly subtle: webcrypto.SubtleCrypto = createSubtle();

  getRandomValues<T extends ArrayBufferView | null>(array: T): T {
    return webcrypto.getRandomValues(array as never) as T;
  }

  randomUUID(): string {
    return webcrypto.randomUUID();
  }
}

export const digestSignerCrypto = new DigestSignerCrypto();
