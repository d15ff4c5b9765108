import { Controller, Get } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { Roles } from '../common/access.decorators';
import { SecurityStatus, SecurityStatusService } from './security-status.service';

@ApiTags('status')
@ApiBearerAuth()
@Controller('v1/status')
export class SecurityStatusController {
  constructor(private readonly status: SecurityStatusService) {}

  /** `signet status` as JSON: expiry, rotation calendar, CRLs, distribution, audit checkpoints, each with the rule that makes it red. */
  @Get()
  @Roles('admin', 'security-officer', 'auditor')
  get(): Promise<SecurityStatus> {
    return this.status.status();
  }
}
