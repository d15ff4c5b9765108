import { DataSource } from 'typeorm';
import { AUDIT_CHECKPOINT_KEY_ID } from '../audit/hsm-checkpoint-signer';
import { EXTERNAL_KEY_URI } from '../ca/ca.service';
import { KeySpec } from '../pki/key-spec';
import { DomainError, ErrorCode } from '../common/errors';
import { KeyInfo, KeyRole, KeyStore, ReconciliationReport } from '../hsm/key-store';

/**
 * Creates the key pair a rotation planned, with the CKA_ID fixed in its plan; when an earlier
 * attempt (before a crash, or on another replica) already created it, adopts that object instead.
 * A half-made pair (no private key) or one of another spec is destroyed and made again.
 */
export async function createOrAdoptKey(
  keyStore: KeyStore,
  request: { spec: KeySpec; label: string; role: KeyRole; hsmId: string },
): Promise<{ info: KeyInfo; adopted: boolean }> {
  const id = Buffer.from(request.hsmId, 'hex');
  for (let attempt = 0; ; attempt++) {
    try {
      return { info: await keyStore.createKey({ spec: request.spec, label: request.label, role: request.role, id }), adopted: false };
    } catch (error) {
      if (!(error instanceof DomainError && error.code === ErrorCode.ALREADY_EXISTS) || attempt > 0) throw error;
    }
    const existing = (await keyStore.listKeys()).find((key) => key.id === request.hsmId);
    if (!existing) continue; // gone meanwhile: create it
    if (existing.hasPrivateKey && existing.spec === request.spec) {
      return { info: await keyStore.describeKey(existing.uri), adopted: true };
    }
    await keyStore.destroyKey(existing.uri);
  }
}

/**
 * Every HSM key the database still needs: CA generations (all of them: old generations keep
 * signing CRLs and OCSP answers), key versions whose private key was not destroyed, the audit
 * checkpoint key (a fixed CKA_ID), and the keys running rotations planned but have not recorded yet.
 */
export async function referencedKeyUris(dataSource: DataSource): Promise<{ uris: string[]; plannedIds: string[] }> {
  const rows: Array<{ key_uri: string }> = await dataSource.query(
    `SELECT key_uri FROM ca_generations WHERE key_uri <> $1
     UNION SELECT key_uri FROM key_versions WHERE destroyed_at IS NULL AND state <> 'destroyed'`,
    [EXTERNAL_KEY_URI],
  );
  const planned: Array<{ id: string }> = await dataSource.query(
    `SELECT plan->>'hsmId' AS id FROM rotations WHERE state = 'running'
     UNION SELECT s->>'hsmId' FROM rotations r, jsonb_array_elements(r.plan->'subordinates') s WHERE r.state = 'running'`,
  );
  const checkpoints: Array<{ key_ref: string }> = await dataSource.query(`SELECT DISTINCT key_ref FROM audit_checkpoints WHERE key_ref LIKE 'pkcs11:%'`);
  return {
    uris: [...rows.map((row) => row.key_uri), ...checkpoints.map((row) => row.key_ref)],
    plannedIds: planned.map((row) => row.id).filter((id): id is string => !!id),
  };
}

/**
 * HSM reconciliation over what the database references. Objects a running rotation planned (by
 * CKA_ID) are not orphans: the rotation records or adopts them when it resumes.
 */
export async function reconcileHsm(dataSource: DataSource, keyStore: KeyStore): Promise<ReconciliationReport & { plannedObjects: string[] }> {
  const { uris, plannedIds } = await referencedKeyUris(dataSource);
  const report = await keyStore.reconcile(uris);
  const planned = new Set(plannedIds);
  // The checkpoint key is created on first use, possibly before any checkpoint row names it.
  const system = new Set([AUDIT_CHECKPOINT_KEY_ID.toString('hex')]);
  return {
    orphanObjects: report.orphanObjects.filter((key) => !planned.has(key.id) && !system.has(key.id)),
    missingObjects: report.missingObjects,
    plannedObjects: report.orphanObjects.filter((key) => planned.has(key.id)).map((key) => key.uri),
  };
}
