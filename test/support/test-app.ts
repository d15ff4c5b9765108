import { NestFastifyApplication } from '@nestjs/platform-fastify';
import { Writable } from 'node:stream';
import { createApp } from '../../src/app.factory';
import { loadConfig, SignetConfig } from '../../src/config/config';
import { createLogger } from '../../src/observability/logger';
import { createTestDatabase, TestDatabase } from './database';
import { createTestToken, TestToken } from './softhsm';
import { tempDir } from './server-process';

export interface TestApp {
  app: NestFastifyApplication;
  config: SignetConfig;
  database: TestDatabase;
  token: TestToken;
  /** Everything the app logged (for secret-leak checks). */
  logs: string[];
  close(): Promise<void>;
}

/**
 * The whole application in-process (app.inject for HTTP) on a fresh database of the run's real
 * PostgreSQL and a fresh SoftHSM2 token; env adds SIGNET_* settings.
 */
export async function startTestApp(env: Record<string, string> = {}): Promise<TestApp> {
  const database = await createTestDatabase();
  const token = await createTestToken('app');
  const config = loadConfig({
    DATABASE_URL: database.url,
    SIGNET_DATA_DIR: tempDir('app-data-'),
    SIGNET_PUBLIC_URL: 'http://signet.test:8080',
    SIGNET_DEV_BOOTSTRAP: 'true',
    SIGNET_LOG_LEVEL: 'info',
    SIGNET_LOG_REQUESTS: 'false',
    ...env,
  });
  const logs: string[] = [];
  const sink = new Writable({ write: (chunk, _e, done) => (logs.push(chunk.toString()), done()) });
  const app = await createApp(
    {
      config,
      databaseUrl: database.url,
      hsm: { modulePath: token.modulePath, tokenLabel: token.tokenLabel, pin: token.pin, poolSize: 4 },
    },
    createLogger(config.logLevel, sink),
  );
  return {
    app,
    config,
    database,
    token,
    logs,
    close: async () => {
      await app.close();
      await database.drop();
    },
  };
}
