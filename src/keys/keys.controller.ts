import { Body, Controller, Get, Header, HttpCode, Param, ParseIntPipe, Post, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { Roles } from '../common/access.decorators';
import { Principal } from '../auth/principal';
import { DomainError, ErrorCode } from '../common/errors';
import { CreateKeyDto, ImportCertificateDto } from './dto/create-key.dto';
import { KeysService, KeyView } from './keys.service';

@ApiTags('signing keys')
@ApiBearerAuth()
@Controller('v1/keys')
export class KeysController {
  constructor(private readonly keys: KeysService) {}

  @Post()
  @HttpCode(201)
  @Roles('admin')
  create(@Body() body: CreateKeyDto, @Principal() principal: Principal): Promise<KeyView> {
    return this.keys.create(body, principal.auditActor);
  }

  @Get()
  @Roles('admin', 'security-officer', 'auditor')
  async list(): Promise<{ keys: KeyView[] }> {
    return { keys: await this.keys.list() };
  }

  @Get(':name')
  @Roles('admin', 'signer')
  get(@Param('name') name: string, @Principal() principal: Principal): Promise<KeyView> {
    principal.assertCanUseKey(name);
    return this.keys.get(name);
  }

  @Get(':name/certificate-chain')
  @Roles('admin', 'signer')
  @Header('content-type', 'application/pem-certificate-chain')
  chain(
    @Param('name') name: string,
    @Query('version') version: string | undefined,
    @Principal() principal: Principal,
  ): Promise<string> {
    principal.assertCanUseKey(name);
    return this.keys.certificateChainPem(name, version === undefined ? undefined : versionNumber(version));
  }

  @Get(':name/versions/:version/csr')
  @Roles('admin')
  @Header('content-type', 'application/pkcs10')
  csr(@Param('name') name: string, @Param('version', ParseIntPipe) version: number): Promise<string> {
    return this.keys.csrPem(name, version);
  }

  @Post(':name/versions/:version/certificate')
  @HttpCode(200)
  @Roles('admin')
  importCertificate(
    @Param('name') name: string,
    @Param('version', ParseIntPipe) version: number,
    @Body() body: ImportCertificateDto,
    @Principal() principal: Principal,
  ): Promise<KeyView> {
    return this.keys.importCertificate(name, version, body.chain, principal.auditActor);
  }
}

function versionNumber(value: string): number {
  if (!/^\d{1,9}$/.test(value) || Number(value) < 1)
    throw new DomainError(ErrorCode.VALIDATION_ERROR, "'version' must be a positive whole number", {
      field: 'version',
    });
  return Number(value);
}
