import { DynamicModule, Module } from '@nestjs/common';
import { ScheduleModule } from '@nestjs/schedule';
import { AuditModule } from './audit/audit.module';
import { hsmCheckpointSignerProvider } from './audit/hsm-checkpoint-signer';
import { AuthModule } from './auth/auth.module';
import { BackupModule } from './backup/backup.module';
import { CaModule } from './ca/ca.module';
import { DomainEventsModule } from './common/domain-events.module';
import { SIGNET_CONFIG, SignetConfig } from './config/config';
import { DatabaseModule } from './database/database.module';
import { DistributionModule } from './distribution/distribution.module';
import { DomainEventsWiring } from './domain-events.wiring';
import { IdentityModule } from './identity/identity.module';
import { HsmModule } from './hsm/hsm.module';
import { HsmOptions } from './hsm/hsm-options';
import { KeysModule } from './keys/keys.module';
import { ObservabilityModule } from './observability/observability.module';
import { RevocationModule } from './revocation/revocation.module';
import { RotationModule } from './rotation/rotation.module';
import { SigningModule } from './signing/signing.module';
import { TruststoreModule } from './truststore/truststore.module';
import { TsaModule } from './tsa/tsa.module';

/** What the platform phase (main.ts / tests) resolved before Nest starts. */
export interface RuntimeContext {
  config: SignetConfig;
  databaseUrl: string;
  /** PKCS#11 module, token and PINs (never log this object). */
  hsm: HsmOptions;
  /** 'server' runs schedulers and HTTP; 'cli' is a one-shot application context. */
  role?: 'server' | 'cli';
}

export const RUNTIME_CONTEXT = Symbol('RUNTIME_CONTEXT');

@Module({})
export class AppModule {
  static forRoot(runtime: RuntimeContext): DynamicModule {
    return {
      module: AppModule,
      global: true,
      imports: [
        // Scheduled work (rotation, CRL refresh, distribution) runs in servers, never in a CLI call.
        ...(runtime.role === 'cli' ? [] : [ScheduleModule.forRoot()]),
        ObservabilityModule,
        DomainEventsModule,
        DatabaseModule.forRoot({ url: runtime.databaseUrl, poolSize: runtime.config.database.poolSize }),
        AuditModule,
        AuthModule,
        IdentityModule,
        HsmModule.forRoot(runtime.hsm),
        CaModule,
        BackupModule,
        KeysModule,
        RevocationModule,
        RotationModule.forRoot(runtime.config),
        SigningModule,
        TsaModule,
        TruststoreModule,
        DistributionModule,
      ],
      providers: [
        { provide: SIGNET_CONFIG, useValue: runtime.config },
        { provide: RUNTIME_CONTEXT, useValue: runtime },
        hsmCheckpointSignerProvider,
        // Every subscription to a domain event (src/domain-events.wiring.ts).
        DomainEventsWiring,
      ],
      exports: [SIGNET_CONFIG, RUNTIME_CONTEXT, hsmCheckpointSignerProvider],
    };
  }
}
