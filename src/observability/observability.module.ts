import { Global, Module } from '@nestjs/common';
import { ClientRateLimiter } from './client-rate-limiter';
import { HealthController } from './health.controller';
import { HealthService } from './health.service';
import { MetricsService } from './metrics.service';

@Global()
@Module({
  controllers: [HealthController],
  providers: [HealthService, MetricsService, ClientRateLimiter],
  exports: [HealthService, MetricsService, ClientRateLimiter],
})
export class ObservabilityModule {}
