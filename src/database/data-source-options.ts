import * as path from 'node:path';
import { DataSourceOptions } from 'typeorm';

/**
 * The one DataSource definition, shared by the app (DatabaseModule) and the TypeORM CLI
 * (ormconfig.ts). Entities and migrations are found by file name so each module brings its own;
 * the globs match the .ts sources under ts-node/jest and the compiled .js under dist/.
 */
export function dataSourceOptions(url: string, poolSize = 10): DataSourceOptions {
  const srcRoot = path.resolve(__dirname, '..');
  const projectRoot = path.resolve(srcRoot, '..');
  const ext = path.extname(__filename) === '.ts' ? 'ts' : 'js';
  return {
    type: 'postgres',
    url,
    entities: [path.join(srcRoot, '**', `*.entity.${ext}`)],
    migrations: [path.join(projectRoot, 'migrations', `*.${ext}`)],
    migrationsTableName: 'typeorm_migrations',
    synchronize: false,
    migrationsRun: false,
    logging: false,
    extra: {
      max: poolSize,
      // A database outage must fail requests fast (503), not queue them behind a dead socket.
      connectionTimeoutMillis: 3000,
      idleTimeoutMillis: 30000,
      application_name: 'signet',
    },
  };
}
