import { Controller, Get, Param } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { Roles } from '../common/access.decorators';
import { RevocationProgress, RevocationProgressService } from './revocation-progress.service';

/** Here, not beside the revoke route: it reads distribution, which depends on the revocation module. */
@ApiTags('certificates')
@ApiBearerAuth()
@Controller('v1/certificates')
export class RevocationProgressController {
  constructor(private readonly progress: RevocationProgressService) {}

  /** How far a revocation has gone: signing stopped, OCSP, CRL, each region's targets (with times). */
  @Get(':serial/revocation')
  @Roles('admin', 'security-officer', 'auditor')
  get(@Param('serial') serial: string): Promise<RevocationProgress> {
    return this.progress.progress(serial);
  }
}
