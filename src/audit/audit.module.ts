import { Global, Module } from '@nestjs/common';
import { AuditCheckpointSigners } from './audit-checkpoint-signer';
import { AuditCheckpointService } from './audit-checkpoint.service';
import { AuditCheckpointsRepository } from './audit-checkpoints.repository';
import { AuditExportService } from './audit-export.service';
import { AuditFullVerifyService } from './audit-full-verify.service';
import { AuditMetrics } from './audit-metrics';
import { AuditPartitionsRepository } from './audit-partitions.repository';
import { AuditRetentionService } from './audit-retention.service';
import { AuditScheduler } from './audit-scheduler';
import { AuditVerificationsRepository } from './audit-verifications.repository';
import { AuditVerifier } from './audit-verifier';
import { AuditController } from './audit.controller';
import { AuditRepository } from './audit.repository';
import { AuditService } from './audit.service';

/**
 * The hash-chained audit log. Global so that every module records through AuditService without
 * importing this one. The checkpoint signer comes from whoever provides AUDIT_CHECKPOINT_SIGNER
 * (the HSM module), or later through AuditCheckpointSigners.bind().
 */
@Global()
@Module({
  controllers: [AuditController],
  providers: [
    AuditRepository,
    AuditCheckpointsRepository,
    AuditPartitionsRepository,
    AuditVerificationsRepository,
    AuditService,
    AuditCheckpointSigners,
    AuditMetrics,
    AuditVerifier,
    AuditCheckpointService,
    AuditExportService,
    AuditRetentionService,
    AuditFullVerifyService,
    AuditScheduler,
  ],
  exports: [
    AuditService,
    AuditCheckpointSigners,
    AuditVerifier,
    AuditCheckpointService,
    AuditExportService,
    AuditRetentionService,
    AuditFullVerifyService,
  ],
})
export class AuditModule {}
