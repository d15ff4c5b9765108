import { Body, Controller, Get, HttpCode, Param, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { Roles } from '../auth/access.decorators';
import { Principal } from '../auth/principal';
import { CaService, CaView } from './ca.service';
import { CreateCaDto } from './dto/create-ca.dto';

@ApiTags('certificate authorities')
@ApiBearerAuth()
@Controller('v1/cas')
export class CaController {
  constructor(private readonly cas: CaService) {}

  @Post()
  @HttpCode(201)
  @Roles('admin')
  create(@Body() body: CreateCaDto, @Principal() principal: Principal): Promise<CaView> {
    return this.cas.create(body, principal.auditActor);
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
