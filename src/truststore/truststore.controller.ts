import { Body, Controller, Get, HttpCode, Param, Patch, Post, Query, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiQuery, ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { Roles } from '../common/access.decorators';
import { Principal } from '../auth/principal';
import { DomainError, ErrorCode } from '../common/errors';
import { BUNDLE_FORMATS } from './bundle-formats';
import { CreateTruststoreDto, UpdateTruststoreDto } from './dto/truststore.dto';
import { TruststoreBundlesService } from './truststore-bundles.service';
import { TruststoreService, TruststoreView } from './truststore.service';

@ApiTags('truststores')
@ApiBearerAuth()
@Controller('v1/truststores')
export class TruststoreController {
  constructor(
    private readonly truststores: TruststoreService,
    private readonly bundles: TruststoreBundlesService,
  ) {}

  @Post()
  @HttpCode(201)
  @Roles('admin')
  create(@Body() body: CreateTruststoreDto, @Principal() principal: Principal): Promise<TruststoreView> {
    return this.truststores.create(body, principal.auditActor);
  }

  @Get()
  @Roles('admin', 'security-officer', 'auditor')
  async list(): Promise<{ truststores: TruststoreView[] }> {
    return { truststores: await this.truststores.list() };
  }

  @Get(':name')
  @Roles('admin', 'security-officer', 'auditor')
  get(@Param('name') name: string): Promise<TruststoreView> {
    return this.truststores.get(name);
  }

  @Patch(':name')
  @Roles('admin')
  update(
    @Param('name') name: string,
    @Body() body: UpdateTruststoreDto,
    @Principal() principal: Principal,
  ): Promise<TruststoreView> {
    return this.truststores.update(name, body, principal.auditActor);
  }

  @Get(':name/bundle')
  @Roles('admin', 'security-officer', 'auditor')
  @ApiQuery({ name: 'format', enum: BUNDLE_FORMATS })
  @ApiQuery({ name: 'version', required: false, type: Number })
  async bundle(
    @Param('name') name: string,
    @Query('format') format: string,
    @Query('version') version: string | undefined,
    @Res() reply: FastifyReply,
  ): Promise<void> {
    let wanted: number | undefined;
    if (version !== undefined) {
      wanted = Number(version);
      if (!/^[1-9]\d{0,9}$/.test(version))
        throw new DomainError(ErrorCode.VALIDATION_ERROR, "bundle: 'version' must be a positive whole number", {
          field: 'version',
        });
    }
    const bundle = await this.bundles.bundle(name, format, wanted);
    await reply
      .header('content-type', bundle.spec.contentType)
      .header(
        'content-disposition',
        `attachment; filename="${bundle.truststore}-v${bundle.version}-${bundle.spec.title}"`,
      )
      .header('etag', `"${bundle.digest}"`)
      .header('x-signet-truststore-version', String(bundle.version))
      .header('x-signet-truststore-digest', bundle.digest)
      .send(bundle.content);
  }
}
