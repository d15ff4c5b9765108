import { Inject, Injectable, OnModuleInit } from '@nestjs/common';
import { KEY_STORE, KeyStore } from '../hsm/key-store';
import { HealthService } from './health.service';

/** /readyz: the HSM is usable when its session pool is ready (cheap: reads counters only). */
@Injectable()
export class HsmHealthIndicator implements OnModuleInit {
  constructor(
    @Inject(KEY_STORE) private readonly keyStore: KeyStore,
    private readonly health: HealthService,
  ) {}

  onModuleInit(): void {
    this.health.register('hsm', async () => {
      const { state, sessions, configuredSessions, inFlight, waiting, recoveries, lastError } = this.keyStore.health();
      return { ok: state === 'ready', state, sessions, configuredSessions, inFlight, waiting, recoveries, ...(lastError ? { lastError } : {}) };
    });
  }
}
