import * as fs from 'node:fs';
import { isIP } from 'node:net';
import * as path from 'node:path';

/**
 * Signet's whole configuration, read once from the environment at boot. Every value is validated
 * here; a bad one stops the process with one line naming the variable (never echoing secrets).
 */
export interface SignetConfig {
  port: number;
  host: string;
  /** Base URL verifiers use for /pki and /ocsp; written into the certificates Signet issues. */
  publicUrl: string;
  /** TLS for the API listener (the one private key outside the HSM; it signs nothing Signet issues). */
  tls?: { certFile: string; keyFile: string };
  /** With TLS: plain-HTTP listener serving only /pki, /ocsp and /tsa, as verifiers require. */
  publicPort?: number;
  dataDir: string;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  logRequests: boolean;
  /** The built security console (index.html, assets/); unset = dist/console of this installation. */
  consoleDir?: string;
  bodyLimitBytes: number;
  /**
   * Proxies whose X-Forwarded-For names the client (SIGNET_TRUST_PROXY): addresses, CIDR ranges
   * or the names loopback / linklocal / uniquelocal. Empty: the peer address is the client, and
   * X-Forwarded-For is ignored (anyone could write it).
   */
  trustProxy: string[];
  /** Slow or half-open clients are cut off on both listeners (see src/http-timeouts.ts). */
  http: {
    /** Connect (TLS handshake included) to the end of the request headers. */
    headersTimeoutMs: number;
    /** Connect to the end of the request body; also the idle limit of a socket mid-request. */
    requestTimeoutMs: number;
  };
  shutdownTimeoutMs: number;
  /** SIGTERM → /readyz 503 and `Connection: close` on every answer for this long, then the listeners close. */
  drainDelayMs: number;
  database: {
    /** Set when an external PostgreSQL is used; unset means "start the embedded one". The role it names serves requests. */
    url?: string;
    /**
     * The owner role (SIGNET_MIGRATION_DATABASE_URL): runs migrations and grants the service role
     * what it needs (src/database/app-role.ts). Unset: migrations run as the service role.
     */
    migrationUrl?: string;
    /** Start even when the service role is a superuser, has BYPASSRLS/REPLICATION or owns the audit tables. */
    allowPrivilegedRole: boolean;
    embeddedPort?: number;
    runMigrations: boolean;
    poolSize: number;
  };
  hsm: {
    /** Unset means "use SoftHSM2 with a token Signet creates under the data dir". */
    modulePath?: string;
    tokenLabel: string;
    pinFile?: string;
    caTokenLabel?: string;
    caPinFile?: string;
    poolSize?: number;
    /** Signing worker threads (0 = async C_Sign on libuv's pool); 'auto' picks by module. */
    signWorkers: number | 'auto';
    /** Each signing thread on its own instance of the module, sharing the process's, or 'auto' (own for SoftHSM2). */
    signThreadModule: 'own' | 'shared' | 'auto';
    /** Where signing threads write their private copy of the module (default: the OS temp directory). */
    moduleCopyDir?: string;
  };
  metricsPublic: boolean;
  pki: {
    /** CRL validity; CRLs are rebuilt before half of it has passed. */
    crlValidityHours: number;
    /** OCSP response validity (nextUpdate); cached responses are reused for half of it. */
    ocspValidityMinutes: number;
    /** Requests per second per client address on the public /pki, /ocsp and /tsa endpoints. */
    publicRateLimitPerSecond: number;
  };
  /** Create a development CA hierarchy and admin token on first start (embedded defaults). */
  devBootstrap: boolean;
  audit: {
    /** Seconds between periodic HSM-signed checkpoints of the chain head (0 = only on demand). */
    checkpointIntervalSeconds: number;
    /** Hours between scheduled full verifies of the whole kept chain, one replica each time (0 = off). */
    fullVerifyIntervalHours: number;
    /** Drop monthly partitions older than this many days once exported and checkpointed (unset = keep all). */
    retentionDays?: number;
    /** PEM file of extra public keys trusted for checkpoints (e.g. a retired checkpoint key). */
    trustedKeysFile?: string;
  };
  auth: {
    /** How long a verified token is trusted from memory; a revocation reaches other replicas within it. */
    tokenCacheSeconds: number;
    /** Token-bucket refill per token and replica (0 = no rate limit). */
    rateLimitPerSecond: number;
    rateLimitBurst: number;
  };
  /** Security console sessions (POST /v1/sessions). */
  session: {
    /** A session unused this long ends. */
    idleTimeoutSeconds: number;
    /** A session ends this long after sign-in however busy (and never outlives its token). */
    absoluteTimeoutSeconds: number;
    /** Sign-in attempts (POST /v1/sessions) allowed per client address and minute, per replica (a burst of as many). */
    signInsPerMinute: number;
  };
  identity: {
    /** On an ID token whose `kid` the cached JWKS lacks, refetch it at most this often per provider. */
    jwksRefetchSeconds: number;
    /** A fetched JWKS (and discovery document) is used this long, then fetched again: keys an issuer retired stop verifying. */
    jwksMaxAgeSeconds: number;
  };
  signing: {
    /** How long a key's active version is served from memory; change notifications invalidate it sooner. */
    keyCacheSeconds: number;
    /** How long a (token, idempotencyKey) pair returns its first response. */
    idempotencyWindowSeconds: number;
  };
  rotation: {
    /** Seconds between scheduler ticks in this process (0 = this process runs no rotation scheduler). */
    tickSeconds: number;
    /** A scheduled rotation not active this many hours after its due time counts as overdue (metric, status, alert). */
    overdueHours: number;
    /** An issuing CA is renewed this many days before its remaining lifetime would cut leaf lifetimes short. */
    caRenewalMarginDays: number;
    /** Root rollover: hours to wait for required distribution targets before raising an alert (the old hierarchy stays in use). */
    rootGateTimeoutHours: number;
    /** First retry delay after a failed rotation step (doubles per attempt, at most one hour). */
    retrySeconds: number;
    /** `signet status` and metrics flag leaf certificates expiring within this many days. */
    expiryWarningDays: number;
    /** Rotation schedules with two occurrences closer than this many hours are refused (each rotation is a new HSM key and certificate). */
    minIntervalHours: number;
  };
  /** Test-only hooks; refused unless NODE_ENV=test (see loadConfig). */
  testHooks: {
    /** Test endpoints under /v1/test-hooks (inject a rotation tick at a given instant, HSM reconciliation). */
    enabled: boolean;
    /** SIGKILL this process right after the named rotation step commits (crash-safety tests). */
    crashAfterStep?: string;
  };
  distribution: {
    /** Pushes in flight per replica. */
    concurrency: number;
    /** One attempt (read-back, push, read-back) on one target, connect to last byte. */
    attemptTimeoutMs: number;
    /** Exponential backoff per failing target: base, doubled per consecutive failure, capped; with jitter. */
    backoffBaseMs: number;
    backoffMaxMs: number;
    /** How long a claimed target stays leased to one replica (longer than an attempt). */
    leaseSeconds: number;
    /** Schedule: rebuild truststores (expiry, missed events) and reconcile every this many seconds. */
    intervalSeconds: number;
    /** Re-read delivered targets this often to detect drift (0 = never). */
    verifySeconds: number;
    /** Hosts redirects and token realms may lead to, for every target (each target may add its own). */
    allowedHosts: string[];
    /** Targets on loopback addresses (development and tests). */
    allowLoopback: boolean;
  };
  tsa: {
    /** The `tsa`-kind CA whose active key generation signs timestamps. */
    caName: string;
    /** TSAPolicyId written into every TSTInfo. */
    policyOid: string;
    /** TSTInfo accuracy, milliseconds. */
    accuracyMs: number;
    /** Larger queries are answered with a rejection (badDataFormat), not parsed. */
    maxQueryBytes: number;
  };
}

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    readonly problem: string,
  ) {
    super(`${variable}: ${problem}`);
    this.name = 'ConfigError';
  }
}

