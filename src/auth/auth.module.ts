import { Global, Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { AdminTokenBootstrap } from './admin-token.bootstrap';
import { AuthGuard } from './auth.guard';
import { RateLimiter } from './rate-limiter';
import { TokenController } from './token.controller';
import { TokenService } from './token.service';

/**
 * Bearer tokens, roles and the global guard. Controllers declare access with @Roles(...) or
 * @Public() (src/common/access.decorators.ts) and read the caller with @Principal().
 */
@Global()
@Module({
  controllers: [TokenController],
  providers: [TokenService, RateLimiter, AdminTokenBootstrap, AuthGuard, { provide: APP_GUARD, useExisting: AuthGuard }],
  exports: [TokenService, RateLimiter, AuthGuard],
})
export class AuthModule {}
