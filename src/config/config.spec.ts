import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ConfigError, loadConfig } from './config';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'signet-config-'));
const pinFile = path.join(dir, 'pin');
fs.writeFileSync(pinFile, '123456\n', { mode: 0o600 });
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('loadConfig', () => {
  it('applies the documented defaults on an empty environment', () => {
    const config = loadConfig({}, '/srv/signet');
    expect(config.port).toBe(8080);
    expect(config.dataDir).toBe('/srv/signet/data');
    expect(config.publicUrl).toBe('http://localhost:8080');
    expect(config.database.url).toBeUndefined();
    expect(config.database.runMigrations).toBe(true);
    expect(config.hsm.modulePath).toBeUndefined();
    expect(config.devBootstrap).toBe(true);
    expect(config.drainDelayMs).toBe(5000);
  });

  it.each([
    ['SIGNET_PORT', 'abc'],
    ['SIGNET_PORT', '70000'],
    ['SIGNET_PORT', '-1'],
    ['SIGNET_PUBLIC_URL', 'ftp://example.test'],
    ['SIGNET_PUBLIC_URL', 'https://signet.example.test'],
    ['SIGNET_PUBLIC_URL', 'not a url'],
    ['DATABASE_URL', 'mysql://u:p@h/db'],
    ['SIGNET_MIGRATIONS_RUN', 'maybe'],
    ['SIGNET_LOG_LEVEL', 'loud'],
    ['SIGNET_BODY_LIMIT_BYTES', '12kb'],
    ['SIGNET_AUDIT_RETENTION_DAYS', '0'],
    ['SIGNET_AUDIT_CHECKPOINT_INTERVAL_SECONDS', '5m'],
    ['SIGNET_TOKEN_CACHE_SECONDS', '3600'],
    ['SIGNET_RATE_LIMIT_PER_SECOND', '-5'],
    ['SIGNET_RATE_LIMIT_BURST', '0'],
    ['SIGNET_DRAIN_DELAY_MS', '5s'],
  ])('rejects a malformed %s naming the variable', (variable, value) => {
    expect(() => loadConfig({ [variable]: value })).toThrow(ConfigError);
    try {
      loadConfig({ [variable]: value });
    } catch (error) {
      expect((error as ConfigError).variable).toBe(variable);
      expect((error as Error).message.startsWith(`${variable}: `)).toBe(true);
    }
  });

  it('never echoes a malformed DATABASE_URL, which may hold a password', () => {
    expect(() => loadConfig({ DATABASE_URL: 'mysql://user:hunter2@db/x' })).toThrow(
      /^DATABASE_URL: must be a postgres/,
    );
    try {
      loadConfig({ DATABASE_URL: 'mysql://user:hunter2@db/x' });
    } catch (error) {
      expect((error as Error).message).not.toContain('hunter2');
    }
  });

  it('refuses a PIN passed in a variable and points at the file form', () => {
    expect(() => loadConfig({ SIGNET_PKCS11_PIN: '1234' })).toThrow(/SIGNET_PKCS11_PIN: .*SIGNET_PKCS11_PIN_FILE/);
  });

  it('requires a PIN file when a vendor PKCS#11 module is configured', () => {
    expect(() => loadConfig({ SIGNET_PKCS11_MODULE: '/opt/hsm/lib.so' })).toThrow(/^SIGNET_PKCS11_PIN_FILE: /);
    const config = loadConfig({ SIGNET_PKCS11_MODULE: '/opt/hsm/lib.so', SIGNET_PKCS11_PIN_FILE: pinFile });
    expect(config.devBootstrap).toBe(false);
    expect(config.hsm.pinFile).toBe(pinFile);
    expect(JSON.stringify(config)).not.toContain('123456');
  });

  it('stops on an unreadable or empty PIN file, naming the variable but not the PIN', () => {
    expect(() =>
      loadConfig({ SIGNET_PKCS11_MODULE: '/opt/hsm/lib.so', SIGNET_PKCS11_PIN_FILE: path.join(dir, 'missing') }),
    ).toThrow(/^SIGNET_PKCS11_PIN_FILE: cannot read .*missing \(ENOENT\)$/);
    const empty = path.join(dir, 'empty');
    fs.writeFileSync(empty, '');
    expect(() => loadConfig({ SIGNET_PKCS11_MODULE: '/opt/hsm/lib.so', SIGNET_PKCS11_PIN_FILE: empty })).toThrow(
      /^SIGNET_PKCS11_PIN_FILE: .* is empty$/,
    );
  });

  it('reads DATABASE_URL from DATABASE_URL_FILE (docker secrets)', () => {
    const file = path.join(dir, 'database_url');
    fs.writeFileSync(file, 'postgres://signet:pw@postgres:5432/signet\n');
    expect(loadConfig({ DATABASE_URL_FILE: file }).database.url).toBe('postgres://signet:pw@postgres:5432/signet');
    fs.writeFileSync(file, 'mysql://x');
    expect(() => loadConfig({ DATABASE_URL_FILE: file })).toThrow(/^DATABASE_URL_FILE: must be a postgres/);
  });

  it('reads the owner role from SIGNET_MIGRATION_DATABASE_URL or its _FILE, and only next to DATABASE_URL', () => {
    const defaults = loadConfig({ DATABASE_URL: 'postgres://signet_app@db:5432/signet' });
    expect(defaults.database).toMatchObject({
      url: 'postgres://signet_app@db:5432/signet',
      migrationUrl: undefined,
      allowPrivilegedRole: false,
    });
    const file = path.join(dir, 'migration_url');
    fs.writeFileSync(file, 'postgres://signet_owner:pw@db:5432/signet\n', { mode: 0o600 });
    expect(
      loadConfig({ DATABASE_URL: 'postgres://signet_app@db/signet', SIGNET_MIGRATION_DATABASE_URL_FILE: file }).database
        .migrationUrl,
    ).toBe('postgres://signet_owner:pw@db:5432/signet');
    expect(
      loadConfig({
        DATABASE_URL: 'postgres://signet_app@db/signet',
        SIGNET_MIGRATION_DATABASE_URL: 'postgres://o@db/signet',
        SIGNET_ALLOW_PRIVILEGED_DATABASE_ROLE: 'true',
      }).database,
    ).toMatchObject({
      migrationUrl: 'postgres://o@db/signet',
      allowPrivilegedRole: true,
    });
    expect(() => loadConfig({ SIGNET_MIGRATION_DATABASE_URL: 'postgres://o@db/signet' })).toThrow(
      /^SIGNET_MIGRATION_DATABASE_URL: needs DATABASE_URL/,
    );
    expect(() =>
      loadConfig({ DATABASE_URL: 'postgres://a@db/signet', SIGNET_MIGRATION_DATABASE_URL: 'mysql://o:hunter2@db/x' }),
    ).toThrow(/^SIGNET_MIGRATION_DATABASE_URL: must be a postgres:\/\/ connection URL$/);
  });

  it('turns the development bootstrap off when an external database is configured', () => {
    expect(loadConfig({ DATABASE_URL: 'postgres://signet@db:5432/signet' }).devBootstrap).toBe(false);
    expect(
      loadConfig({ DATABASE_URL: 'postgres://signet@db:5432/signet', SIGNET_DEV_BOOTSTRAP: 'true' }).devBootstrap,
    ).toBe(true);
  });

  it('reads the audit and auth settings with their defaults', () => {
    const defaults = loadConfig({});
    expect(defaults.audit).toEqual({
      checkpointIntervalSeconds: 60,
      fullVerifyIntervalHours: 24,
      retentionDays: undefined,
      trustedKeysFile: undefined,
    });
    expect(defaults.auth).toEqual({ tokenCacheSeconds: 5, rateLimitPerSecond: 10000, rateLimitBurst: 20000 });
    const set = loadConfig({
      SIGNET_AUDIT_CHECKPOINT_INTERVAL_SECONDS: '0',
      SIGNET_AUDIT_FULL_VERIFY_INTERVAL_HOURS: '0',
      SIGNET_AUDIT_RETENTION_DAYS: '400',
      SIGNET_AUDIT_TRUSTED_KEYS_FILE: '/etc/signet/audit-keys.pem',
      SIGNET_TOKEN_CACHE_SECONDS: '0',
      SIGNET_RATE_LIMIT_PER_SECOND: '50',
    });
    expect(set.audit).toEqual({
      checkpointIntervalSeconds: 0,
      fullVerifyIntervalHours: 0,
      retentionDays: 400,
      trustedKeysFile: '/etc/signet/audit-keys.pem',
    });
    // The burst follows the rate unless set.
    expect(set.auth).toEqual({ tokenCacheSeconds: 0, rateLimitPerSecond: 50, rateLimitBurst: 100 });
    expect(loadConfig({ SIGNET_RATE_LIMIT_PER_SECOND: '50', SIGNET_RATE_LIMIT_BURST: '7' }).auth.rateLimitBurst).toBe(
      7,
    );
  });

  it('reads the rotation settings with their defaults and refuses malformed ones, naming the variable', () => {
    expect(loadConfig({}).rotation).toEqual({
      tickSeconds: 60,
      overdueHours: 24,
      caRenewalMarginDays: 30,
      rootGateTimeoutHours: 72,
      retrySeconds: 60,
      expiryWarningDays: 30,
      minIntervalHours: 24,
    });
    const set = loadConfig({
      SIGNET_ROTATION_TICK_SECONDS: '0',
      SIGNET_ROTATION_OVERDUE_HOURS: '6',
      SIGNET_CA_RENEWAL_MARGIN_DAYS: '60',
      SIGNET_ROOT_GATE_TIMEOUT_HOURS: '168',
      SIGNET_ROTATION_RETRY_SECONDS: '30',
      SIGNET_EXPIRY_WARNING_DAYS: '45',
      SIGNET_ROTATION_MIN_INTERVAL_HOURS: '168',
    });
    expect(set.rotation).toEqual({
      tickSeconds: 0,
      overdueHours: 6,
      caRenewalMarginDays: 60,
      rootGateTimeoutHours: 168,
      retrySeconds: 30,
      expiryWarningDays: 45,
      minIntervalHours: 168,
    });
    for (const [variable, value] of [
      ['SIGNET_ROTATION_TICK_SECONDS', '1m'],
      ['SIGNET_ROTATION_OVERDUE_HOURS', '0'],
      ['SIGNET_ROOT_GATE_TIMEOUT_HOURS', '-1'],
      ['SIGNET_ROTATION_RETRY_SECONDS', '0'],
      ['SIGNET_EXPIRY_WARNING_DAYS', 'soon'],
      ['SIGNET_ROTATION_MIN_INTERVAL_HOURS', '0'],
      ['SIGNET_ROTATION_MIN_INTERVAL_HOURS', '1d'],
    ]) {
      expect(() => loadConfig({ [variable]: value })).toThrow(new RegExp(`^${variable}: `));
    }
  });

  it('refuses the rotation test hooks unless NODE_ENV=test, so production cannot turn them on', () => {
    expect(loadConfig({}).testHooks).toEqual({ enabled: false, crashAfterStep: undefined });
    expect(() => loadConfig({ SIGNET_TEST_HOOKS: 'true' })).toThrow(
      /^SIGNET_TEST_HOOKS: is a test-only hook and is refused unless NODE_ENV=test/,
    );
    expect(() => loadConfig({ SIGNET_TEST_HOOKS: 'true', NODE_ENV: 'production' })).toThrow(/^SIGNET_TEST_HOOKS: /);
    expect(() => loadConfig({ SIGNET_TEST_CRASH_AFTER_STEP: 'activate', NODE_ENV: 'production' })).toThrow(
      /^SIGNET_TEST_CRASH_AFTER_STEP: /,
    );
    expect(() => loadConfig({ SIGNET_TEST_CRASH_AFTER_STEP: 'rm -rf', NODE_ENV: 'test' })).toThrow(
      /^SIGNET_TEST_CRASH_AFTER_STEP: must name a rotation step/,
    );
    // Off is fine anywhere.
    expect(loadConfig({ SIGNET_TEST_HOOKS: 'false', NODE_ENV: 'production' }).testHooks.enabled).toBe(false);
    expect(
      loadConfig({ NODE_ENV: 'test', SIGNET_TEST_HOOKS: 'true', SIGNET_TEST_CRASH_AFTER_STEP: 'activate' }).testHooks,
    ).toEqual({ enabled: true, crashAfterStep: 'activate' });
  });

  it('reads the TSA settings with their defaults and refuses malformed ones, naming the variable', () => {
    expect(loadConfig({}).tsa).toEqual({
      caName: 'signet-dev-tsa',
      policyOid: '1.3.6.1.4.1.32473.3161.1',
      accuracyMs: 1000,
      maxQueryBytes: 4096,
    });
    const set = loadConfig({
      SIGNET_TSA_CA: 'corp-tsa',
      SIGNET_TSA_POLICY_OID: '1.3.6.1.4.1.99999.1.2',
      SIGNET_TSA_ACCURACY_MS: '250',
      SIGNET_TSA_MAX_QUERY_BYTES: '1024',
    });
    expect(set.tsa).toEqual({
      caName: 'corp-tsa',
      policyOid: '1.3.6.1.4.1.99999.1.2',
      accuracyMs: 250,
      maxQueryBytes: 1024,
    });
    for (const [variable, value] of [
      ['SIGNET_TSA_POLICY_OID', 'not-an-oid'],
      ['SIGNET_TSA_POLICY_OID', '1.40.1'],
      ['SIGNET_TSA_POLICY_OID', '1.3.6.01'],
      // A UUID OID: valid ASN.1, but Go's encoding/asn1 (Notation) cannot parse arcs beyond 31 bits.
      ['SIGNET_TSA_POLICY_OID', '2.25.111991463241431621314025464643630244026'],
      ['SIGNET_TSA_ACCURACY_MS', '0'],
      ['SIGNET_TSA_MAX_QUERY_BYTES', '100'],
    ]) {
      expect(() => loadConfig({ [variable]: value })).toThrow(new RegExp(`^${variable}: `));
    }
  });

  it('reads SIGNET_TRUST_PROXY: none by default or "false"; addresses, CIDR ranges and range names; refuses anything else, including "true"', () => {
    expect(loadConfig({}).trustProxy).toEqual([]);
    expect(loadConfig({ SIGNET_TRUST_PROXY: 'false' }).trustProxy).toEqual([]);
    expect(loadConfig({ SIGNET_TRUST_PROXY: '10.0.0.0/8, 192.0.2.10,fd00::/8, ::1,uniquelocal' }).trustProxy).toEqual([
      '10.0.0.0/8',
      '192.0.2.10',
      'fd00::/8',
      '::1',
      'uniquelocal',
    ]);
    for (const value of [
      'true',
      '*',
      '10.0.0.0/33',
      '::/129',
      '10.0.0.1/8/1',
      '300.1.1.1',
      'nginx',
      '10.0.0.0/',
      '1',
    ]) {
      expect(() => loadConfig({ SIGNET_TRUST_PROXY: value })).toThrow(/^SIGNET_TRUST_PROXY: /);
    }
  });

  it('reads SIGNET_HSM_SIGN_THREAD_MODULE (auto, own, shared) and SIGNET_HSM_MODULE_COPY_DIR (absolute); refuses anything else', () => {
    expect(loadConfig({}).hsm).toMatchObject({ signThreadModule: 'auto', moduleCopyDir: undefined });
    expect(loadConfig({ SIGNET_HSM_SIGN_THREAD_MODULE: 'shared' }).hsm.signThreadModule).toBe('shared');
    expect(
      loadConfig({ SIGNET_HSM_SIGN_THREAD_MODULE: 'own', SIGNET_HSM_MODULE_COPY_DIR: '/var/lib/signet/module' }).hsm,
    ).toMatchObject({
      signThreadModule: 'own',
      moduleCopyDir: '/var/lib/signet/module',
    });
    expect(() => loadConfig({ SIGNET_HSM_SIGN_THREAD_MODULE: 'private' })).toThrow(/^SIGNET_HSM_SIGN_THREAD_MODULE: /);
    expect(() => loadConfig({ SIGNET_HSM_MODULE_COPY_DIR: 'relative/dir' })).toThrow(/^SIGNET_HSM_MODULE_COPY_DIR: /);
  });

  it('reads SIGNET_HSM_SIGN_WORKERS: auto by default, a thread count, or 0 for libuv; refuses anything else', () => {
    expect(loadConfig({}).hsm.signWorkers).toBe('auto');
    expect(loadConfig({ SIGNET_HSM_SIGN_WORKERS: 'auto' }).hsm.signWorkers).toBe('auto');
    expect(loadConfig({ SIGNET_HSM_SIGN_WORKERS: '0' }).hsm.signWorkers).toBe(0);
    expect(loadConfig({ SIGNET_HSM_SIGN_WORKERS: '3' }).hsm.signWorkers).toBe(3);
    for (const value of ['-1', '65', 'two']) {
      expect(() => loadConfig({ SIGNET_HSM_SIGN_WORKERS: value })).toThrow(/^SIGNET_HSM_SIGN_WORKERS: /);
    }
  });

  it('reads the signing settings with their defaults and refuses malformed ones, naming the variable', () => {
    expect(loadConfig({}).signing).toEqual({ keyCacheSeconds: 10, idempotencyWindowSeconds: 86400 });
    expect(
      loadConfig({ SIGNET_SIGN_KEY_CACHE_SECONDS: '2', SIGNET_SIGN_IDEMPOTENCY_WINDOW_SECONDS: '3600' }).signing,
    ).toEqual({ keyCacheSeconds: 2, idempotencyWindowSeconds: 3600 });
    for (const [variable, value] of [
      ['SIGNET_SIGN_KEY_CACHE_SECONDS', '0'],
      ['SIGNET_SIGN_KEY_CACHE_SECONDS', '10s'],
      ['SIGNET_SIGN_IDEMPOTENCY_WINDOW_SECONDS', '59'],
      ['SIGNET_SIGN_IDEMPOTENCY_WINDOW_SECONDS', '99999999'],
    ]) {
      expect(() => loadConfig({ [variable]: value })).toThrow(new RegExp(`^${variable}: `));
    }
  });
});

