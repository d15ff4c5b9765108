import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { Roles } from '../common/access.decorators';
import { Principal } from '../auth/principal';
import { CreateRegionDto, CreateTargetDto, UpdateTargetDto } from './dto/distribution.dto';
import { RegionsService, RegionView, TargetView } from './regions.service';

@ApiTags('distribution')
@ApiBearerAuth()
@Controller('v1/regions')
export class RegionsController {
  constructor(private readonly regions: RegionsService) {}

  @Post()
  @HttpCode(201)
  @Roles('admin')
  create(@Body() body: CreateRegionDto, @Principal() principal: Principal): Promise<RegionView> {
    return this.regions.createRegion(body, principal.auditActor);
  }

  @Get()
  @Roles('admin', 'security-officer', 'auditor')
  async list(): Promise<{ regions: RegionView[] }> {
    return { regions: await this.regions.listRegions() };
  }

  @Get(':region')
  @Roles('admin', 'security-officer', 'auditor')
  get(@Param('region') region: string): Promise<RegionView> {
    return this.regions.getRegion(region);
  }

  @Delete(':region')
  @HttpCode(204)
  @Roles('admin')
  remove(@Param('region') region: string, @Principal() principal: Principal): Promise<void> {
    return this.regions.deleteRegion(region, principal.auditActor);
  }

  @Post(':region/targets')
  @HttpCode(201)
  @Roles('admin')
  createTarget(
    @Param('region') region: string,
    @Body() body: CreateTargetDto,
    @Principal() principal: Principal,
  ): Promise<TargetView> {
    return this.regions.createTarget(region, { ...body }, principal.auditActor);
  }

  @Get(':region/targets/:name')
  @Roles('admin', 'security-officer', 'auditor')
  getTarget(@Param('region') region: string, @Param('name') name: string): Promise<TargetView> {
    return this.regions.getTarget(region, name);
  }

  @Patch(':region/targets/:name')
  @Roles('admin')
  updateTarget(
    @Param('region') region: string,
    @Param('name') name: string,
    @Body() body: UpdateTargetDto,
    @Principal() principal: Principal,
  ): Promise<TargetView> {
    return this.regions.updateTarget(region, name, { ...body }, principal.auditActor);
  }

  @Delete(':region/targets/:name')
  @HttpCode(204)
  @Roles('admin')
  deleteTarget(
    @Param('region') region: string,
    @Param('name') name: string,
    @Principal() principal: Principal,
  ): Promise<void> {
    return this.regions.deleteTarget(region, name, principal.auditActor);
  }
}
