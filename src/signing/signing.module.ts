import { Module } from '@nestjs/common';
import { RevocationModule } from '../revocation/revocation.module';
import { ActiveKeyCache } from './active-key-cache';
import { ArtifactSigningsRepository } from './artifact-signings.repository';
import { IdempotencyRepository } from './idempotency.repository';
import { IdempotencyStore } from './idempotency.store';
import { PromotionPolicy } from './promotion.policy';
import { RevocationInvalidation } from './revocation-invalidation';
import { SigningKeysRepository } from './signing-keys.repository';
import { SigningController } from './signing.controller';
import { SigningMetrics } from './signing.metrics';
import { SigningService } from './signing.service';

/**
 * The sign use case (`POST /v1/keys/{name}/sign`) and its promotion policy. Exports
 * ActiveKeyCache (and, from active-key-cache.ts, KEYS_CHANNEL) for code that changes which
 * version of a key signs.
 */
@Module({
  imports: [RevocationModule],
  controllers: [SigningController],
  providers: [
    ActiveKeyCache,
    SigningService,
    PromotionPolicy,
    IdempotencyStore,
    SigningMetrics,
    RevocationInvalidation,
    SigningKeysRepository,
    IdempotencyRepository,
    ArtifactSigningsRepository,
  ],
  exports: [ActiveKeyCache, SigningService, RevocationInvalidation],
})
export class SigningModule {}
