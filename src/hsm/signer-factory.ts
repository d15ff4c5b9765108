import type { DigestSigner } from '../pki/key-spec';
import type { SignOptions } from './key-store';

/** How a signer built by the factory hands its jobs to the signing threads. */
export interface SignerOptions {
  /**
   * For callers that arrive one per I/O callback (the HTTP sign route): on signing threads, a job
   * waits for the check phase of the event loop, so every request read in one poll shares one
   * message to a thread. Without it, jobs are sent in a microtask, which gathers callers that loop
   * on awaits. Signing on libuv's pool ignores it.
   */
  flushAtCheckPhase?: boolean;
}

/** Signs with any key of the store, named by URI, with the batching it was built with. */
export interface KeySigner {
  /**
   * Signs a digest computed with `options.hash`. ECDSA → raw r‖s (IEEE P1363); RSA → RSASSA-PSS
   * with salt = hash length, or PKCS#1 v1.5 when `rsaPadding: 'pkcs1'`.
   * The digest length is checked before the HSM is touched.
   */
  sign(keyUri: string, digest: Buffer, options: SignOptions): Promise<Buffer>;
}

/** Builds signers over the HSM's keys; what it builds knows nothing of PKCS#11. */
export interface SignerFactory {
  /** A signer by key URI: built once by a caller that signs with many keys (the HTTP sign route). */
  keySigner(options?: SignerOptions): KeySigner;
  /** What the CA receives: a signer for one key (its spec and public key read once, now). */
  getSigner(keyUri: string, options?: SignerOptions): Promise<DigestSigner>;
}

/** Injection token for the SignerFactory part of the key store. */
export const SIGNER_FACTORY = Symbol('SIGNER_FACTORY');
