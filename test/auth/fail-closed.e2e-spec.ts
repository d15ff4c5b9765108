import { NestFastifyApplication } from '@nestjs/platform-fastify';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { createApp } from '../../src/app.factory';
import { ADMIN_TOKEN_FILE } from '../../src/auth/admin-token.bootstrap';
import { loadConfig } from '../../src/config/config';
import { createLogger } from '../../src/observability/logger';
import { TcpRelay } from '../audit/audit-harness';
import { createTestDatabase, query, TestDatabase } from '../support/database';
import { tempDir } from '../support/server-process';
import { createTestToken } from '../support/softhsm';

/** With the database gone, audited operations answer 503 and change nothing (fail closed). */
describe('audited operations while the database is down', () => {
  let database: TestDatabase;
  let relay: TcpRelay;
  let app: NestFastifyApplication;
  let admin: string;

  beforeAll(async () => {
    database = await createTestDatabase();
    relay = new TcpRelay(Number(new URL(database.url).port));
    await relay.start();
    const url = new URL(database.url);
    url.port = String(relay.port);
    const token = await createTestToken('failclosed');
    const config = loadConfig({
      DATABASE_URL: url.toString(),
      SIGNET_DATA_DIR: tempDir('fail-closed-'),
      SIGNET_DEV_BOOTSTRAP: 'true',
      SIGNET_AUDIT_CHECKPOINT_INTERVAL_SECONDS: '0',
      SIGNET_TOKEN_CACHE_SECONDS: '60',
      SIGNET_LOG_LEVEL: 'fatal',
    });
    const sink = new Writable({ write: (_chunk, _e, done) => done() });
    app = await createApp(
      {
        config,
        databaseUrl: url.toString(),
        hsm: { modulePath: token.modulePath, tokenLabel: token.tokenLabel, pin: token.pin, poolSize: 2 },
      },
      createLogger('fatal', sink),
    );
    admin = fs.readFileSync(path.join(config.dataDir, ADMIN_TOKEN_FILE), 'utf8').trim();
  });
  afterAll(async () => {
    await relay.start().catch(() => undefined);
    await app.close();
    await relay.stop();
    await database.drop();
  });

  it('answers 503 DATABASE_UNAVAILABLE with Retry-After and creates nothing, then recovers', async () => {
    const headers = { authorization: `Bearer ${admin}` };
    // Authenticated once: the token is now served from the cache, so the failure below is the audit write's.
    expect((await app.inject({ method: 'GET', url: '/v1/tokens', headers })).statusCode).toBe(200);

    await relay.stop();
    const refused = await app.inject({
      method: 'POST',
      url: '/v1/tokens',
      headers,
      payload: { name: 'during-outage', role: 'auditor' },
    });
    expect(refused.statusCode).toBe(503);
    expect(refused.json().error.code).toBe('DATABASE_UNAVAILABLE');
    expect(refused.headers['retry-after']).toBe('1');
    expect(refused.body).not.toMatch(/sgt_/);
    expect((await app.inject({ method: 'GET', url: '/v1/audit', headers })).statusCode).toBe(503);

    await relay.start();
    let status = 0;
    for (let attempt = 0; attempt < 50 && status !== 201; attempt++) {
      status = (
        await app.inject({
          method: 'POST',
          url: '/v1/tokens',
          headers,
          payload: { name: 'after-outage', role: 'auditor' },
        })
      ).statusCode;
      if (status !== 201) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(status).toBe(201);
    expect(
      await query(database.url, `SELECT name FROM api_tokens WHERE name IN ('during-outage', 'after-outage')`),
    ).toEqual([{ name: 'after-outage' }]);
  });
});