type Env = Record<string, string | undefined>;

/** Variables that must never carry a secret directly; their *_FILE form is the supported one. */
const FORBIDDEN_SECRET_VARIABLES: Record<string, string> = {
  SIGNET_PKCS11_PIN: 'SIGNET_PKCS11_PIN_FILE',
  SIGNET_PKCS11_CA_PIN: 'SIGNET_PKCS11_CA_PIN_FILE',
};

const SIGN_THREAD_MODULES: ReadonlyArray<SignetConfig['hsm']['signThreadModule']> = ['own', 'shared', 'auto'];

function read(env: Env, name: string): string | undefined {
  const value = env[name];
  if (value === undefined) return undefined;
  const trimmed = value.trim();
  return trimmed === '' ? undefined : trimmed;
}

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = read(env, name);
  if (raw === undefined) return fallback;
  if (!/^\d+$/.test(raw)) throw new ConfigError(name, `must be a whole number between ${min} and ${max}`);
  const value = Number(raw);
  if (value < min || value > max) throw new ConfigError(name, `must be a whole number between ${min} and ${max}`);
  return value;
}

function optionalInteger(env: Env, name: string, min: number, max: number): number | undefined {
  return read(env, name) === undefined ? undefined : integer(env, name, min, min, max);
}

/**
 * A dotted OID whose arcs all fit 31 bits: Go's encoding/asn1 (Notation) refuses larger arcs,
 * which rules out 2.25.<UUID> policy OIDs.
 */
