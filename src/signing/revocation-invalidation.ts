import { Injectable } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import type { CertificateEntity } from '../ca/certificate.entity';
import { ActiveKeyCache } from './active-key-cache';
import { SigningKeysRepository } from './signing-keys.repository';

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

  constructor(
    private readonly cache: ActiveKeyCache,
    private readonly keys: SigningKeysRepository,
  ) {}

  async announceRevoking(certificate: CertificateEntity, manager: EntityManager): Promise<void> {
    if (!certificate.keyVersionId) return;
    const name = await this.keys.keyNameOfVersion(manager, certificate.keyVersionId);
    if (!name) return;
    this.keyNames.set(certificate.serial, name);
    await this.cache.announce(manager, name);
  }

  dropRevoked(certificate: CertificateEntity): void {
    const name = this.keyNames.get(certificate.serial);
    this.keyNames.delete(certificate.serial);
    if (name) this.cache.invalidate(name);
  }
}
