import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import { prepareDatabase } from '../../src/database/platform-database';

export interface TestDatabase {
  /** The service role (least privileged, as in production): what the application under test uses. */
  url: string;
  /** The owner role: runs migrations and grants the service role (SIGNET_MIGRATION_DATABASE_URL). */
  ownerUrl: string;
  /** The cluster's superuser on this database: for tests playing an attacker or setting up the impossible. */
  adminUrl: string;
  name: string;
  drop(): Promise<void>;
}

/** The run's two roles (made by global-setup.ts), like the two an operator creates. */
export const TEST_OWNER_ROLE = 'signet_test_owner';
export const TEST_APP_ROLE = 'signet_test_app';

function serverUrl(): string {
  const url = process.env.SIGNET_TEST_DATABASE_URL;
  if (!url)
    throw new Error(
      'SIGNET_TEST_DATABASE_URL is not set: run tests through jest (test/support/global-setup.ts starts PostgreSQL)',
    );
  return url;
}

/** `url` with another role's credentials, same server and database. */
export function withRole(url: string, role: string, password: string): string {
  const out = new URL(url);
  out.username = encodeURIComponent(role);
  out.password = encodeURIComponent(password);
  return out.toString();
}

/** The superuser's URL for the database `url` points at (whatever role `url` names). */
export function asSuperuser(url: string): string {
  const base = new URL(serverUrl());
  const out = new URL(url);
  out.username = base.username;
  out.password = base.password;
  return out.toString();
}

/**
 * A fresh database on the run's real PostgreSQL, owned by the owner role, optionally migrated; the
 * service role gets the grants production gives it (src/database/app-role.ts).
 */
export async function createTestDatabase(options: { migrate?: boolean } = {}): Promise<TestDatabase> {
  const base = new URL(serverUrl());
  const name = `t_${randomBytes(6).toString('hex')}`;
  const admin = new Client({ connectionString: base.toString() });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name} OWNER ${TEST_OWNER_ROLE}`);
  await admin.end();
  const adminUrl = new URL(base.toString());
  adminUrl.pathname = `/${name}`;
  const ownerUrl = withRole(adminUrl.toString(), TEST_OWNER_ROLE, process.env.SIGNET_TEST_OWNER_PASSWORD!);
  const url = withRole(adminUrl.toString(), TEST_APP_ROLE, process.env.SIGNET_TEST_APP_PASSWORD!);
  if (options.migrate !== false) await prepareDatabase({ ownerUrl, appUrl: url, migrate: true });
  return {
    url,
    ownerUrl,
    adminUrl: adminUrl.toString(),
    name,
    drop: async () => {
      const client = new Client({ connectionString: base.toString() });
      await client.connect();
      await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await client.end();
    },
  };
}

export async function query<T = Record<string, unknown>>(
  url: string,
  sql: string,
  params: unknown[] = [],
): Promise<T[]> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(sql, params)).rows as T[];
  } finally {
    await client.end();
  }
}
