import type { DigestSigner, HashAlgorithm, KeySpec } from '../pki/key-spec';
import type { HsmCapabilities } from './hsm-capabilities';
import type { HsmReconciler } from './hsm-reconciler';
import type { KeyManager } from './key-manager';
import type { Sealer } from './sealer';

/**
 * The key-store contract every other module uses, composed of the four small ones a caller may
 * depend on instead: KeyManager (key-manager.ts), SignerFactory (signer-factory.ts), Sealer
 * (sealer.ts) and HsmReconciler (hsm-reconciler.ts). Keys are generated inside the HSM and never
 * leave it; callers hold PKCS#11 URIs (RFC 7512), never object handles.
 */
export interface KeyStore extends KeyManager, Sealer, Pick<HsmReconciler, 'reconcile' | 'health' | 'counters'> {
  /** As KeySigner.sign of a signer built with default options (signer-factory.ts). */
  sign(keyUri: string, digest: Buffer, options: SignOptions): Promise<Buffer>;
  /** What the CA receives: a signer for one key that knows nothing of PKCS#11. */
  getSigner(keyUri: string): Promise<DigestSigner>;
}

/** Injection token for the KeyStore contract (the Pkcs11KeyStore class is also injectable by itself). */
export const KEY_STORE = Symbol('KEY_STORE');

/** Signing keys live on the signing token; CA keys may live on a separate token with its own PIN. */
export type KeyRole = 'signing' | 'ca';

export interface CreateKeyRequest {
  spec: KeySpec;
  /** CKA_LABEL of both objects, e.g. `release-v3`. */
  label: string;
  role?: KeyRole;
  /** CKA_ID (1..64 bytes); random 16 bytes when absent. */
  id?: Buffer;
}

export interface KeyInfo {
  uri: string;
  spec: KeySpec;
  /** As requested at creation; describeKey reports 'signing' for keys on a token that serves both roles. */
  role: KeyRole;
  tokenLabel: string;
  /** CKA_ID, lowercase hex. */
  id: string;
  label: string;
  publicKeySpki: Buffer;
}

export interface SignOptions {
  hash: HashAlgorithm;
  /** RSA only; ECDSA keys refuse it (UNSUPPORTED_ALGORITHM). */
  rsaPadding?: 'pss' | 'pkcs1';
}

export interface KeyListing {
  uri: string;
  /** The role of the token the pair is on; 'signing+ca' when one token serves both. */
  role: KeyRole | 'signing+ca';
  tokenLabel: string;
  id: string;
  label: string;
  /** Undefined when the objects do not describe one of our specs. */
  spec?: KeySpec;
  hasPrivateKey: boolean;
  hasPublicKey: boolean;
}

export interface SealingKeyInfo {
  /** CKA_ID, lowercase hex; travels in every sealed envelope. */
  keyId: string;
  label: string;
  generation: number;
}

export interface ReconciliationReport {
  /** Key pairs in a token that no referenced URI names (candidates for destruction after review). */
  orphanObjects: KeyListing[];
  /** Referenced URIs whose private key is not in its token. */
  missingObjects: string[];
}

export type HsmState = 'ready' | 'recovering' | 'down';

export interface TokenHealth {
  role: KeyRole | 'signing+ca';
  tokenLabel: string;
  state: HsmState | 'closed';
  sessions: number;
  configuredSessions: number;
  inFlight: number;
  waiting: number;
  lastError?: string;
  /** What the token can do, from its mechanism list at start (see hsm-capabilities.ts). */
  capabilities?: HsmCapabilities;
}

export interface HsmHealth {
  /** Worst state over the configured tokens. */
  state: HsmState;
  sessions: number;
  configuredSessions: number;
  inFlight: number;
  /** Requests queued for a session. */
  waiting: number;
  recoveries: number;
  lastError?: string;
  lastRecoveryAt?: string;
  tokens: TokenHealth[];
  /**
   * Signing worker threads, when signing runs on them rather than on libuv's pool: configured,
   * running, and how many of them run on their own instance of the module.
   */
  signThreads?: { configured: number; running: number; ownModule: number };
}

export interface HsmCounters {
  /** C_Sign calls that returned a signature. */
  signOperations: number;
  /** C_Sign calls made (successful or not): input rejected before the HSM never counts. */
  signAttempts: number;
  signFailures: number;
  keysGenerated: number;
  keysDestroyed: number;
  sealOperations: number;
  unsealOperations: number;
  /** Completed pool recoveries (relogin, reopen, re-initialisation). */
  recoveries: number;
  /** Operations re-run after a recovery. */
  operationRetries: number;
}
