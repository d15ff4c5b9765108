import { Global, Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { AdminTokenBootstrap } from './admin-token.bootstrap';
import { AuthGuard } from './auth.guard';
import { RateLimiter } from './rate-limiter';
import { SessionController } from './session.controller';
import { SessionService } from './session.service';
import { TokenController } from './token.controller';
import { TokenService } from './token.service';
import { TokensRepository } from './tokens.repository';

/**
 * Bearer tokens, roles and the global guard. Controllers declare access with @Roles(...) or
 * @Public() (src/common/access.decorators.ts) and read the caller with @Principal().
 */
@Global()
@Module({
  controllers: [TokenController, SessionController],
  providers: [
    TokenService,
    TokensRepository,
    SessionService,
    RateLimiter,
    AdminTokenBootstrap,
    AuthGuard,
    { provide: APP_GUARD, useExisting: AuthGuard },
  ],
  exports: [TokenService, SessionService, RateLimiter, AuthGuard],
})
export class AuthModule {}
