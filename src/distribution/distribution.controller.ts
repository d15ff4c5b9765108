import { Controller, Get, HttpCode, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { Roles } from '../common/access.decorators';
import { Principal } from '../auth/principal';
import { DistributionScheduler, SyncResult } from './distribution-scheduler.service';
import { DistributionStatus, DistributionStatusService } from './distribution-status.service';

@ApiTags('distribution')
@ApiBearerAuth()
@Controller('v1/distribution')
export class DistributionController {
  constructor(
    private readonly status: DistributionStatusService,
    private readonly scheduler: DistributionScheduler,
  ) {}

  @Get()
  @Roles('admin', 'security-officer', 'auditor')
  get(): Promise<DistributionStatus> {
    return this.status.status();
  }

  /** Reconcile now: 202 once queued; watch `GET /v1/distribution` for the outcome. */
  @Post('sync')
  @HttpCode(202)
  @Roles('admin', 'security-officer')
  sync(@Principal() principal: Principal): Promise<SyncResult> {
    return this.scheduler.sync(principal.auditActor);
  }
}
