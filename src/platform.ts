import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Logger } from 'pino';
import { Client } from 'pg';
import { ConfigError, SignetConfig } from './config/config';
import { serviceRoleProblem } from './database/app-role';
import { EmbeddedPostgres } from './database/embedded-postgres';
import { prepareDatabase } from './database/platform-database';
import { HsmOptions } from './hsm/hsm-options';
import { ensureSoftHsmDevToken, findSoftHsmLibrary, readPinFile } from './hsm/softhsm-dev-token';

/**
 * The platform phase, before Nest starts: the data dir, the HSM (a SoftHSM2 token under the data
 * dir when no PKCS#11 module is configured), the database (embedded PostgreSQL when no
 * DATABASE_URL is set) and its migrations. Nothing here serves requests yet.
 */
export interface Platform {
  /** The service role: everything the application does at run time. */
  databaseUrl: string;
  /** The owner role: migrations, grants, and a restore (which must load audit rows wholesale). */
  ownerDatabaseUrl: string;
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

export async function startPlatform(
  config: SignetConfig,
  logger: Logger,
  options: PlatformOptions = {},
): Promise<Platform> {
  fs.mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  const hsm = await resolveHsm(config, logger);
  let embeddedPostgres: EmbeddedPostgres | undefined;
  let databaseUrl = config.database.url;
  let ownerDatabaseUrl = config.database.migrationUrl ?? databaseUrl;
  if (!databaseUrl) {
    embeddedPostgres = new EmbeddedPostgres({
      baseDir: path.join(config.dataDir, 'postgres'),
      port: config.database.embeddedPort,
      log: (level, message) => logger[level]({ component: 'embedded-postgres' }, message),
    });
    const superuserUrl = await embeddedPostgres.start({ attach: options.attach });
    ({ appUrl: databaseUrl, ownerUrl: ownerDatabaseUrl } = await embeddedPostgres.ensureServiceRoles(superuserUrl));
    logger.info(
      { component: 'embedded-postgres', pid: embeddedPostgres.pid },
      `embedded PostgreSQL running with data in ${path.join(config.dataDir, 'postgres')}`,
    );
  }
  const stop = async () => {
    await embeddedPostgres?.stop();
  };
  try {
    const { migrationsApplied, appRole } = await prepareDatabase({
      ownerUrl: ownerDatabaseUrl!,
      appUrl: databaseUrl,
      migrate: config.database.runMigrations,
    });
    if (migrationsApplied.length > 0)
      logger.info({ migrations: migrationsApplied }, `applied ${migrationsApplied.length} migration(s)`);
    if (appRole) logger.info({ component: 'database' }, `granted the service role "${appRole}" its privileges`);
    await checkServiceRole(databaseUrl, config, logger);
    return { databaseUrl, ownerDatabaseUrl: ownerDatabaseUrl!, hsm, embeddedPostgres, migrationsApplied, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/**
 * The role that serves requests must not be able to rewrite the audit log (superuser, BYPASSRLS,
 * REPLICATION, owner of its tables): the start stops with a configuration error naming the
 * problem unless SIGNET_ALLOW_PRIVILEGED_DATABASE_ROLE=true says it is meant.
 */
async function checkServiceRole(url: string, config: SignetConfig, logger: Logger): Promise<void> {
  const client = new Client({ connectionString: url, application_name: 'signet' });
  await client.connect();
  let problem: string | undefined;
  try {
    problem = await serviceRoleProblem(client);
  } finally {
    await client.end().catch(() => undefined);
  }
  if (!problem) return;
  if (config.database.allowPrivilegedRole) {
    logger.warn(
      { component: 'database' },
      `${problem}: it could rewrite the audit log undetected until the next full verify (allowed by SIGNET_ALLOW_PRIVILEGED_DATABASE_ROLE)`,
    );
    return;
  }
  throw new ConfigError(
    config.database.url ? 'DATABASE_URL' : 'SIGNET_DATA_DIR',
    `${problem}; run Signet as a least-privileged role and name the owner role in SIGNET_MIGRATION_DATABASE_URL (README: Production), or set SIGNET_ALLOW_PRIVILEGED_DATABASE_ROLE=true`,
  );
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
    throw new Error(
      'SoftHSM2 is not installed and no SIGNET_PKCS11_MODULE is set: install it (Debian/Ubuntu: apt-get install -y softhsm2; macOS: brew install softhsm) or configure your HSM',
    );
  }
  const token = await ensureSoftHsmDevToken({
    dataDir: config.dataDir,
    label: config.hsm.tokenLabel,
    logger: {
      log: (m: string) => logger.info({ component: 'hsm' }, m),
      warn: (m: string) => logger.warn({ component: 'hsm' }, m),
      error: (m: string) => logger.error({ component: 'hsm' }, m),
    },
  });
  logger.info(
    { component: 'hsm', pinFile: token.pinFile },
    `SoftHSM2 development token '${token.tokenLabel}' in ${path.dirname(token.softhsmConf)}`,
  );
  return { ...common, modulePath: token.modulePath, pin: readPinFile(token.pinFile) };
}
