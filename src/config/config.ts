/**
 * loadConfig: every setting of Signet from the environment, with its default and bounds, in one
 * function. The shape is in signet-config.ts, the per-variable readers in env-readers.ts.
 */
import * as path from 'node:path';
import {
  ConfigError,
  Env,
  boolean,
  hostList,
  integer,
  objectIdentifier,
  optionalInteger,
  plainHttpUrl,
  postgresUrlOrFile,
  read,
  secretFile,
  trustedProxies,
} from './env-readers';
import type { SignetConfig } from './signet-config';

export { ConfigError } from './env-readers';
export type { SignetConfig } from './signet-config';

/** Variables that must never carry a secret directly; their *_FILE form is the supported one. */
const FORBIDDEN_SECRET_VARIABLES: Record<string, string> = {
  SIGNET_PKCS11_PIN: 'SIGNET_PKCS11_PIN_FILE',
  SIGNET_PKCS11_CA_PIN: 'SIGNET_PKCS11_CA_PIN_FILE',
};

const SIGN_THREAD_MODULES: ReadonlyArray<SignetConfig['hsm']['signThreadModule']> = ['own', 'shared', 'auto'];

/**
 * Hooks that let tests crash the process after a rotation step or inject a scheduler tick. They are
 * refused (the process does not start) unless NODE_ENV=test, so a stray variable in production
 * cannot turn them on.
 */
