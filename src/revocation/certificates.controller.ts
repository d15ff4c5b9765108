import { Body, Controller, Get, HttpCode, Param, Post, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { Roles } from '../common/access.decorators';
import { Principal } from '../auth/principal';
import { DomainError, ErrorCode } from '../common/errors';
import { CertificateSearchService, CertificateView } from './certificate-search.service';
import { RevokeDto } from './dto/revoke.dto';
import { SearchCertificatesDto } from './dto/search-certificates.dto';
import { RevocationService, RevocationView } from './revocation.service';

@ApiTags('certificates')
@ApiBearerAuth()
@Controller('v1/certificates')
export class CertificatesController {
  constructor(
    private readonly search: CertificateSearchService,
    private readonly revocations: RevocationService,
  ) {}

  /** Search by key, serial, subject text or signed artifact (at most one); none: the newest 1000. */
  @Get()
  @Roles('admin', 'security-officer', 'auditor')
  async list(@Query() query: SearchCertificatesDto): Promise<{ certificates: CertificateView[] }> {
    return { certificates: await this.search.search(query) };
  }

  @Get(':serial')
  @Roles('admin', 'security-officer', 'auditor')
  async get(@Param('serial') serial: string): Promise<CertificateView> {
    const [found] = await this.search.search({ serial });
    if (!found) throw new DomainError(ErrorCode.NOT_FOUND, `no certificate with serial ${serial}`);
    return found;
  }

  @Post(':serial/revoke')
  @HttpCode(200)
  @Roles('admin', 'security-officer')
  revoke(
    @Param('serial') serial: string,
    @Body() body: RevokeDto,
    @Principal() principal: Principal,
  ): Promise<RevocationView> {
    return this.revocations.revoke(serial, body, principal.auditActor);
  }
}
