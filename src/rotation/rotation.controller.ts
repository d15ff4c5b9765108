import { Body, Controller, Get, HttpCode, Param, Post, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { Roles } from '../common/access.decorators';
import { Principal } from '../auth/principal';
import { DomainError, ErrorCode } from '../common/errors';
import { ForceRotationDto, RenewCaDto, RotateKeyDto } from './dto/rotation.dto';
import { RotationRunner } from './rotation.runner';
import { RotationService } from './rotation.service';
import { RotationView } from './rotation-view';

/** POST /v1/keys/{name}/rotate, POST /v1/cas/{name}/renew, GET /v1/rotations[/{id}], POST /v1/rotations/{id}/force. */
@ApiTags('rotation')
@ApiBearerAuth()
@Controller('v1')
export class RotationController {
  constructor(
    private readonly rotations: RotationService,
    private readonly runner: RotationRunner,
  ) {}

  /** Starts a rotation now (or answers with the one already running); the work continues in the background. */
  @Post('keys/:name/rotate')
  @HttpCode(202)
  @Roles('admin', 'security-officer')
  async rotateKey(
    @Param('name') name: string,
    @Body() body: RotateKeyDto,
    @Principal() principal: Principal,
  ): Promise<RotationView> {
    const { rotation } = await this.rotations.requestKeyRotation(name, {
      actor: principal.auditActor,
      reason: body?.reason,
    });
    this.runner.kick();
    return rotation;
  }

  /** A new key generation of a root or issuing CA (rollover), with its own /pki and /ocsp URLs. */
  @Post('cas/:name/renew')
  @HttpCode(202)
  @Roles('admin')
  async renewCa(
    @Param('name') name: string,
    @Body() body: RenewCaDto,
    @Principal() principal: Principal,
  ): Promise<RotationView> {
    const { rotation } = await this.rotations.requestCaRenewal(name, {
      actor: principal.auditActor,
      reason: body?.reason,
    });
    this.runner.kick();
    return rotation;
  }

  @Get('rotations')
  @Roles('admin', 'security-officer', 'auditor')
  async list(
    @Query('key') key?: string,
    @Query('ca') ca?: string,
    @Query('state') state?: string,
    @Query('limit') limit?: string,
  ): Promise<{ rotations: RotationView[] }> {
    if (limit !== undefined && !/^\d{1,4}$/.test(limit))
      throw new DomainError(ErrorCode.VALIDATION_ERROR, "'limit' must be 1..1000", { field: 'limit' });
    return {
      rotations: await this.rotations.list({ key, ca, state, limit: limit === undefined ? undefined : Number(limit) }),
    };
  }

  @Get('rotations/:id')
  @Roles('admin', 'security-officer', 'auditor')
  get(@Param('id') id: string): Promise<RotationView> {
    return this.rotations.get(id);
  }

  /** Root rollover: let the new hierarchy issue before every required target acknowledged its root. */
  @Post('rotations/:id/force')
  @HttpCode(200)
  @Roles('admin')
  async force(
    @Param('id') id: string,
    @Body() body: ForceRotationDto,
    @Principal() principal: Principal,
  ): Promise<RotationView> {
    const rotation = await this.rotations.forceDistributionGate(id, body.reason, principal.auditActor);
    this.runner.kick();
    return rotation;
  }
}