describe('loadConfig: distribution settings', () => {
  it('reads the distribution settings with their defaults; loopback targets only on embedded defaults', () => {
    expect(loadConfig({}).distribution).toEqual({
      concurrency: 16,
      attemptTimeoutMs: 30_000,
      backoffBaseMs: 1000,
      backoffMaxMs: 300_000,
      leaseSeconds: 120,
      intervalSeconds: 30,
      verifySeconds: 900,
      allowedHosts: [],
      allowLoopback: true,
    });
    expect(loadConfig({ DATABASE_URL: 'postgres://db/signet' }).distribution.allowLoopback).toBe(false);
    const set = loadConfig({
      SIGNET_DISTRIBUTION_CONCURRENCY: '4',
      SIGNET_DISTRIBUTION_ATTEMPT_TIMEOUT_MS: '5000',
      SIGNET_DISTRIBUTION_BACKOFF_BASE_MS: '200',
      SIGNET_DISTRIBUTION_BACKOFF_MAX_MS: '10000',
      SIGNET_DISTRIBUTION_LEASE_SECONDS: '30',
      SIGNET_DISTRIBUTION_INTERVAL_SECONDS: '5',
      SIGNET_DISTRIBUTION_VERIFY_SECONDS: '0',
      SIGNET_DISTRIBUTION_ALLOWED_HOSTS:
        'auth.example.com, *.blob.core.windows.net ,registry.example.com:5000,[::1]:8443',
      SIGNET_DISTRIBUTION_ALLOW_LOOPBACK: 'false',
    });
    expect(set.distribution).toEqual({
      concurrency: 4,
      attemptTimeoutMs: 5000,
      backoffBaseMs: 200,
      backoffMaxMs: 10_000,
      leaseSeconds: 30,
      intervalSeconds: 5,
      verifySeconds: 0,
      allowedHosts: ['auth.example.com', '*.blob.core.windows.net', 'registry.example.com:5000', '[::1]:8443'],
      allowLoopback: false,
    });
  });

  it.each([
    ['SIGNET_DISTRIBUTION_CONCURRENCY', '0'],
    ['SIGNET_DISTRIBUTION_ATTEMPT_TIMEOUT_MS', '30s'],
    ['SIGNET_DISTRIBUTION_BACKOFF_MAX_MS', '5', { SIGNET_DISTRIBUTION_BACKOFF_BASE_MS: '100' }],
    ['SIGNET_DISTRIBUTION_LEASE_SECONDS', '30', { SIGNET_DISTRIBUTION_ATTEMPT_TIMEOUT_MS: '30000' }],
    ['SIGNET_DISTRIBUTION_INTERVAL_SECONDS', '0'],
    ['SIGNET_DISTRIBUTION_ALLOWED_HOSTS', 'https://auth.example.com/token'],
    ['SIGNET_DISTRIBUTION_ALLOWED_HOSTS', 'a.example.com, bad host'],
    ['SIGNET_DISTRIBUTION_ALLOW_LOOPBACK', 'sometimes'],
  ] as Array<[string, string, Record<string, string>?]>)(
    'rejects %s=%s naming the variable',
    (variable, value, extra = {}) => {
      expect(() => loadConfig({ ...extra, [variable]: value })).toThrow(new RegExp(`^${variable}: `));
    },
  );

  it('reads the HTTP header and request timeouts (15 s and 30 s by default) and refuses a request timeout shorter than the header timeout', () => {
    expect(loadConfig({}).http).toEqual({ headersTimeoutMs: 15_000, requestTimeoutMs: 30_000 });
    expect(loadConfig({ SIGNET_HTTP_HEADERS_TIMEOUT_MS: '1000', SIGNET_HTTP_REQUEST_TIMEOUT_MS: '2000' }).http).toEqual(
      { headersTimeoutMs: 1000, requestTimeoutMs: 2000 },
    );
    expect(() =>
      loadConfig({ SIGNET_HTTP_HEADERS_TIMEOUT_MS: '20000', SIGNET_HTTP_REQUEST_TIMEOUT_MS: '10000' }),
    ).toThrow(/^SIGNET_HTTP_REQUEST_TIMEOUT_MS: must not be less than SIGNET_HTTP_HEADERS_TIMEOUT_MS/);
    expect(() => loadConfig({ SIGNET_HTTP_HEADERS_TIMEOUT_MS: '10' })).toThrow(/^SIGNET_HTTP_HEADERS_TIMEOUT_MS: /);
    expect(() => loadConfig({ SIGNET_HTTP_REQUEST_TIMEOUT_MS: '30s' })).toThrow(/^SIGNET_HTTP_REQUEST_TIMEOUT_MS: /);
  });

  it('takes TLS files only as a pair and then serves /pki, /ocsp and /tsa on a separate plain-HTTP port', () => {
    expect(() => loadConfig({ SIGNET_TLS_CERT_FILE: pinFile })).toThrow(/^SIGNET_TLS_KEY_FILE: is required/);
    const config = loadConfig({ SIGNET_TLS_CERT_FILE: pinFile, SIGNET_TLS_KEY_FILE: pinFile, SIGNET_PORT: '8443' });
    expect(config.tls).toEqual({ certFile: pinFile, keyFile: pinFile });
    expect(config.publicPort).toBe(8081);
    expect(config.publicUrl).toBe('http://localhost:8081');
    expect(() =>
      loadConfig({ SIGNET_TLS_CERT_FILE: pinFile, SIGNET_TLS_KEY_FILE: pinFile, SIGNET_PUBLIC_HTTP_PORT: '8080' }),
    ).toThrow(/^SIGNET_PUBLIC_HTTP_PORT: /);
    expect(loadConfig({}).tls).toBeUndefined();
  });
});
