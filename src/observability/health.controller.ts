import { Controller, Get, Header, HttpCode, Res } from '@nestjs/common';
import { ApiExcludeEndpoint, ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { Public, Roles } from '../common/access.decorators';
import { DomainError, ErrorCode } from '../common/errors';
import { HealthService } from './health.service';
import { MetricsService } from './metrics.service';

@ApiTags('service')
@Controller()
export class HealthController {
  constructor(
    private readonly health: HealthService,
    private readonly metrics: MetricsService,
  ) {}

  /** Liveness: the process answers. */
  @Get('healthz')
  @Public()
  @HttpCode(200)
  healthz(): { status: 'ok' } {
    return { status: 'ok' };
  }

  /** Readiness: database and HSM usable and not draining for shutdown; 503 in the error shape otherwise. */
  @Get('readyz')
  @Public()
  async readyz(): Promise<{ status: 'ready'; checks: Record<string, unknown> }> {
    const { ready, checks } = await this.health.readiness();
    if (!ready) {
      if (checks.draining)
        throw new DomainError(ErrorCode.SERVICE_UNAVAILABLE, 'not ready: draining for shutdown', { checks });
      throw new DomainError(
        ErrorCode.SERVICE_UNAVAILABLE,
        'not ready: ' +
          Object.keys(checks)
            .filter((k) => !checks[k].ok)
            .join(', ') +
          ' unavailable',
        { checks },
      );
    }
    return { status: 'ready', checks };
  }

  @Get('metrics')
  @Public((config) => config.metricsPublic)
  @Roles('admin', 'security-officer', 'auditor')
  @ApiExcludeEndpoint()
  @Header('Cache-Control', 'no-store')
  async metricsText(@Res() reply: FastifyReply): Promise<void> {
    const text = await this.metrics.registry.metrics();
    await reply.header('content-type', this.metrics.registry.contentType).send(text);
  }
}
