import { Inject, Injectable, Logger } from '@nestjs/common';
import { offeredKeySpec } from '../hsm/hsm-capabilities';
import { HSM_RECONCILER, HsmReconciler } from '../hsm/hsm-reconciler';
import { KEY_MANAGER, KeyManager } from '../hsm/key-manager';
import { SIGNER_FACTORY, SignerFactory } from '../hsm/signer-factory';
import type { DigestSigner, KeySpec } from '../pki/key-spec';

/** A CA key generation's new key pair, and the signer that certifies with it. */
export interface ProvisionedCaKey {
  uri: string;
  signer: DigestSigner;
}

/**
 * Where the CA gets its keys: a new generation's key pair in the HSM (CA role, labelled
 * `ca:<generation>`) with its signer, the signer and public key of an existing generation, the
 * destruction of a key whose CA was not stored, and which key spec the CA token offers. The rest
 * of ca/ never sees the HSM (.dependency-cruiser.cjs); this is the one place that knows which of
 * its parts (KeyManager, SignerFactory, the reconciler's health) a CA needs.
 * (Rotation's root and issuing rollovers adopt keys by planned CKA_ID, rotation/hsm-objects.ts.)
 */
@Injectable()
export class CaKeys {
  // The context these messages were logged under before key handling moved out of CaService.
  private readonly logger = new Logger('CaService');

  constructor(
    @Inject(KEY_MANAGER) private readonly keys: KeyManager,
    @Inject(SIGNER_FACTORY) private readonly signers: SignerFactory,
    @Inject(HSM_RECONCILER) private readonly hsm: HsmReconciler,
  ) {}

  /** `preferred` when the CA token can make it, else the spec it offers instead (RSA-3072 without EC). */
  offeredSpec(preferred: KeySpec): KeySpec {
    return offeredKeySpec(this.hsm.health(), preferred, 'ca');
  }

  /** A new key pair for `generationName`. Nothing is left behind when its signer cannot be had. */
  async provision(generationName: string, spec: KeySpec): Promise<ProvisionedCaKey> {
    const key = await this.keys.createKey({ spec, label: `ca:${generationName}`, role: 'ca' });
    try {
      return { uri: key.uri, signer: await this.signers.getSigner(key.uri) };
    } catch (error) {
      await this.discard(key.uri);
      throw error;
    }
  }

  signer(keyUri: string): Promise<DigestSigner> {
    return this.signers.getSigner(keyUri);
  }

  /** SubjectPublicKeyInfo DER of a generation's key. */
  publicKey(keyUri: string): Promise<Buffer> {
    return this.keys.getPublicKey(keyUri);
  }

  /**
   * Destroys the key of a CA that was not stored (nothing half-written). A failure is logged, not
   * thrown: the caller rethrows what made the creation fail, and `signet hsm reconcile` lists the
   * orphan.
   */
  async discard(keyUri: string): Promise<void> {
    await this.keys
      .destroyKey(keyUri)
      .catch((e) => this.logger.error(`could not destroy orphan CA key ${keyUri}: ${(e as Error).message}`));
  }
}
