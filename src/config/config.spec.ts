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
  });

  it.each([
    ['SIGNET_PORT', 'abc'],
    ['SIGNET_PORT', '70000'],
    ['SIGNET_PORT', '-1'],
    ['SIGNET_PUBLIC_URL', 'ftp://example.test'],
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
    expect(() => loadConfig({ DATABASE_URL: 'mysql://user:hunter2@db/x' })).toThrow(/^DATABASE_URL: must be a postgres/);
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
    expect(() => loadConfig({ SIGNET_PKCS11_MODULE: '/opt/hsm/lib.so', SIGNET_PKCS11_PIN_FILE: path.join(dir, 'missing') })).toThrow(/^SIGNET_PKCS11_PIN_FILE: cannot read .*missing \(ENOENT\)$/);
    const empty = path.join(dir, 'empty');
    fs.writeFileSync(empty, '');
    expect(() => loadConfig({ SIGNET_PKCS11_MODULE: '/opt/hsm/lib.so', SIGNET_PKCS11_PIN_FILE: empty })).toThrow(/^SIGNET_PKCS11_PIN_FILE: .* is empty$/);
  });

  it('reads DATABASE_URL from DATABASE_URL_FILE (docker secrets)', () => {
    const file = path.join(dir, 'database_url');
    fs.writeFileSync(file, 'postgres://signet:pw@postgres:5432/signet\n');
    expect(loadConfig({ DATABASE_URL_FILE: file }).database.url).toBe('postgres://signet:pw@postgres:5432/signet');
    fs.writeFileSync(file, 'mysql://x');
    expect(() => loadConfig({ DATABASE_URL_FILE: file })).toThrow(/^DATABASE_URL_FILE: must be a postgres/);
  });

  it('turns the development bootstrap off when an external database is configured', () => {
    expect(loadConfig({ DATABASE_URL: 'postgres://signet@db:5432/signet' }).devBootstrap).toBe(false);
    expect(loadConfig({ DATABASE_URL: 'postgres://signet@db:5432/signet', SIGNET_DEV_BOOTSTRAP: 'true' }).devBootstrap).toBe(true);
  });

  it('reads the audit and auth settings with their defaults', () => {
    const defaults = loadConfig({});
    expect(defaults.audit).toEqual({ checkpointIntervalSeconds: 300, retentionDays: undefined, trustedKeysFile: undefined });
    expect(defaults.auth).toEqual({ tokenCacheSeconds: 5, rateLimitPerSecond: 10000, rateLimitBurst: 20000 });
    const set = loadConfig({
      SIGNET_AUDIT_CHECKPOINT_INTERVAL_SECONDS: '0',
      SIGNET_AUDIT_RETENTION_DAYS: '400',
      SIGNET_AUDIT_TRUSTED_KEYS_FILE: '/etc/signet/audit-keys.pem',
      SIGNET_TOKEN_CACHE_SECONDS: '0',
      SIGNET_RATE_LIMIT_PER_SECOND: '50',
    });
    expect(set.audit).toEqual({ checkpointIntervalSeconds: 0, retentionDays: 400, trustedKeysFile: '/etc/signet/audit-keys.pem' });
    // The burst follows the rate unless set.
    expect(set.auth).toEqual({ tokenCacheSeconds: 0, rateLimitPerSecond: 50, rateLimitBurst: 100 });
    expect(loadConfig({ SIGNET_RATE_LIMIT_PER_SECOND: '50', SIGNET_RATE_LIMIT_BURST: '7' }).auth.rateLimitBurst).toBe(7);
  });

  it('reads the TSA settings with their defaults and refuses malformed ones, naming the variable', () => {
    expect(loadConfig({}).tsa).toEqual({ caName: 'signet-dev-tsa', policyOid: '1.3.6.1.4.1.32473.3161.1', accuracyMs: 1000, maxQueryBytes: 4096 });
    const set = loadConfig({ SIGNET_TSA_CA: 'corp-tsa', SIGNET_TSA_POLICY_OID: '1.3.6.1.4.1.99999.1.2', SIGNET_TSA_ACCURACY_MS: '250', SIGNET_TSA_MAX_QUERY_BYTES: '1024' });
    expect(set.tsa).toEqual({ caName: 'corp-tsa', policyOid: '1.3.6.1.4.1.99999.1.2', accuracyMs: 250, maxQueryBytes: 1024 });
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
});
