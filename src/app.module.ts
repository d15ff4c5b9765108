import { DynamicModule, Module } from '@nestjs/common';
import { ScheduleModule } from '@nestjs/schedule';
import { SIGNET_CONFIG, SignetConfig } from './config/config';
import { DatabaseModule } from './database/database.module';
import { ObservabilityModule } from './observability/observability.module';

/** What the platform phase (main.ts / tests) resolved before Nest starts. */
export interface RuntimeContext {
  config: SignetConfig;
  databaseUrl: string;
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
        DatabaseModule.forRoot({ url: runtime.databaseUrl, poolSize: runtime.config.database.poolSize }),
      ],
      providers: [
        { provide: SIGNET_CONFIG, useValue: runtime.config },
        { provide: RUNTIME_CONTEXT, useValue: runtime },
      ],
      exports: [SIGNET_CONFIG, RUNTIME_CONTEXT],
    };
  }
}
