import { Injectable } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import type { CertificateEntity } from '../ca/certificate.entity';
import { ActiveKeyCache } from './active-key-cache';

/**
 * A revoked key version stops signing at once: the revoking transaction announces the key on
 * KEYS_CHANNEL (every replica drops it when the revocation commits), and this replica drops it
 * again right after commit without waiting for the notification's round trip. Subscribed to
 * `certificate.revoking` and `certificate.revoked` in src/domain-events.wiring.ts.
 */
@Injectable()
export class RevocationInvalidation {
  /** Key name per revoked serial, from the revoking transaction to its commit. */
  private readonly keyNames = new Map<string, string>();

  constructor(private readonly cache: ActiveKeyCache) {}

  async announceRevoking(certificate: CertificateEntity, manager: EntityManager): Promise<void> {
    if (!certificate.keyVersionId) return;
    const rows: Array<{ name: string }> = await manager.query(
      'SELECT k.name FROM key_versions v JOIN signing_keys k ON k.id = v.key_id WHERE v.id = $1',
      [certificate.keyVersionId],
    );
    if (!rows[0]) return;
    this.keyNames.set(certificate.serial, rows[0].name);
    await this.cache.announce(manager, rows[0].name);
  }

  dropRevoked(certificate: CertificateEntity): void {
    const name = this.keyNames.get(certificate.serial);
    this.keyNames.delete(certificate.serial);
    if (name) this.cache.invalidate(name);
  }
}
