import { DynamicModule, Module } from '@nestjs/common';
import { ScheduleModule } from '@nestjs/schedule';
import { SIGNET_CONFIG, SignetConfig } from './config/config';
import { DatabaseModule } from './database/database.module';
import { ObservabilityModule } from './observability/observability.module';

/** What the platform phase (main.ts / tests) resolved before Nest starts. */
export interface RuntimeContext {
  config: SignetConfig;
  databaseUrl: string;
}

@Module({})
export class AppModule {
  static forRoot(runtime: RuntimeContext): DynamicModule {
    return {
      module: AppModule,
      global: true,
      imports: [
        ScheduleModule.forRoot(),
        ObservabilityModule,
        DatabaseModule.forRoot({ url: runtime.databaseUrl, poolSize: runtime.config.database.poolSize }),
      ],
      providers: [{ provide: SIGNET_CONFIG, useValue: runtime.config }],
      exports: [SIGNET_CONFIG],
    };
  }
}
