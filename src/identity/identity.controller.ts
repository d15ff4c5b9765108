import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { Roles } from '../common/access.decorators';
import { Principal } from '../auth/principal';
import {
  CreateIdentityProviderDto,
  CreateWorkloadRuleDto,
  UpdateIdentityProviderDto,
  UpdateWorkloadRuleDto,
} from './dto/identity.dto';
import { IdentityAdminService, ProviderView, RuleView } from './identity-admin.service';

@ApiTags('workload identity')
@ApiBearerAuth()
@Controller('v1/identity-providers')
@Roles('admin')
export class IdentityProvidersController {
  constructor(private readonly admin: IdentityAdminService) {}

  /** Registers an OIDC issuer (its discovery document and JWKS are read on first use). */
  @Post()
  @HttpCode(201)
  create(@Body() body: CreateIdentityProviderDto, @Principal() principal: Principal): Promise<ProviderView> {
    return this.admin.createProvider(body, principal.auditActor);
  }

  @Get()
  async list(): Promise<{ identityProviders: ProviderView[] }> {
    return { identityProviders: await this.admin.listProviders() };
  }

  @Get(':name')
  get(@Param('name') name: string): Promise<ProviderView> {
    return this.admin.getProvider(name);
  }

  @Patch(':name')
  update(
    @Param('name') name: string,
    @Body() body: UpdateIdentityProviderDto,
    @Principal() principal: Principal,
  ): Promise<ProviderView> {
    return this.admin.updateProvider(name, body, principal.auditActor);
  }

  /** Deletes the provider and its rules; its tokens stop working here at once, on other replicas within SIGNET_TOKEN_CACHE_SECONDS. */
  @Delete(':name')
  remove(
    @Param('name') name: string,
    @Principal() principal: Principal,
  ): Promise<{ name: string; deletedRules: string[] }> {
    return this.admin.deleteProvider(name, principal.auditActor);
  }
}

@ApiTags('workload identity')
@ApiBearerAuth()
@Controller('v1/workload-rules')
@Roles('admin')
export class WorkloadRulesController {
  constructor(private readonly admin: IdentityAdminService) {}

  /** Grants the signer role on `keys` to ID tokens of `provider` whose claims all match. */
  @Post()
  @HttpCode(201)
  create(@Body() body: CreateWorkloadRuleDto, @Principal() principal: Principal): Promise<RuleView> {
    return this.admin.createRule(body, principal.auditActor);
  }

  @Get()
  async list(): Promise<{ workloadRules: RuleView[] }> {
    return { workloadRules: await this.admin.listRules() };
  }

  @Get(':name')
  get(@Param('name') name: string): Promise<RuleView> {
    return this.admin.getRule(name);
  }

  @Patch(':name')
  update(
    @Param('name') name: string,
    @Body() body: UpdateWorkloadRuleDto,
    @Principal() principal: Principal,
  ): Promise<RuleView> {
    return this.admin.updateRule(name, body, principal.auditActor);
  }

  @Delete(':name')
  remove(@Param('name') name: string, @Principal() principal: Principal): Promise<{ name: string }> {
    return this.admin.deleteRule(name, principal.auditActor);
  }
}
