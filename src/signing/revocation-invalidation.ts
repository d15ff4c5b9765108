import { Injectable, OnModuleInit } from '@nestjs/common';
import { RevocationService } from '../revocation/revocation.service';
import { ActiveKeyCache } from './active-key-cache';
import { SigningKeysRepository } from './signing-keys.repository';

/**
 * A revoked key version stops signing at once: the revoking transaction announces the key on
 * KEYS_CHANNEL (every replica drops it when the revocation commits), and this replica drops it
 * again right after commit without waiting for the notification's round trip.
 */
@Injectable()
export class RevocationInvalidation implements OnModuleInit {
  constructor(
    private readonly revocations: RevocationService,
    private readonly cache: ActiveKeyCache,
    private readonly keys: SigningKeysRepository,
  ) {}

  onModuleInit(): void {
    const keyNames = new Map<string, string>();
    this.revocations.addSink({
      revoking: async (certificate, manager) => {
        if (!certificate.keyVersionId) return;
        const name = await this.keys.keyNameOfVersion(manager, certificate.keyVersionId);
        if (!name) return;
        keyNames.set(certificate.serial, name);
        await this.cache.announce(manager, name);
      },
      revoked: (certificate) => {
        const name = keyNames.get(certificate.serial);
        keyNames.delete(certificate.serial);
        if (name) this.cache.invalidate(name);
      },
    });
  }
}
