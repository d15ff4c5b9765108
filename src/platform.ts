import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Logger } from 'pino';
import { SignetConfig } from './config/config';
import { EmbeddedPostgres } from './database/embedded-postgres';
import { migrateUnderLock } from './database/platform-database';

/**
 * The platform phase, before Nest starts: the data dir, the database (embedded PostgreSQL when no
 * DATABASE_URL is set) and its migrations. Nothing here serves requests yet.
 */
export interface Platform {
  databaseUrl: string;
  embeddedPostgres?: EmbeddedPostgres;
  migrationsApplied: string[];
  stop(): Promise<void>;
}

export interface PlatformOptions {
  /** CLI use: attach to the embedded PostgreSQL of a running Signet instead of refusing. */
  attach?: boolean;
}

export async function startPlatform(config: SignetConfig, logger: Logger, options: PlatformOptions = {}): Promise<Platform> {
  fs.mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  let embeddedPostgres: EmbeddedPostgres | undefined;
  let databaseUrl = config.database.url;
  if (!databaseUrl) {
    embeddedPostgres = new EmbeddedPostgres({
      baseDir: path.join(config.dataDir, 'postgres'),
      port: config.database.embeddedPort,
      log: (level, message) => logger[level]({ component: 'embedded-postgres' }, message),
    });
    databaseUrl = await embeddedPostgres.start({ attach: options.attach });
    logger.info({ component: 'embedded-postgres', pid: embeddedPostgres.pid }, `embedded PostgreSQL running with data in ${path.join(config.dataDir, 'postgres')}`);
  }
  const stop = async () => {
    await embeddedPostgres?.stop();
  };
  try {
    const migrationsApplied = config.database.runMigrations ? await migrateUnderLock(databaseUrl) : [];
    if (migrationsApplied.length > 0) logger.info({ migrations: migrationsApplied }, `applied ${migrationsApplied.length} migration(s)`);
    return { databaseUrl, embeddedPostgres, migrationsApplied, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
