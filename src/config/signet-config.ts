/**
 * Signet's whole configuration, read once from the environment at boot by loadConfig (config.ts).
 * Every value is validated there; a bad one stops the process with one line naming the variable
 * (never echoing secrets).
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
