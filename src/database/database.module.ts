import { DynamicModule, Global, Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { BootstrapStepsRepository } from './bootstrap-steps.repository';
import { BootstrapService } from './bootstrap.service';
import { ChangeNotifier, DATABASE_URL } from './change-notifier';
import { dataSourceOptions } from './data-source-options';
import { DatabaseHealth } from './database.health';

export interface DatabaseModuleOptions {
  url: string;
  poolSize: number;
}

@Global()
@Module({})
export class DatabaseModule {
  static forRoot(options: DatabaseModuleOptions): DynamicModule {
    return {
      module: DatabaseModule,
      imports: [
        TypeOrmModule.forRoot({
          ...dataSourceOptions(options.url, options.poolSize),
          // Keep starting when the database is briefly away; requests get 503 until it is back.
          retryAttempts: 10,
          retryDelay: 1000,
        }),
      ],
      providers: [
        BootstrapService,
        BootstrapStepsRepository,
        DatabaseHealth,
        ChangeNotifier,
        { provide: DATABASE_URL, useValue: options.url },
      ],
      exports: [BootstrapService, DatabaseHealth, ChangeNotifier, DATABASE_URL],
    };
  }
}
