import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Logger } from 'pino';
import { SignetConfig } from './config/config';
import { EmbeddedPostgres } from './database/embedded-postgres';
import { migrateUnderLock } from './database/platform-database';
import { HsmOptions } from './hsm/hsm-options';
import { ensureSoftHsmDevToken, findSoftHsmLibrary, readPinFile } from './hsm/softhsm-dev-token';

/**
 * The platform phase, before Nest starts: the data dir, the HSM (a SoftHSM2 token under the data
 * dir when no PKCS#11 module is configured), the database (embedded PostgreSQL when no
 * DATABASE_URL is set) and its migrations. Nothing here serves requests yet.
 */
export interface Platform {
  databaseUrl: string;
  /** Holds PINs: never log it. */
  hsm: HsmOptions;
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
  const hsm = await resolveHsm(config, logger);
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
    return { databaseUrl, hsm, embeddedPostgres, migrationsApplied, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** PKCS#11 options: the configured vendor module, or SoftHSM2 with a token Signet creates. */
async function resolveHsm(config: SignetConfig, logger: Logger): Promise<HsmOptions> {
  const common = {
    tokenLabel: config.hsm.tokenLabel,
    poolSize: config.hsm.poolSize,
    caTokenLabel: config.hsm.caTokenLabel,
    signWorkers: config.hsm.signWorkers,
    signThreadModule: config.hsm.signThreadModule,
    moduleCopyDir: config.hsm.moduleCopyDir,
  };
  if (config.hsm.modulePath) {
    return {
      ...common,
      modulePath: config.hsm.modulePath,
      pin: readPinFile(config.hsm.pinFile!),
      caPin: config.hsm.caPinFile ? readPinFile(config.hsm.caPinFile) : undefined,
    };
  }
  if (!findSoftHsmLibrary()) {
    throw new Error('SoftHSM2 is not installed and no SIGNET_PKCS11_MODULE is set: install it (Debian/Ubuntu: apt-get install -y softhsm2; macOS: brew install softhsm) or configure your HSM');
  }
  const token = await ensureSoftHsmDevToken({
    dataDir: config.dataDir,
    label: config.hsm.tokenLabel,
    logger: { log: (m: string) => logger.info({ component: 'hsm' }, m), warn: (m: string) => logger.warn({ component: 'hsm' }, m), error: (m: string) => logger.error({ component: 'hsm' }, m) },
  });
  logger.info({ component: 'hsm', pinFile: token.pinFile }, `SoftHSM2 development token '${token.tokenLabel}' in ${path.dirname(token.softhsmConf)}`);
  return { ...common, modulePath: token.modulePath, pin: readPinFile(token.pinFile) };
}
