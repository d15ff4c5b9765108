import { Global, Module } from '@nestjs/common';
import { CaModule } from '../ca/ca.module';
import { DISTRIBUTION_GATE } from '../common/distribution-gate';
import { KeysModule } from '../keys/keys.module';
import { RevocationModule } from '../revocation/revocation.module';
import { TruststoreModule } from '../truststore/truststore.module';
import { DistributionController } from './distribution.controller';
import { DistributionEventsService } from './distribution-events.service';
import { DistributionGateService } from './distribution-gate.service';
import { DistributionMetrics } from './distribution-metrics';
import { DistributionScheduler } from './distribution-scheduler.service';
import { DistributionStatusService } from './distribution-status.service';
import { ReconcilerService } from './reconciler.service';
import { RegionsController } from './regions.controller';
import { RevocationProgressController } from './revocation-progress.controller';
import { RevocationProgressService } from './revocation-progress.service';
import { RegionsService } from './regions.service';
import { RevocationProgressRepository } from './revocation-progress.repository';
import { TargetCredentials } from './target-credentials';
import { TargetsRepository } from './targets.repository';

/**
 * Truststore distribution: regions and targets, the reconcile loop pushing each truststore version
 * to them through the drivers, status, and the rotation gate. Global so that DISTRIBUTION_GATE reaches
 * the rotation module, which injects it when present.
 */
@Global()
@Module({
  imports: [CaModule, KeysModule, RevocationModule, TruststoreModule],
  controllers: [RegionsController, DistributionController, RevocationProgressController],
  providers: [
    RegionsService,
    TargetCredentials,
    ReconcilerService,
    DistributionScheduler,
    DistributionStatusService,
    DistributionEventsService,
    RevocationProgressService,
    RevocationProgressRepository,
    TargetsRepository,
    DistributionMetrics,
    DistributionGateService,
    { provide: DISTRIBUTION_GATE, useExisting: DistributionGateService },
  ],
  exports: [DISTRIBUTION_GATE, DistributionStatusService, DistributionScheduler, RegionsService],
})
export class DistributionModule {}
