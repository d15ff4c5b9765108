import { ConfigError, loadConfig } from './config';

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
    const config = loadConfig({ SIGNET_PKCS11_MODULE: '/opt/hsm/lib.so', SIGNET_PKCS11_PIN_FILE: '/run/secrets/pin' });
    expect(config.devBootstrap).toBe(false);
  });

  it('turns the development bootstrap off when an external database is configured', () => {
    expect(loadConfig({ DATABASE_URL: 'postgres://signet@db:5432/signet' }).devBootstrap).toBe(false);
    expect(loadConfig({ DATABASE_URL: 'postgres://signet@db:5432/signet', SIGNET_DEV_BOOTSTRAP: 'true' }).devBootstrap).toBe(true);
  });
});
