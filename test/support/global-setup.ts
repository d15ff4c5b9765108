import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { EmbeddedPostgres } from '../../src/database/embedded-postgres';

/**
 * Once per `npm test` run: start one real embedded PostgreSQL in a temporary directory. Tests create their own databases on it
 * (test/support/database.ts), so they stay isolated without paying for a server each.
 */
export default async function globalSetup(): Promise<void> {
  const runDir = fs.mkdtempSync(path.join(os.tmpdir(), 'signet-test-run-'));
  const postgres = new EmbeddedPostgres({ baseDir: path.join(runDir, 'postgres'), database: 'signet_test' });
  const url = await postgres.start();
  process.env.SIGNET_TEST_RUN_DIR = runDir;
  process.env.SIGNET_TEST_DATABASE_URL = url;
  (globalThis as Record<string, unknown>).__signetTestPostgres = postgres;
}
