import { DynamicModule, Module } from '@nestjs/common';
import { CaModule } from '../ca/ca.module';
import type { SignetConfig } from '../config/config';
import { KeysModule } from '../keys/keys.module';
import { RevocationModule } from '../revocation/revocation.module';
import { SigningModule } from '../signing/signing.module';
import { CaRolloverSteps } from './ca-rollover.steps';
import { KeyRotationSteps } from './key-rotation.steps';
import { RotationController } from './rotation.controller';
import { RotationDueService } from './rotation-due.service';
import { RotationMetrics } from './rotation.metrics';
import { RotationRepository } from './rotation.repository';
import { RotationRunner } from './rotation.runner';
import { RotationScheduler } from './rotation.scheduler';
import { RotationService } from './rotation.service';
import { ROTATION_CLOCK, systemClock } from './rotation-clock';
import { RotationStatusRepository } from './rotation-status.repository';
import { RotationStatusService } from './rotation-status.service';
import { RotationSubjectsRepository } from './rotation-subjects.repository';
import { RotationTestHooksController } from './rotation-test-hooks.controller';
import { SecurityStatusController } from './security-status.controller';
import { SecurityStatusService } from './security-status.service';
import { RotationTestHooks } from './test-hooks';

/**
 * Rotation of signing keys and CA rollovers as persisted, idempotent steps (ARCHITECTURE.md), the
 * scheduler that enqueues them, emergency rotation on revocation, and expiry metrics/status.
 * The distribution gate (DISTRIBUTION_GATE) is injected when a module provides it globally.
 */
@Module({})
export class RotationModule {
  static forRoot(config: Pick<SignetConfig, 'testHooks'>): DynamicModule {
    return {
      module: RotationModule,
      imports: [CaModule, KeysModule, RevocationModule, SigningModule],
      // The test hooks' routes exist only in a test process (loadConfig refuses them unless NODE_ENV=test).
      controllers: [
        RotationController,
        SecurityStatusController,
        ...(config.testHooks.enabled ? [RotationTestHooksController] : []),
      ],
      providers: [
        { provide: ROTATION_CLOCK, useValue: systemClock },
        RotationService,
        RotationDueService,
        RotationRepository,
        RotationSubjectsRepository,
        RotationStatusRepository,
        RotationRunner,
        RotationScheduler,
        RotationStatusService,
        SecurityStatusService,
        RotationMetrics,
        KeyRotationSteps,
        CaRolloverSteps,
        RotationTestHooks,
      ],
      exports: [RotationService, RotationRunner, RotationScheduler, RotationStatusService, ROTATION_CLOCK],
    };
  }
}
