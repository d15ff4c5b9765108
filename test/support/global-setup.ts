import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client } from 'pg';
import { EmbeddedPostgres } from '../../src/database/embedded-postgres';
import { TEST_APP_ROLE, TEST_OWNER_ROLE } from './database';
import { startOpenCryptoki, testHsm } from './opencryptoki';

/**
 * Once per `npm test` run: start one real embedded PostgreSQL in a temporary directory. Tests create their own databases on it
 * (test/support/database.ts), so they stay isolated without paying for a server each. Like an
 * operator, it creates two login roles: the owner (migrates, owns the tables) and the service role
 * the application runs as, which is neither superuser nor owner.
 */
export default async function globalSetup(): Promise<void> {
  // The openCryptoki matrix entry (SIGNET_TEST_HSM=opencryptoki) needs its slot daemon running.
  if (testHsm() === 'opencryptoki') startOpenCryptoki();
  const runDir = fs.mkdtempSync(path.join(os.tmpdir(), 'signet-test-run-'));
  const postgres = new EmbeddedPostgres({ baseDir: path.join(runDir, 'postgres'), database: 'signet_test' });
  const url = await postgres.start();
  const passwords = { owner: randomBytes(18).toString('base64url'), app: randomBytes(18).toString('base64url') };
  const admin = new Client({ connectionString: url });
  await admin.connect();
  try {
    await admin.query(`CREATE ROLE ${TEST_OWNER_ROLE} LOGIN PASSWORD '${passwords.owner}'`);
    await admin.query(`CREATE ROLE ${TEST_APP_ROLE} LOGIN PASSWORD '${passwords.app}'`);
  } finally {
    await admin.end();
  }
  process.env.SIGNET_TEST_RUN_DIR = runDir;
  process.env.SIGNET_TEST_DATABASE_URL = url;
  process.env.SIGNET_TEST_OWNER_PASSWORD = passwords.owner;
  process.env.SIGNET_TEST_APP_PASSWORD = passwords.app;
  (globalThis as Record<string, unknown>).__signetTestPostgres = postgres;
}
