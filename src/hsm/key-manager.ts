import type { CreateKeyRequest, KeyInfo, KeyListing, KeyRole } from './key-store';

/**
 * Creates, finds and destroys key pairs in the tokens. Keys are generated inside the HSM and never
 * leave it; callers hold PKCS#11 URIs (RFC 7512), never object handles.
 */
export interface KeyManager {
  /** Generates a key pair in the token for `role`; refuses an id that already exists (ALREADY_EXISTS). */
  createKey(request: CreateKeyRequest): Promise<KeyInfo>;
  /** The key pair's public key as SubjectPublicKeyInfo DER. NOT_FOUND for an unknown reference. */
  getPublicKey(keyUri: string): Promise<Buffer>;
  /** Spec, label and public key of an existing key pair. */
  describeKey(keyUri: string): Promise<KeyInfo>;
  /** Destroys the private and public key objects. NOT_FOUND when neither exists. */
  destroyKey(keyUri: string): Promise<void>;
  /** Key pairs held by the configured tokens (both roles unless one is given). */
  listKeys(role?: KeyRole): Promise<KeyListing[]>;
}

/** Injection token for the KeyManager part of the key store. */
export const KEY_MANAGER = Symbol('KEY_MANAGER');
