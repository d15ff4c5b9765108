import { Controller, Get, HttpCode, Post, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiProduces, ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { DomainError, ErrorCode } from '../common/errors';
import { Roles } from '../common/access.decorators';
import { Principal } from '../auth/principal';
import { DistributionEventsService } from './distribution-events.service';
import { DistributionScheduler, SyncResult } from './distribution-scheduler.service';
import { DistributionStatus, DistributionStatusService } from './distribution-status.service';

@ApiTags('distribution')
@ApiBearerAuth()
@Controller('v1/distribution')
export class DistributionController {
  constructor(
    private readonly status: DistributionStatusService,
    private readonly scheduler: DistributionScheduler,
    private readonly events: DistributionEventsService,
  ) {}

  @Get()
  @Roles('admin', 'security-officer', 'auditor')
  get(): Promise<DistributionStatus> {
    return this.status.status();
  }

  /**
   * Server-sent events: every target state change of the fleet, from any replica (README "Security
   * console"). The stream ends after 10 minutes (EventSource reconnects), or when the console session ends.
   */
  @Get('events')
  @Roles('admin', 'security-officer', 'auditor')
  @ApiProduces('text/event-stream')
  openEvents(@Principal() principal: Principal, @Res() reply: FastifyReply): void {
    if (!this.events.hasRoom())
      throw new DomainError(ErrorCode.SERVICE_UNAVAILABLE, 'too many open event streams on this replica; retry later', {
        retryAfterSeconds: 5,
      });
    reply.hijack();
    this.events.open(reply.raw, principal);
  }

  /** Reconcile now: 202 once queued; watch `GET /v1/distribution` for the outcome. */
  @Post('sync')
  @HttpCode(202)
  @Roles('admin', 'security-officer')
  sync(@Principal() principal: Principal): Promise<SyncResult> {
    return this.scheduler.sync(principal.auditActor);
  }
}