function objectIdentifier(env: Env, name: string, fallback: string): string {
  const raw = read(env, name) ?? fallback;
  const arcs = raw.split('.');
  const valid =
    /^[0-2](\.(0|[1-9]\d{0,9}))+$/.test(raw) && arcs.every((arc) => Number(arc) <= 0x7fffffff) && (arcs[0] === '2' || Number(arcs[1]) < 40);
  if (!valid) throw new ConfigError(name, 'must be a dotted OBJECT IDENTIFIER (e.g. 1.3.6.1.4.1.<your PEN>.…) whose arcs fit 31 bits');
  return raw;
}

const PROXY_RANGE_NAMES = ['loopback', 'linklocal', 'uniquelocal'];

/** Comma-separated addresses, CIDR ranges (v4 /0-32, v6 /0-128) or range names; unset or 'false': none. */
function trustedProxies(env: Env, name: string): string[] {
  const raw = read(env, name);
  if (raw === undefined || raw.toLowerCase() === 'false') return [];
  const entries = raw.split(',').map((entry) => entry.trim());
  for (const entry of entries) {
    const [address, prefix, ...rest] = entry.split('/');
    const family = isIP(address);
    const valid =
      PROXY_RANGE_NAMES.includes(entry) ||
      (family !== 0 && rest.length === 0 && (prefix === undefined || (/^\d{1,3}$/.test(prefix) && Number(prefix) <= (family === 4 ? 32 : 128))));
    if (!valid) {
      throw new ConfigError(
        name,
        `'${entry}' is not an IP address, CIDR range or one of ${PROXY_RANGE_NAMES.join(', ')} (name your proxies: trusting every hop would let any client choose its address)`,
      );
    }
  }
  return entries;
}

function boolean(env: Env, name: string, fallback: boolean): boolean {
  const raw = read(env, name)?.toLowerCase();
  if (raw === undefined) return fallback;
  if (['1', 'true', 'yes', 'on'].includes(raw)) return true;
  if (['0', 'false', 'no', 'off'].includes(raw)) return false;
  throw new ConfigError(name, 'must be true or false');
}

/** Verifiers fetch CRLs and OCSP over plain HTTP only (Notation refuses https for revocation). */
function plainHttpUrl(env: Env, name: string, fallback: string): string {
  const raw = read(env, name) ?? fallback;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(name, 'must be an absolute http:// URL');
  }
  if (url.protocol !== 'http:') {
    throw new ConfigError(name, 'must be an http:// URL: verifiers fetch CRLs and OCSP over plain HTTP (Notation refuses https for revocation)');
  }
  if (url.search || url.hash) throw new ConfigError(name, 'must not contain a query or fragment');
  return raw.replace(/\/+$/, '');
}

