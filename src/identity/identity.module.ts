import { Global, Module } from '@nestjs/common';
import { ID_TOKEN_AUTHENTICATOR } from '../auth/id-token-authenticator';
import { IdentityAdminService } from './identity-admin.service';
import { IdentityProvidersController, WorkloadRulesController } from './identity.controller';
import { IdentityRepository } from './identity.repository';
import { WorkloadIdentityService } from './workload-identity.service';

/**
 * OIDC workload identity: identity providers, workload rules, and the ID-token authenticator the
 * global AuthGuard consults for bearer values shaped like a JWS. Global so AuthGuard (AuthModule)
 * sees ID_TOKEN_AUTHENTICATOR without the auth folder importing this one.
 */
@Global()
@Module({
  controllers: [IdentityProvidersController, WorkloadRulesController],
  providers: [
    IdentityRepository,
    WorkloadIdentityService,
    IdentityAdminService,
    { provide: ID_TOKEN_AUTHENTICATOR, useExisting: WorkloadIdentityService },
  ],
  exports: [ID_TOKEN_AUTHENTICATOR, WorkloadIdentityService],
})
export class IdentityModule {}
