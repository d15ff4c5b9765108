import { Logger, Provider } from '@nestjs/common';
import { createHash } from 'node:crypto';
import { DomainError, ErrorCode } from '../common/errors';
import { offeredKeySpec } from '../hsm/hsm-capabilities';
import { HSM_RECONCILER, HsmReconciler } from '../hsm/hsm-reconciler';
import { KEY_MANAGER, KeyManager } from '../hsm/key-manager';
import { SIGNER_FACTORY, SignerFactory } from '../hsm/signer-factory';
import {
  AUDIT_CHECKPOINT_SIGNER,
  AuditCheckpointSigner,
  AuditCheckpointSignerFactory,
} from './audit-checkpoint-signer';

export const AUDIT_CHECKPOINT_KEY_LABEL = 'signet-audit-checkpoint';
/**
 * A fixed CKA_ID: PKCS#11 never overwrites, and the key store refuses a duplicate id, so replicas
 * racing to create the checkpoint key end up with exactly one.
 */
export const AUDIT_CHECKPOINT_KEY_ID = createHash('sha256')
  .update('signet audit checkpoint key v1')
  .digest()
  .subarray(0, 16);

/** Binds audit checkpoints to an EC-256 key in the HSM (created on first use; RSA-3072 on a token without EC). */
export const hsmCheckpointSignerProvider: Provider = {
  provide: AUDIT_CHECKPOINT_SIGNER,
  inject: [KEY_MANAGER, SIGNER_FACTORY, HSM_RECONCILER],
  useFactory: (keys: KeyManager, signers: SignerFactory, hsm: HsmReconciler): AuditCheckpointSignerFactory => {
    const logger = new Logger('AuditCheckpointKey');
    let uri: Promise<string> | undefined;
    const locate = async (): Promise<string> => {
      const existing = (await keys.listKeys('signing')).find(
        (key) => key.id === AUDIT_CHECKPOINT_KEY_ID.toString('hex') && key.hasPrivateKey,
      );
      if (existing) return existing.uri;
      try {
        const created = await keys.createKey({
          spec: offeredKeySpec(hsm.health(), 'EC-256', 'signing'),
          label: AUDIT_CHECKPOINT_KEY_LABEL,
          role: 'signing',
          id: AUDIT_CHECKPOINT_KEY_ID,
        });
        logger.log(`created the audit checkpoint key ${created.uri}`);
        return created.uri;
      } catch (error) {
        if (error instanceof DomainError && error.code === ErrorCode.ALREADY_EXISTS) {
          const raced = (await keys.listKeys('signing')).find(
            (key) => key.id === AUDIT_CHECKPOINT_KEY_ID.toString('hex'),
          );
          if (raced) return raced.uri;
        }
        throw error;
      }
    };
    return async (): Promise<AuditCheckpointSigner> => {
      uri ??= locate();
      uri.catch(() => (uri = undefined));
      const keyUri = await uri;
      const signer = await signers.getSigner(keyUri);
      return { ...signer, keyRef: keyUri };
    };
  },
};
