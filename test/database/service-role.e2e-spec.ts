import * as path from 'node:path';
import { Writable } from 'node:stream';
import { Client } from 'pg';
import { ConfigError, loadConfig } from '../../src/config/config';
import { EMBEDDED_APP_ROLE, EMBEDDED_OWNER_ROLE, EmbeddedPostgres } from '../../src/database/embedded-postgres';
import { migrateUnderLock } from '../../src/database/platform-database';
import { createLogger } from '../../src/observability/logger';
import { startPlatform } from '../../src/platform';
import { createTestDatabase, query, TEST_APP_ROLE, TEST_OWNER_ROLE, TestDatabase } from '../support/database';
import { ensureBuilt, freePort, ServerProcess, tempDir } from '../support/server-process';

function capture(): { lines: string[]; logger: ReturnType<typeof createLogger> } {
  const lines: string[] = [];
  return {
    lines,
    logger: createLogger('info', new Writable({ write: (chunk, _e, done) => (lines.push(chunk.toString()), done()) })),
  };
}

async function whoAmI(url: string): Promise<{ name: string; superuser: boolean }> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    return (
      await client.query(
        'SELECT current_user AS name, rolsuper AS superuser FROM pg_roles WHERE rolname = current_user',
      )
    ).rows[0];
  } finally {
    await client.end();
  }
}

/**
 * Which role the server runs as, decided at start (src/platform.ts): the owner migrates and grants,
 * the service role serves; a service role able to rewrite the audit log stops the start.
 */
describe('the database role Signet runs as', () => {
  let database: TestDatabase;

  beforeAll(async () => {
    database = await createTestDatabase();
  });
  afterAll(async () => {
    await database?.drop();
  });

  it('a superuser as the service role stops the start: exit 2, one line naming the problem', async () => {
    ensureBuilt();
    const server = new ServerProcess(await freePort(), {
      DATABASE_URL: database.adminUrl,
      SIGNET_DATA_DIR: tempDir('privileged-'),
    });
    expect(await server.exited).toEqual({ code: 2, signal: null });
    const lines = server.text().trim().split('\n');
    expect(lines[lines.length - 1]).toMatch(
      /^signet: configuration error: DATABASE_URL: the service role "\w+" is a superuser; run Signet as a least-privileged role .*SIGNET_ALLOW_PRIVILEGED_DATABASE_ROLE=true$/,
    );
    // Secrets stay out of it.
    expect(server.text()).not.toContain(new URL(database.adminUrl).password);
  });

  it('so does the owner of the audit tables, unless SIGNET_ALLOW_PRIVILEGED_DATABASE_ROLE=true says it is meant', async () => {
    const dataDir = tempDir('owner-as-service-');
    const refused = startPlatform(
      loadConfig({ DATABASE_URL: database.ownerUrl, SIGNET_DATA_DIR: dataDir }),
      capture().logger,
    );
    await expect(refused).rejects.toThrow(ConfigError);
    await expect(refused).rejects.toThrow(
      new RegExp(`^DATABASE_URL: the service role "${TEST_OWNER_ROLE}" owns .*audit_events`),
    );

    const { lines, logger } = capture();
    const platform = await startPlatform(
      loadConfig({
        DATABASE_URL: database.adminUrl,
        SIGNET_DATA_DIR: dataDir,
        SIGNET_ALLOW_PRIVILEGED_DATABASE_ROLE: 'true',
      }),
      logger,
    );
    await platform.stop();
    expect(lines.join('')).toMatch(
      /is a superuser: it could rewrite the audit log undetected until the next full verify/,
    );
  });

  it('so does a service role granted SET on session_replication_role (PostgreSQL 15+)', async () => {
    await query(database.adminUrl, `GRANT SET ON PARAMETER session_replication_role TO ${TEST_APP_ROLE}`);
    try {
      const refused = startPlatform(
        loadConfig({ DATABASE_URL: database.url, SIGNET_DATA_DIR: tempDir('set-parameter-') }),
        capture().logger,
      );
      await expect(refused).rejects.toThrow(
        new RegExp(`^DATABASE_URL: the service role "${TEST_APP_ROLE}" may SET session_replication_role`),
      );
    } finally {
      await query(database.adminUrl, `REVOKE SET ON PARAMETER session_replication_role FROM ${TEST_APP_ROLE}`);
    }
    const platform = await startPlatform(
      loadConfig({ DATABASE_URL: database.url, SIGNET_DATA_DIR: tempDir('set-parameter-') }),
      capture().logger,
    );
    await platform.stop();
  });

  it('with SIGNET_MIGRATION_DATABASE_URL the owner migrates a fresh database and grants the service role', async () => {
    const fresh = await createTestDatabase({ migrate: false });
    try {
      const { lines, logger } = capture();
      const platform = await startPlatform(
        loadConfig({
          DATABASE_URL: fresh.url,
          SIGNET_MIGRATION_DATABASE_URL: fresh.ownerUrl,
          SIGNET_DATA_DIR: tempDir('two-roles-'),
        }),
        logger,
      );
      await platform.stop();
      expect(platform.migrationsApplied.length).toBeGreaterThan(0);
      expect(platform.databaseUrl).toBe(fresh.url);
      expect(platform.ownerDatabaseUrl).toBe(fresh.ownerUrl);
      expect(lines.join('')).toContain(`granted the service role \\"${TEST_APP_ROLE}\\" its privileges`);
      const [privileges] = await query<{ insert: boolean; update: boolean; owner: string }>(
        fresh.adminUrl,
        `SELECT has_table_privilege($1, 'audit_events', 'INSERT') AS insert, has_table_privilege($1, 'audit_events', 'UPDATE') AS update, pg_get_userbyid(relowner) AS owner FROM pg_class WHERE relname = 'audit_events'`,
        [TEST_APP_ROLE],
      );
      expect(privileges).toEqual({ insert: true, update: false, owner: TEST_OWNER_ROLE });
    } finally {
      await fresh.drop();
    }
  });

  it('embedded defaults: a data dir from before the split is handed to signet_owner and the server runs as signet_app', async () => {
    const dataDir = tempDir('embedded-roles-');
    // What earlier versions left: everything migrated and owned by the embedded superuser.
    const legacy = new EmbeddedPostgres({ baseDir: path.join(dataDir, 'postgres') });
    await migrateUnderLock(await legacy.start());
    await legacy.stop();

    const platform = await startPlatform(loadConfig({ SIGNET_DATA_DIR: dataDir }), capture().logger);
    try {
      expect(await whoAmI(platform.databaseUrl)).toEqual({ name: EMBEDDED_APP_ROLE, superuser: false });
      expect(await whoAmI(platform.ownerDatabaseUrl)).toEqual({ name: EMBEDDED_OWNER_ROLE, superuser: false });
      const owners = await query<{ owner: string }>(
        platform.ownerDatabaseUrl,
        `SELECT DISTINCT pg_get_userbyid(relowner) AS owner FROM pg_class WHERE relnamespace = 'public'::regnamespace`,
      );
      expect(owners).toEqual([{ owner: EMBEDDED_OWNER_ROLE }]);
      const [can] = await query<{ insert: boolean }>(
        platform.databaseUrl,
        `SELECT has_table_privilege('audit_events', 'INSERT') AS insert`,
      );
      expect(can.insert).toBe(true);
      await expect(query(platform.databaseUrl, 'SET session_replication_role = replica')).rejects.toThrow(
        /permission denied/,
      );
    } finally {
      await platform.stop();
    }
  });
});