function postgresUrl(env: Env, name: string): string | undefined {
  const raw = read(env, name);
  if (raw === undefined) return undefined;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    // Never echo the value: it usually carries a password.
    throw new ConfigError(name, 'must be a postgres:// connection URL');
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') {
    throw new ConfigError(name, 'must be a postgres:// connection URL');
  }
  return raw;
}

/** NAME or NAME_FILE (a file holding the URL, e.g. a container secret); never both read. */
function postgresUrlOrFile(env: Env, name: string, cwd: string): string | undefined {
  const file = secretFile(env, `${name}_FILE`, cwd);
  return file ? postgresUrl({ [`${name}_FILE`]: fs.readFileSync(file, 'utf8') }, `${name}_FILE`) : postgresUrl(env, name);
}

/** A secret file must exist, be readable and non-empty; its content is not kept in the config. */
function secretFile(env: Env, name: string, cwd: string): string | undefined {
  const raw = read(env, name);
  if (raw === undefined) return undefined;
  const file = path.resolve(cwd, raw);
  let content: string;
  try {
    content = fs.readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError(name, `cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  if (content.trim() === '') throw new ConfigError(name, `${file} is empty`);
  return file;
}

/**
 * Hooks that let tests crash the process after a rotation step or inject a scheduler tick. They are
 * refused (the process does not start) unless NODE_ENV=test, so a stray variable in production
 * cannot turn them on.
 */
function readTestHooks(env: Env): SignetConfig['testHooks'] {
  const enabled = boolean(env, 'SIGNET_TEST_HOOKS', false);
  const crashAfterStep = read(env, 'SIGNET_TEST_CRASH_AFTER_STEP');
  for (const [name, set] of [['SIGNET_TEST_HOOKS', enabled], ['SIGNET_TEST_CRASH_AFTER_STEP', crashAfterStep !== undefined]] as const) {
    if (set && env.NODE_ENV !== 'test') throw new ConfigError(name, 'is a test-only hook and is refused unless NODE_ENV=test; remove it');
  }
  if (crashAfterStep !== undefined && !/^[a-z][a-z-]{1,40}$/.test(crashAfterStep)) {
    throw new ConfigError('SIGNET_TEST_CRASH_AFTER_STEP', 'must name a rotation step (e.g. activate)');
  }
  return { enabled, crashAfterStep };
}

/** Comma-separated `host`, `host:port`, `*.domain` or `[v6]:port` entries (checked again by the outbound policy). */
function hostList(env: Env, name: string): string[] {
  const raw = read(env, name);
  if (raw === undefined) return [];
  const entries = raw.split(',').map((entry) => entry.trim()).filter(Boolean);
  const valid = /^(?:(?:\*\.)?[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;
  for (const entry of entries) if (!valid.test(entry)) throw new ConfigError(name, 'must be a comma-separated list of host, host:port or *.domain entries');
  return entries;
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export function loadConfig(env: Env = process.env, cwd: string = process.cwd()): SignetConfig {
  for (const [forbidden, instead] of Object.entries(FORBIDDEN_SECRET_VARIABLES)) {
    if (env[forbidden] !== undefined) {
      throw new ConfigError(forbidden, `PINs are not read from variables (they end up in logs and process listings); put it in a 0600 file and set ${instead}`);
    }
  }

  const port = integer(env, 'SIGNET_PORT', 8080, 1, 65535);
  const tlsCertFile = secretFile(env, 'SIGNET_TLS_CERT_FILE', cwd);
  const tlsKeyFile = secretFile(env, 'SIGNET_TLS_KEY_FILE', cwd);
  if ((tlsCertFile === undefined) !== (tlsKeyFile === undefined)) {
    throw new ConfigError(tlsCertFile ? 'SIGNET_TLS_KEY_FILE' : 'SIGNET_TLS_CERT_FILE', 'is required when the other TLS file is set');
  }
  const tls = tlsCertFile && tlsKeyFile ? { certFile: tlsCertFile, keyFile: tlsKeyFile } : undefined;
  const publicPort = integer(env, 'SIGNET_PUBLIC_HTTP_PORT', 8081, 1, 65535);
  if (tls && publicPort === port) throw new ConfigError('SIGNET_PUBLIC_HTTP_PORT', 'must differ from SIGNET_PORT when TLS is on');
  const host = read(env, 'SIGNET_HOST') ?? '0.0.0.0';
  const signThreadModule = (read(env, 'SIGNET_HSM_SIGN_THREAD_MODULE') ?? 'auto') as SignetConfig['hsm']['signThreadModule'];
  if (!SIGN_THREAD_MODULES.includes(signThreadModule)) {
    throw new ConfigError('SIGNET_HSM_SIGN_THREAD_MODULE', `must be one of ${SIGN_THREAD_MODULES.join(', ')}`);
  }
  const moduleCopyDir = read(env, 'SIGNET_HSM_MODULE_COPY_DIR');
  if (moduleCopyDir !== undefined && !path.isAbsolute(moduleCopyDir)) throw new ConfigError('SIGNET_HSM_MODULE_COPY_DIR', 'must be an absolute path');
  const logLevel = (read(env, 'SIGNET_LOG_LEVEL') ?? 'info') as SignetConfig['logLevel'];
  if (!LOG_LEVELS.includes(logLevel)) throw new ConfigError('SIGNET_LOG_LEVEL', `must be one of ${LOG_LEVELS.join(', ')}`);

  const databaseUrl = postgresUrlOrFile(env, 'DATABASE_URL', cwd);
  const migrationDatabaseUrl = postgresUrlOrFile(env, 'SIGNET_MIGRATION_DATABASE_URL', cwd);
  if (migrationDatabaseUrl !== undefined && databaseUrl === undefined) {
    throw new ConfigError('SIGNET_MIGRATION_DATABASE_URL', 'needs DATABASE_URL (the service role) as well; the embedded database makes both roles itself');
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
      signWorkers: [undefined, 'auto'].includes(read(env, 'SIGNET_HSM_SIGN_WORKERS')) ? 'auto' : integer(env, 'SIGNET_HSM_SIGN_WORKERS', 0, 0, 64),
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
  if (requestTimeoutMs < headersTimeoutMs) throw new ConfigError('SIGNET_HTTP_REQUEST_TIMEOUT_MS', 'must not be less than SIGNET_HTTP_HEADERS_TIMEOUT_MS');
  return { headersTimeoutMs, requestTimeoutMs };
}

function distributionConfig(env: Env, embedded: boolean): SignetConfig['distribution'] {
  const attemptTimeoutMs = integer(env, 'SIGNET_DISTRIBUTION_ATTEMPT_TIMEOUT_MS', 30_000, 100, 600_000);
  const backoffBaseMs = integer(env, 'SIGNET_DISTRIBUTION_BACKOFF_BASE_MS', 1000, 10, 3_600_000);
  const backoffMaxMs = integer(env, 'SIGNET_DISTRIBUTION_BACKOFF_MAX_MS', 300_000, 10, 86_400_000);
  if (backoffMaxMs < backoffBaseMs) throw new ConfigError('SIGNET_DISTRIBUTION_BACKOFF_MAX_MS', 'must not be less than SIGNET_DISTRIBUTION_BACKOFF_BASE_MS');
  const leaseSeconds = integer(env, 'SIGNET_DISTRIBUTION_LEASE_SECONDS', 120, 1, 3600);
  // A lease that ends while its attempt still runs would let a second replica push concurrently.
  if (leaseSeconds * 1000 <= attemptTimeoutMs) throw new ConfigError('SIGNET_DISTRIBUTION_LEASE_SECONDS', 'must be longer than SIGNET_DISTRIBUTION_ATTEMPT_TIMEOUT_MS');
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
