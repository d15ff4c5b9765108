import * as fs from 'node:fs';
import { EmbeddedPostgres } from '../../src/database/embedded-postgres';
import { stopOpenCryptoki, testHsm } from './opencryptoki';

export default async function globalTeardown(): Promise<void> {
  if (testHsm() === 'opencryptoki') stopOpenCryptoki();
  const postgres = (globalThis as Record<string, unknown>).__signetTestPostgres as EmbeddedPostgres | undefined;
  await postgres?.stop();
  const runDir = process.env.SIGNET_TEST_RUN_DIR;
  if (runDir && !process.env.SIGNET_TEST_KEEP) fs.rmSync(runDir, { recursive: true, force: true });
}
