import { Inject, Injectable, OnModuleInit, Optional } from '@nestjs/common';
import { HealthService } from '../observability/health.service';
import { HSM_RECONCILER, type HsmReconciler } from './hsm-reconciler';

/**
 * /readyz: the HSM is usable when its session pool is ready (cheap: reads counters only). The HSM
 * registers the check with observability, as the database does (database.health.ts); without
 * observability (HsmModule on its own, in tests) there is nothing to register with.
 */
@Injectable()
export class HsmHealthIndicator implements OnModuleInit {
  constructor(
    @Inject(HSM_RECONCILER) private readonly reconciler: HsmReconciler,
    @Optional() private readonly health?: HealthService,
  ) {}

  onModuleInit(): void {
    this.health?.register('hsm', async () => {
      const { state, sessions, configuredSessions, inFlight, waiting, recoveries, lastError } =
        this.reconciler.health();
      return {
        ok: state === 'ready',
        state,
        sessions,
        configuredSessions,
        inFlight,
        waiting,
        recoveries,
        ...(lastError ? { lastError } : {}),
      };
    });
  }
}
