import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import { migrateUnderLock } from '../../src/database/platform-database';

export interface TestDatabase {
  url: string;
  name: string;
  drop(): Promise<void>;
}

function serverUrl(): string {
  const url = process.env.SIGNET_TEST_DATABASE_URL;
  if (!url) throw new Error('SIGNET_TEST_DATABASE_URL is not set: run tests through jest (test/support/global-setup.ts starts PostgreSQL)');
  return url;
}

/** A fresh database on the run's real PostgreSQL, optionally migrated. */
export async function createTestDatabase(options: { migrate?: boolean } = {}): Promise<TestDatabase> {
  const base = new URL(serverUrl());
  const name = `t_${randomBytes(6).toString('hex')}`;
  const admin = new Client({ connectionString: base.toString() });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(base.toString());
  url.pathname = `/${name}`;
  if (options.migrate !== false) await migrateUnderLock(url.toString());
  return {
    url: url.toString(),
    name,
    drop: async () => {
      const client = new Client({ connectionString: base.toString() });
      await client.connect();
      await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await client.end();
    },
  };
}

export async function query<T = Record<string, unknown>>(url: string, sql: string, params: unknown[] = []): Promise<T[]> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(sql, params)).rows as T[];
  } finally {
    await client.end();
  }
}
