import type { SealingKeyInfo } from './key-store';

/** Seals small secrets (target credentials) under the signing token's sealing key. */
export interface Sealer {
  /** AES-256-GCM under the token's sealing key; `recordId` is bound as additional authenticated data. */
  seal(recordId: string, plaintext: Buffer): Promise<Buffer>;
  unseal(recordId: string, sealed: Buffer): Promise<Buffer>;
  /** New sealing key for new writes; older ones stay in the token to decrypt what they sealed. */
  rotateSealingKey(): Promise<SealingKeyInfo>;
}

/** Injection token for the Sealer part of the key store. */
export const SEALER = Symbol('SEALER');
