import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * Signet's whole configuration, read once from the environment at boot. Every value is validated
 * here; a bad one stops the process with one line naming the variable (never echoing secrets).
 */
export interface SignetConfig {
  port: number;
  host: string;
  /** Plain-HTTP listener for /pki, /ocsp and /tsa when the API listener uses TLS (0 = same listener). */
  publicUrl: string;
  dataDir: string;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  logRequests: boolean;
  bodyLimitBytes: number;
  shutdownTimeoutMs: number;
  database: {
    /** Set when an external PostgreSQL is used; unset means "start the embedded one". */
    url?: string;
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
  };
  metricsPublic: boolean;
  /** Create a development CA hierarchy and admin token on first start (embedded defaults). */
  devBootstrap: boolean;
  audit: {
    /** Seconds between periodic HSM-signed checkpoints of the chain head (0 = only on demand). */
    checkpointIntervalSeconds: number;
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

function boolean(env: Env, name: string, fallback: boolean): boolean {
  const raw = read(env, name)?.toLowerCase();
  if (raw === undefined) return fallback;
  if (['1', 'true', 'yes', 'on'].includes(raw)) return true;
  if (['0', 'false', 'no', 'off'].includes(raw)) return false;
  throw new ConfigError(name, 'must be true or false');
}

function httpUrl(env: Env, name: string, fallback: string): string {
  const raw = read(env, name) ?? fallback;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(name, 'must be an absolute http:// or https:// URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ConfigError(name, 'must be an absolute http:// or https:// URL');
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

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export function loadConfig(env: Env = process.env, cwd: string = process.cwd()): SignetConfig {
  for (const [forbidden, instead] of Object.entries(FORBIDDEN_SECRET_VARIABLES)) {
    if (env[forbidden] !== undefined) {
      throw new ConfigError(forbidden, `PINs are not read from variables (they end up in logs and process listings); put it in a 0600 file and set ${instead}`);
    }
  }

  const port = integer(env, 'SIGNET_PORT', 8080, 1, 65535);
  const host = read(env, 'SIGNET_HOST') ?? '0.0.0.0';
  const logLevel = (read(env, 'SIGNET_LOG_LEVEL') ?? 'info') as SignetConfig['logLevel'];
  if (!LOG_LEVELS.includes(logLevel)) throw new ConfigError('SIGNET_LOG_LEVEL', `must be one of ${LOG_LEVELS.join(', ')}`);

  const databaseUrlFile = secretFile(env, 'DATABASE_URL_FILE', cwd);
  const databaseUrl = databaseUrlFile
    ? postgresUrl({ DATABASE_URL_FILE: fs.readFileSync(databaseUrlFile, 'utf8') }, 'DATABASE_URL_FILE')
    : postgresUrl(env, 'DATABASE_URL');
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
  const rateLimitPerSecond = integer(env, 'SIGNET_RATE_LIMIT_PER_SECOND', 10000, 0, 1_000_000);
  return {
    port,
    host,
    publicUrl: httpUrl(env, 'SIGNET_PUBLIC_URL', `http://localhost:${port}`),
    dataDir: path.resolve(cwd, read(env, 'SIGNET_DATA_DIR') ?? './data'),
    logLevel,
    logRequests: boolean(env, 'SIGNET_LOG_REQUESTS', true),
    bodyLimitBytes: integer(env, 'SIGNET_BODY_LIMIT_BYTES', 1024 * 1024, 1024, 64 * 1024 * 1024),
    shutdownTimeoutMs: integer(env, 'SIGNET_SHUTDOWN_TIMEOUT_MS', 15000, 0, 600000),
    database: {
      url: databaseUrl,
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
    },
    metricsPublic: boolean(env, 'SIGNET_METRICS_PUBLIC', false),
    devBootstrap: boolean(env, 'SIGNET_DEV_BOOTSTRAP', embedded),
    audit: {
      checkpointIntervalSeconds: integer(env, 'SIGNET_AUDIT_CHECKPOINT_INTERVAL_SECONDS', 300, 0, 86400),
      retentionDays: optionalInteger(env, 'SIGNET_AUDIT_RETENTION_DAYS', 1, 36500),
      trustedKeysFile: read(env, 'SIGNET_AUDIT_TRUSTED_KEYS_FILE'),
    },
    auth: {
      tokenCacheSeconds: integer(env, 'SIGNET_TOKEN_CACHE_SECONDS', 5, 0, 300),
      rateLimitPerSecond,
      rateLimitBurst: integer(env, 'SIGNET_RATE_LIMIT_BURST', Math.max(1, rateLimitPerSecond * 2), 1, 10_000_000),
    },
    tsa: {
      caName: read(env, 'SIGNET_TSA_CA') ?? 'signet-dev-tsa',
      // Default under IANA's documentation enterprise number (RFC 5612); set your own arc in production.
      policyOid: objectIdentifier(env, 'SIGNET_TSA_POLICY_OID', '1.3.6.1.4.1.32473.3161.1'),
      accuracyMs: integer(env, 'SIGNET_TSA_ACCURACY_MS', 1000, 1, 60_000),
      maxQueryBytes: integer(env, 'SIGNET_TSA_MAX_QUERY_BYTES', 4096, 256, 65_536),
    },
  };
}

export const SIGNET_CONFIG = Symbol('SIGNET_CONFIG');