function readTestHooks(env: Env): SignetConfig['testHooks'] {
  const enabled = boolean(env, 'SIGNET_TEST_HOOKS', false);
  const crashAfterStep = read(env, 'SIGNET_TEST_CRASH_AFTER_STEP');
  for (const [name, set] of [
    ['SIGNET_TEST_HOOKS', enabled],
    ['SIGNET_TEST_CRASH_AFTER_STEP', crashAfterStep !== undefined],
  ] as const) {
    if (set && env.NODE_ENV !== 'test')
      throw new ConfigError(name, 'is a test-only hook and is refused unless NODE_ENV=test; remove it');
  }
  if (crashAfterStep !== undefined && !/^[a-z][a-z-]{1,40}$/.test(crashAfterStep)) {
    throw new ConfigError('SIGNET_TEST_CRASH_AFTER_STEP', 'must name a rotation step (e.g. activate)');
  }
  return { enabled, crashAfterStep };
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export function loadConfig(env: Env = process.env, cwd: string = process.cwd()): SignetConfig {
  for (const [forbidden, instead] of Object.entries(FORBIDDEN_SECRET_VARIABLES)) {
    if (env[forbidden] !== undefined) {
      throw new ConfigError(
        forbidden,
        `PINs are not read from variables (they end up in logs and process listings); put it in a 0600 file and set ${instead}`,
      );
    }
  }

  const port = integer(env, 'SIGNET_PORT', 8080, 1, 65535);
  const tlsCertFile = secretFile(env, 'SIGNET_TLS_CERT_FILE', cwd);
  const tlsKeyFile = secretFile(env, 'SIGNET_TLS_KEY_FILE', cwd);
  if ((tlsCertFile === undefined) !== (tlsKeyFile === undefined)) {
    throw new ConfigError(
      tlsCertFile ? 'SIGNET_TLS_KEY_FILE' : 'SIGNET_TLS_CERT_FILE',
      'is required when the other TLS file is set',
    );
  }
  const tls = tlsCertFile && tlsKeyFile ? { certFile: tlsCertFile, keyFile: tlsKeyFile } : undefined;
  const publicPort = integer(env, 'SIGNET_PUBLIC_HTTP_PORT', 8081, 1, 65535);
  if (tls && publicPort === port)
    throw new ConfigError('SIGNET_PUBLIC_HTTP_PORT', 'must differ from SIGNET_PORT when TLS is on');
  const host = read(env, 'SIGNET_HOST') ?? '0.0.0.0';
  const signThreadModule = (read(env, 'SIGNET_HSM_SIGN_THREAD_MODULE') ??
    'auto') as SignetConfig['hsm']['signThreadModule'];
  if (!SIGN_THREAD_MODULES.includes(signThreadModule)) {
    throw new ConfigError('SIGNET_HSM_SIGN_THREAD_MODULE', `must be one of ${SIGN_THREAD_MODULES.join(', ')}`);
  }
  const moduleCopyDir = read(env, 'SIGNET_HSM_MODULE_COPY_DIR');
  if (moduleCopyDir !== undefined && !path.isAbsolute(moduleCopyDir))
    throw new ConfigError('SIGNET_HSM_MODULE_COPY_DIR', 'must be an absolute path');
  const logLevel = (read(env, 'SIGNET_LOG_LEVEL') ?? 'info') as SignetConfig['logLevel'];
  if (!LOG_LEVELS.includes(logLevel))
    throw new ConfigError('SIGNET_LOG_LEVEL', `must be one of ${LOG_LEVELS.join(', ')}`);

  const databaseUrl = postgresUrlOrFile(env, 'DATABASE_URL', cwd);
  const migrationDatabaseUrl = postgresUrlOrFile(env, 'SIGNET_MIGRATION_DATABASE_URL', cwd);
  if (migrationDatabaseUrl !== undefined && databaseUrl === undefined) {
    throw new ConfigError(
      'SIGNET_MIGRATION_DATABASE_URL',
      'needs DATABASE_URL (the service role) as well; the embedded database makes both roles itself',
    );
  }
  const modulePath = read(env, 'SIGNET_PKCS11_MODULE');
  const pinFile = secretFile(env, 'SIGNET_PKCS11_PIN_FILE', cwd);
  if (modulePath && !pinFile) {
    throw new ConfigError('SIGNET_PKCS11_PIN_FILE', 'is required when SIGNET_PKCS11_MODULE is set');
  }
  const caTokenLabel = read(env, 'SIGNET_PKCS11_CA_TOKEN_LABEL');
  const caPinFile = secretFile(env, 'SIGNET_PKCS11_CA_PIN_FILE', cwd);
  if (caTokenLabel && !caPinFile && modulePath) {
    throw new ConfigError('SIGNET_PKCS11_CA_PIN_FILE', 'is required when SIGNET_PKCS11_CA_TOKEN_LABEL is set');
  }

  const embedded = databaseUrl === undefined && modulePath === undefined;
  const testHooks = readTestHooks(env);
  const rateLimitPerSecond = integer(env, 'SIGNET_RATE_LIMIT_PER_SECOND', 10000, 0, 1_000_000);
  return {
    port,
    host,
    publicUrl: plainHttpUrl(env, 'SIGNET_PUBLIC_URL', `http://localhost:${tls ? publicPort : port}`),
    tls,
    publicPort: tls ? publicPort : undefined,
    dataDir: path.resolve(cwd, read(env, 'SIGNET_DATA_DIR') ?? './data'),
    logLevel,
    logRequests: boolean(env, 'SIGNET_LOG_REQUESTS', true),
    consoleDir: read(env, 'SIGNET_CONSOLE_DIR'),
    bodyLimitBytes: integer(env, 'SIGNET_BODY_LIMIT_BYTES', 1024 * 1024, 1024, 64 * 1024 * 1024),
    trustProxy: trustedProxies(env, 'SIGNET_TRUST_PROXY'),
    http: httpTimeouts(env),
    shutdownTimeoutMs: integer(env, 'SIGNET_SHUTDOWN_TIMEOUT_MS', 15000, 0, 600000),
    drainDelayMs: integer(env, 'SIGNET_DRAIN_DELAY_MS', 5000, 0, 600000),
    database: {
      url: databaseUrl,
      migrationUrl: migrationDatabaseUrl,
      allowPrivilegedRole: boolean(env, 'SIGNET_ALLOW_PRIVILEGED_DATABASE_ROLE', false),
      embeddedPort: optionalInteger(env, 'SIGNET_EMBEDDED_PG_PORT', 1, 65535),
      runMigrations: boolean(env, 'SIGNET_MIGRATIONS_RUN', true),
      poolSize: integer(env, 'SIGNET_DB_POOL_SIZE', 10, 1, 200),
    },
    hsm: {
      modulePath,
      tokenLabel: read(env, 'SIGNET_PKCS11_TOKEN_LABEL') ?? 'signet',
      pinFile,
      caTokenLabel,
      caPinFile,
      poolSize: optionalInteger(env, 'SIGNET_HSM_POOL_SIZE', 1, 1024),
      signWorkers: [undefined, 'auto'].includes(read(env, 'SIGNET_HSM_SIGN_WORKERS'))
        ? 'auto'
        : integer(env, 'SIGNET_HSM_SIGN_WORKERS', 0, 0, 64),
      signThreadModule,
      moduleCopyDir,
    },
    metricsPublic: boolean(env, 'SIGNET_METRICS_PUBLIC', false),
    pki: {
      crlValidityHours: integer(env, 'SIGNET_CRL_VALIDITY_HOURS', 24, 1, 24 * 30),
      ocspValidityMinutes: integer(env, 'SIGNET_OCSP_VALIDITY_MINUTES', 60, 1, 7 * 24 * 60),
      publicRateLimitPerSecond: integer(env, 'SIGNET_PUBLIC_RATE_LIMIT_PER_SECOND', 500, 1, 1_000_000),
    },
    devBootstrap: boolean(env, 'SIGNET_DEV_BOOTSTRAP', embedded),
    audit: {
      checkpointIntervalSeconds: integer(env, 'SIGNET_AUDIT_CHECKPOINT_INTERVAL_SECONDS', 60, 0, 86400),
      fullVerifyIntervalHours: integer(env, 'SIGNET_AUDIT_FULL_VERIFY_INTERVAL_HOURS', 24, 0, 24 * 365),
      retentionDays: optionalInteger(env, 'SIGNET_AUDIT_RETENTION_DAYS', 1, 36500),
      trustedKeysFile: read(env, 'SIGNET_AUDIT_TRUSTED_KEYS_FILE'),
    },
    auth: {
      tokenCacheSeconds: integer(env, 'SIGNET_TOKEN_CACHE_SECONDS', 5, 0, 300),
      rateLimitPerSecond,
      rateLimitBurst: integer(env, 'SIGNET_RATE_LIMIT_BURST', Math.max(1, rateLimitPerSecond * 2), 1, 10_000_000),
    },
    session: {
      idleTimeoutSeconds: integer(env, 'SIGNET_SESSION_IDLE_TIMEOUT_SECONDS', 900, 1, 86400),
      absoluteTimeoutSeconds: integer(env, 'SIGNET_SESSION_ABSOLUTE_TIMEOUT_SECONDS', 28800, 1, 7 * 86400),
      signInsPerMinute: integer(env, 'SIGNET_SESSION_SIGNINS_PER_MINUTE', 10, 1, 10_000),
    },
    identity: {
      jwksRefetchSeconds: integer(env, 'SIGNET_OIDC_JWKS_REFETCH_SECONDS', 60, 1, 3600),
      jwksMaxAgeSeconds: integer(env, 'SIGNET_OIDC_JWKS_MAX_AGE_SECONDS', 600, 10, 86400),
    },
    signing: {
      keyCacheSeconds: integer(env, 'SIGNET_SIGN_KEY_CACHE_SECONDS', 10, 1, 300),
      idempotencyWindowSeconds: integer(env, 'SIGNET_SIGN_IDEMPOTENCY_WINDOW_SECONDS', 86400, 60, 30 * 86400),
    },
    rotation: {
      tickSeconds: integer(env, 'SIGNET_ROTATION_TICK_SECONDS', 60, 0, 86400),
      overdueHours: integer(env, 'SIGNET_ROTATION_OVERDUE_HOURS', 24, 1, 24 * 365),
      caRenewalMarginDays: integer(env, 'SIGNET_CA_RENEWAL_MARGIN_DAYS', 30, 0, 3650),
      rootGateTimeoutHours: integer(env, 'SIGNET_ROOT_GATE_TIMEOUT_HOURS', 72, 1, 24 * 365),
      retrySeconds: integer(env, 'SIGNET_ROTATION_RETRY_SECONDS', 60, 1, 86400),
      expiryWarningDays: integer(env, 'SIGNET_EXPIRY_WARNING_DAYS', 30, 1, 3650),
      minIntervalHours: integer(env, 'SIGNET_ROTATION_MIN_INTERVAL_HOURS', 24, 1, 24 * 366),
    },
    testHooks,
    distribution: distributionConfig(env, embedded),
    tsa: {
      caName: read(env, 'SIGNET_TSA_CA') ?? 'signet-dev-tsa',
      // Default under IANA's documentation enterprise number (RFC 5612); set your own arc in production.
      policyOid: objectIdentifier(env, 'SIGNET_TSA_POLICY_OID', '1.3.6.1.4.1.32473.3161.1'),
      accuracyMs: integer(env, 'SIGNET_TSA_ACCURACY_MS', 1000, 1, 60_000),
      maxQueryBytes: integer(env, 'SIGNET_TSA_MAX_QUERY_BYTES', 4096, 256, 65_536),
    },
  };
}

function httpTimeouts(env: Env): SignetConfig['http'] {
  const headersTimeoutMs = integer(env, 'SIGNET_HTTP_HEADERS_TIMEOUT_MS', 15_000, 500, 600_000);
  const requestTimeoutMs = integer(env, 'SIGNET_HTTP_REQUEST_TIMEOUT_MS', 30_000, 500, 3_600_000);
  // Node refuses a header timeout longer than the request's (the headers are part of the request).
  if (requestTimeoutMs < headersTimeoutMs)
    throw new ConfigError('SIGNET_HTTP_REQUEST_TIMEOUT_MS', 'must not be less than SIGNET_HTTP_HEADERS_TIMEOUT_MS');
  return { headersTimeoutMs, requestTimeoutMs };
}

function distributionConfig(env: Env, embedded: boolean): SignetConfig['distribution'] {
  const attemptTimeoutMs = integer(env, 'SIGNET_DISTRIBUTION_ATTEMPT_TIMEOUT_MS', 30_000, 100, 600_000);
  const backoffBaseMs = integer(env, 'SIGNET_DISTRIBUTION_BACKOFF_BASE_MS', 1000, 10, 3_600_000);
  const backoffMaxMs = integer(env, 'SIGNET_DISTRIBUTION_BACKOFF_MAX_MS', 300_000, 10, 86_400_000);
  if (backoffMaxMs < backoffBaseMs)
    throw new ConfigError(
      'SIGNET_DISTRIBUTION_BACKOFF_MAX_MS',
      'must not be less than SIGNET_DISTRIBUTION_BACKOFF_BASE_MS',
    );
  const leaseSeconds = integer(env, 'SIGNET_DISTRIBUTION_LEASE_SECONDS', 120, 1, 3600);
  // A lease that ends while its attempt still runs would let a second replica push concurrently.
  if (leaseSeconds * 1000 <= attemptTimeoutMs)
    throw new ConfigError(
      'SIGNET_DISTRIBUTION_LEASE_SECONDS',
      'must be longer than SIGNET_DISTRIBUTION_ATTEMPT_TIMEOUT_MS',
    );
  return {
    concurrency: integer(env, 'SIGNET_DISTRIBUTION_CONCURRENCY', 16, 1, 256),
    attemptTimeoutMs,
    backoffBaseMs,
    backoffMaxMs,
    leaseSeconds,
    intervalSeconds: integer(env, 'SIGNET_DISTRIBUTION_INTERVAL_SECONDS', 30, 1, 3600),
    verifySeconds: integer(env, 'SIGNET_DISTRIBUTION_VERIFY_SECONDS', 900, 0, 604_800),
    allowedHosts: hostList(env, 'SIGNET_DISTRIBUTION_ALLOWED_HOSTS'),
    allowLoopback: boolean(env, 'SIGNET_DISTRIBUTION_ALLOW_LOOPBACK', embedded),
  };
}

export const SIGNET_CONFIG = Symbol('SIGNET_CONFIG');

/**
 * Names of every environment variable loadConfig reads, found by running it over an empty
 * environment that records each name asked for (every variable is read there, defaults apply),
 * so the list cannot drift from the code. The forbidden PIN variables are left out. For
 * deployment checks (deploy/kubernetes sets only variables Signet reads).
 */
export function configVariableNames(): string[] {
  const asked = new Set<string>();
  const env = new Proxy({} as Env, {
    get(_target, name) {
      if (typeof name === 'string') asked.add(name);
      return undefined;
    },
  });
  loadConfig(env, '/');
  return [...asked].filter((name) => !(name in FORBIDDEN_SECRET_VARIABLES)).sort();
}
