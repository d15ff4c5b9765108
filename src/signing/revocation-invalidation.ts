import { Injectable, OnModuleInit } from '@nestjs/common';
import { RevocationService } from '../revocation/revocation.service';
import { ActiveKeyCache } from './active-key-cache';

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
  ) {}

  onModuleInit(): void {
    const keyNames = new Map<string, string>();
    this.revocations.addSink({
      revoking: async (certificate, manager) => {
        if (!certificate.keyVersionId) return;
        const rows: Array<{ name: string }> = await manager.query(
          'SELECT k.name FROM key_versions v JOIN signing_keys k ON k.id = v.key_id WHERE v.id = $1',
          [certificate.keyVersionId],
        );
        if (!rows[0]) return;
        keyNames.set(certificate.serial, rows[0].name);
        await this.cache.announce(manager, rows[0].name);
      },
      revoked: (certificate) => {
        const name = keyNames.get(certificate.serial);
        keyNames.delete(certificate.serial);
        if (name) this.cache.invalidate(name);
      },
    });
  }
}
