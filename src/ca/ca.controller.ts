import { Body, Controller, Get, Header, HttpCode, Param, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { Roles } from '../common/access.decorators';
import { Principal } from '../auth/principal';
import { CaService, CaView } from './ca.service';
import { CaCreationService } from './ca-creation.service';
import { DomainError, ErrorCode } from '../common/errors';
import { CreateCaDto, ImportCaChainDto } from './dto/create-ca.dto';

@ApiTags('certificate authorities')
@ApiBearerAuth()
@Controller('v1/cas')
export class CaController {
  constructor(
    private readonly cas: CaService,
    private readonly creation: CaCreationService,
  ) {}

  @Post()
  @HttpCode(201)
  @Roles('admin')
  async create(
    @Body() body: CreateCaDto,
    @Principal() principal: Principal,
  ): Promise<CaView | { ca: CaView; csr: string }> {
    if (body.external) {
      if (body.kind !== 'issuing')
        throw new DomainError(
          ErrorCode.VALIDATION_ERROR,
          "only an issuing CA can be 'external' (signed by an offline root)",
          { field: 'external' },
        );
      return this.creation.createExternalIssuing(body, principal.auditActor);
    }
    return this.creation.create(body, principal.auditActor);
  }

  @Get(':name/csr')
  @Roles('admin')
  @Header('content-type', 'application/pkcs10')
  csr(@Param('name') name: string): Promise<string> {
    return this.cas.csrPem(name);
  }

  @Post(':name/certificate')
  @HttpCode(200)
  @Roles('admin')
  importChain(
    @Param('name') name: string,
    @Body() body: ImportCaChainDto,
    @Principal() principal: Principal,
  ): Promise<CaView> {
    return this.creation.importChain(name, body.chain, principal.auditActor);
  }

  @Get()
  @Roles('admin', 'security-officer', 'auditor')
  async list(): Promise<{ cas: CaView[] }> {
    return { cas: await this.cas.list() };
  }

  @Get(':name')
  @Roles('admin', 'security-officer', 'auditor')
  get(@Param('name') name: string): Promise<CaView> {
    return this.cas.get(name);
  }
}
