import type { DigestSigner } from '../pki/key-spec';
import type { HsmOptions } from './hsm-options';
import type {
  CreateKeyRequest,
  HsmCounters,
  HsmHealth,
  KeyInfo,
  KeyListing,
  KeyRole,
  KeyStore,
  ReconciliationReport,
  SealingKeyInfo,
  SignOptions,
} from './key-store';
import { Pkcs11KeyManager } from './pkcs11-key-manager';
import { Pkcs11Reconciler } from './pkcs11-reconciler';
import { Pkcs11Sealer } from './pkcs11-sealer';
import { Pkcs11SignerFactory } from './pkcs11-signer-factory';
import { type Pkcs11KeyStoreDeps, Pkcs11Tokens } from './pkcs11-tokens';
import type { SignWorkerPool } from './sign-workers';

export type { Pkcs11KeyStoreDeps } from './pkcs11-tokens';

/**
 * KeyStore over PKCS#11 (pkcs11js): keys generated and kept inside the token, signing through a
 * bounded session pool off the event loop — on signing threads (SignWorkerPool) or with the async
 * C_Sign on libuv's pool (SIGNET_HSM_SIGN_WORKERS) — and recovery from token faults (see SessionPool).
 *
 * A facade over four parts sharing one Pkcs11Tokens: `keys` (KeyManager), `signers`
 * (SignerFactory), `sealer` (Sealer) and `reconciler` (HsmReconciler). HsmModule provides each
 * part under its own token; this class opens and closes them together.
 */
export class Pkcs11KeyStore implements KeyStore {
  private readonly tokens: Pkcs11Tokens;
  readonly keys: Pkcs11KeyManager;
  readonly signers: Pkcs11SignerFactory;
  readonly sealer: Pkcs11Sealer;
  readonly reconciler: Pkcs11Reconciler;

  constructor(options: HsmOptions, deps: Pkcs11KeyStoreDeps = {}) {
    this.tokens = new Pkcs11Tokens(options, deps);
    this.keys = new Pkcs11KeyManager(this.tokens);
    this.signers = new Pkcs11SignerFactory(this.tokens, this.keys);
    this.sealer = new Pkcs11Sealer(this.tokens);
    this.reconciler = new Pkcs11Reconciler(this.tokens, this.keys);
  }

  /** Loads the module, opens and logs in the session pools. Throws (boot stops) when it cannot. */
  async open(): Promise<void> {
    if (this.tokens.opened) return;
    await this.tokens.open();
    this.reconciler.start();
  }

  /** Drains in-flight operations, closes this store's sessions, finalises the module if it was the last user. */
  async close(): Promise<void> {
    this.reconciler.stop();
    await this.tokens.close();
  }

  /** NestJS lifecycle hook. */
  onModuleDestroy(): Promise<void> {
    return this.close();
  }

  /** The signing threads, when signing runs on them (tests reach them for thread-level faults). */
  private get signWorkers(): SignWorkerPool | undefined {
    return this.tokens.signWorkers;
  }

  createKey(request: CreateKeyRequest): Promise<KeyInfo> {
    return this.keys.createKey(request);
  }

  getPublicKey(keyUri: string): Promise<Buffer> {
    return this.keys.getPublicKey(keyUri);
  }

  describeKey(keyUri: string): Promise<KeyInfo> {
    return this.keys.describeKey(keyUri);
  }

  destroyKey(keyUri: string): Promise<void> {
    return this.keys.destroyKey(keyUri);
  }

  listKeys(role?: KeyRole): Promise<KeyListing[]> {
    return this.keys.listKeys(role);
  }

  sign(keyUri: string, digest: Buffer, options: SignOptions): Promise<Buffer> {
    return this.signers.defaultSigner.sign(keyUri, digest, options);
  }

  getSigner(keyUri: string): Promise<DigestSigner> {
    return this.signers.getSigner(keyUri);
  }

  seal(recordId: string, plaintext: Buffer): Promise<Buffer> {
    return this.sealer.seal(recordId, plaintext);
  }

  unseal(recordId: string, sealed: Buffer): Promise<Buffer> {
    return this.sealer.unseal(recordId, sealed);
  }

  rotateSealingKey(): Promise<SealingKeyInfo> {
    return this.sealer.rotateSealingKey();
  }

  reconcile(referencedKeyUris: Iterable<string>): Promise<ReconciliationReport> {
    return this.reconciler.reconcile(referencedKeyUris);
  }

  health(): HsmHealth {
    return this.reconciler.health();
  }

  counters(): HsmCounters {
    return this.reconciler.counters();
  }
}
