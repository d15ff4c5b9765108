import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createTestDatabase, query, TEST_APP_ROLE, TestDatabase } from '../support/database';
import { ensureBuilt, PROJECT_ROOT, tempDir } from '../support/server-process';

/**
 * `signet migrate` (the Kubernetes migration Job's command): applies pending migrations to an
 * external PostgreSQL and exits, without an HSM, and is a no-op the second time.
 */
describe('signet migrate', () => {
  let database: TestDatabase;
  let dataDir: string;

  beforeAll(async () => {
    ensureBuilt();
    database = await createTestDatabase({ migrate: false });
    dataDir = tempDir('migrate-data-');
  });
  afterAll(() => database.drop());

  function signet(...args: string[]) {
    const result = spawnSync(path.join(PROJECT_ROOT, 'bin', 'signet'), args, {
      encoding: 'utf8',
      // A PKCS#11 module that does not exist: the command must not open the HSM.
      // The owner role migrates; the service role (DATABASE_URL) is granted its privileges.
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? '/root',
        DATABASE_URL: database.url,
        SIGNET_MIGRATION_DATABASE_URL: database.ownerUrl,
        SIGNET_DATA_DIR: dataDir,
        SIGNET_PKCS11_MODULE: '/nonexistent/libvendor-pkcs11.so',
        SIGNET_PKCS11_PIN_FILE: pinFile(),
      },
    });
    return { code: result.status, stdout: result.stdout, stderr: result.stderr };
  }
  function pinFile(): string {
    const file = path.join(dataDir, 'pin');
    if (!fs.existsSync(file)) fs.writeFileSync(file, '1234', { mode: 0o600 });
    return file;
  }

  it('applies every migration to an empty database, without the HSM, then finds nothing to do', async () => {
    const expected = fs.readdirSync(path.join(PROJECT_ROOT, 'migrations')).filter((f) => /^\d+-.+\.ts$/.test(f)).length;
    const first = signet('migrate');
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(
      new RegExp(
        `^migrations: applied ${expected}: .*\ngrants: the service role "${TEST_APP_ROLE}" has its privileges\n$`,
      ),
    );
    const [granted] = await query<{ insert: boolean; update: boolean }>(
      database.adminUrl,
      `SELECT has_table_privilege($1, 'audit_events', 'INSERT') AS insert, has_table_privilege($1, 'audit_events', 'UPDATE') AS update`,
      [TEST_APP_ROLE],
    );
    expect(granted).toEqual({ insert: true, update: false });
    const rows = await query<{ count: number }>(database.url, 'SELECT count(*)::int AS count FROM typeorm_migrations');
    expect(rows[0].count).toBe(expected);
    expect(await query(database.url, "SELECT to_regclass('audit_events') AS t")).toEqual([{ t: 'audit_events' }]);

    const second = signet('migrate');
    expect(second.code).toBe(0);
    expect(second.stdout.trim().split('\n')[0]).toBe('migrations: the database is up to date');
  });

  it('is listed in signet --help', () => {
    expect(signet('--help').stdout).toMatch(/^ {2}migrate +apply pending database migrations/m);
  });
});
