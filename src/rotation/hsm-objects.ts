import { DataSource } from 'typeorm';
import { AUDIT_CHECKPOINT_KEY_ID } from '../audit/hsm-checkpoint-signer';
import { KeySpec } from '../pki/key-spec';
import { DomainError, ErrorCode } from '../common/errors';
import type { HsmReconciler } from '../hsm/hsm-reconciler';
import type { KeyManager } from '../hsm/key-manager';
import { KeyInfo, KeyRole, ReconciliationReport } from '../hsm/key-store';
import { RotationStatusRepository } from './rotation-status.repository';

/**
 * Creates the key pair a rotation planned, with the CKA_ID fixed in its plan; when an earlier
 * attempt (before a crash, or on another replica) already created it, adopts that object instead.
 * A half-made pair (no private key) or one of another spec is destroyed and made again.
 */
export async function createOrAdoptKey(
  keys: KeyManager,
  request: { spec: KeySpec; label: string; role: KeyRole; hsmId: string },
): Promise<{ info: KeyInfo; adopted: boolean }> {
  const id = Buffer.from(request.hsmId, 'hex');
  for (let attempt = 0; ; attempt++) {
    try {
      return {
        info: await keys.createKey({ spec: request.spec, label: request.label, role: request.role, id }),
        adopted: false,
      };
    } catch (error) {
      if (!(error instanceof DomainError && error.code === ErrorCode.ALREADY_EXISTS) || attempt > 0) throw error;
    }
    const existing = (await keys.listKeys()).find((key) => key.id === request.hsmId);
    if (!existing) continue; // gone meanwhile: create it
    if (existing.hasPrivateKey && existing.spec === request.spec) {
      return { info: await keys.describeKey(existing.uri), adopted: true };
    }
    await keys.destroyKey(existing.uri);
  }
}

/**
 * Every HSM key the database still needs: CA generations, key versions whose private key was not
 * destroyed, the audit checkpoint key (a fixed CKA_ID), and the keys running rotations planned but
 * have not recorded yet.
 */
export async function referencedKeyUris(dataSource: DataSource): Promise<{ uris: string[]; plannedIds: string[] }> {
  const status = new RotationStatusRepository(dataSource);
  return { uris: await status.referencedKeyUris(), plannedIds: await status.plannedHsmIds() };
}

/**
 * HSM reconciliation over what the database references. Objects a running rotation planned (by
 * CKA_ID) are not orphans: the rotation records or adopts them when it resumes.
 */
export async function reconcileHsm(
  dataSource: DataSource,
  reconciler: Pick<HsmReconciler, 'reconcile'>,
): Promise<ReconciliationReport & { plannedObjects: string[] }> {
  return reconcileReferenced(reconciler, await referencedKeyUris(dataSource));
}

/** reconcileHsm over references already read (referencedKeyUris). */
export async function reconcileReferenced(
  reconciler: Pick<HsmReconciler, 'reconcile'>,
  { uris, plannedIds }: { uris: string[]; plannedIds: string[] },
): Promise<ReconciliationReport & { plannedObjects: string[] }> {
  const report = await reconciler.reconcile(uris);
  const planned = new Set(plannedIds);
  // The checkpoint key is created on first use, possibly before any checkpoint row names it.
  const system = new Set([AUDIT_CHECKPOINT_KEY_ID.toString('hex')]);
  return {
    orphanObjects: report.orphanObjects.filter((key) => !planned.has(key.id) && !system.has(key.id)),
    missingObjects: report.missingObjects,
    plannedObjects: report.orphanObjects.filter((key) => planned.has(key.id)).map((key) => key.uri),
  };
}
