import { NestFastifyApplication } from '@nestjs/platform-fastify';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { createApp } from '../../src/app.factory';
import { AuditService } from '../../src/audit/audit.service';
import { ADMIN_TOKEN_FILE } from '../../src/auth/admin-token.bootstrap';
import { loadConfig } from '../../src/config/config';
import { EmbeddedPostgres } from '../../src/database/embedded-postgres';
import { prepareDatabase } from '../../src/database/platform-database';
import { createLogger } from '../../src/observability/logger';
import { http } from '../rotation/rotation-helpers';
import { freePort, tempDir } from '../support/server-process';
import { createTestToken } from '../support/softhsm';
import { opensslVerifiesChain, opensslVerifiesMessage, SUBJECT } from '../signing/support/signing-kit';
import {
  expectDrillInvariants,
  faultTimes,
  injectTransport,
  inProcessSubject,
  loadTotals,
  ReadyzProbe,
  reportDrill,
  SignLoad,
  waitFor,
} from './drill-kit';

const CLIENTS = 8;

/**
 * Drill: PostgreSQL (a server this test owns, never the shared test server) is stopped under a
 * steady sign load of 8 clients, left down, and started again on the same port. Fail closed: every
 * answer while it is down is a 503 without a signature and /readyz turns 503; signing and
 * readiness come back without restarting Signet. Afterwards the drill invariants hold (every
 * delivered signature audited, every audit sign row an HSM signature, chain and checkpoints
 * verify, HSM reconciliation clean) — delivered ≤ audit rows ≤ HSM signatures.
 */
describe('drill: PostgreSQL stopped and restarted under sign load', () => {
  let postgres: EmbeddedPostgres;
  let databaseUrl: string;
  let app: NestFastifyApplication;
  let signer: string;
  let admin: string;
  let dir: string;

  beforeAll(async () => {
    dir = tempDir('drill-database-');
    postgres = new EmbeddedPostgres({ baseDir: path.join(dir, 'postgres'), port: await freePort() });
    // As on embedded defaults: migrated by the owner role, served by the least-privileged one.
    const roles = await postgres.ensureServiceRoles(await postgres.start());
    databaseUrl = roles.appUrl;
    await prepareDatabase({ ownerUrl: roles.ownerUrl, appUrl: roles.appUrl, migrate: true });
    const token = await createTestToken('drilldb');
    const config = loadConfig({
      DATABASE_URL: databaseUrl,
      SIGNET_DATA_DIR: path.join(dir, 'data'),
      SIGNET_DEV_BOOTSTRAP: 'true',
      SIGNET_AUDIT_CHECKPOINT_INTERVAL_SECONDS: '0',
      // Tokens stay verified from memory through the outage: the failures below are the audit log's.
      SIGNET_TOKEN_CACHE_SECONDS: '300',
      SIGNET_LOG_LEVEL: 'fatal',
    });
    const sink = new Writable({ write: (_chunk, _e, done) => done() });
    app = await createApp(
      {
        config,
        databaseUrl,
        hsm: { modulePath: token.modulePath, tokenLabel: token.tokenLabel, pin: token.pin, poolSize: 4 },
      },
      createLogger('fatal', sink),
    );
    admin = fs.readFileSync(path.join(config.dataDir, ADMIN_TOKEN_FILE), 'utf8').trim();
    const api = http(app, admin);
    expect(
      (await api('POST', '/v1/keys', { name: 'drill-db', keySpec: 'EC-256', subject: { ...SUBJECT, CN: 'drill-db' } }))
        .status,
    ).toBe(201);
    signer = (await api('POST', '/v1/tokens', { name: 'drill-signer', role: 'signer', keys: ['drill-db'] })).body.token;
  }, 180_000);

  afterAll(async () => {
    await app?.close();
    await postgres?.stop();
  });

  it('answers 503 without a signature and turns /readyz 503 while the database is down, resumes by itself, and loses no audit row', async () => {
    const subject = inProcessSubject(app, admin, databaseUrl);
    const load = new SignLoad(injectTransport(app, signer, 'drill-db'), { clients: CLIENTS }).start();
    const readyz = new ReadyzProbe(async () => (await app.inject({ method: 'GET', url: '/readyz' })).statusCode);
    let faultAt = 0;
    let downAt = 0;
    let restartAt = 0;
    let recoveredAt = 0;
    try {
      await load.deliveredSince(0, 100);
      faultAt = Date.now();
      await postgres.stop();
      downAt = Date.now();
      // Down long enough for the change listener to notice, /readyz to turn and many requests to be refused.
      await waitFor(
        '503s and /readyz 503 during the outage',
        () =>
          load.records.filter((r) => r.at > faultAt && r.status === 503).length >= 50 &&
          readyz.firstAfter(faultAt, (s) => s === 503) !== undefined &&
          Date.now() - faultAt > 1500,
      );
      restartAt = Date.now();
      await postgres.start();
      recoveredAt = Date.now();
      await load.deliveredSince(recoveredAt, 100);
      await waitFor('/readyz 200 after the database came back', () => readyz.firstAfter(recoveredAt, (s) => s === 200));
    } finally {
      await load.stop();
      await readyz.stop();
    }
    await app.get(AuditService).flushed();
    reportDrill('database-outage', {
      ...faultTimes(load, { faultAt, recoveredAt }, readyz),
      ...loadTotals(load),
      clients: CLIENTS,
    });

    // While it is down: 503 only, in the error shape with Retry-After, none with a signature.
    const refused = load.failed;
    expect(refused.length).toBeGreaterThanOrEqual(50);
    for (const r of refused) {
      expect(r.status).toBe(503);
      expect(['DATABASE_UNAVAILABLE', 'SERVICE_UNAVAILABLE']).toContain(r.error?.code);
      expect(r.retryAfter).toBeDefined();
      expect(r.signature).toBeUndefined();
    }
    // Nothing is delivered while the database is down, except answers whose audit commit landed
    // just before the stop and were processed after the server's exit was noticed (≤ one per client).
    expect(load.delivered.filter((d) => d.at > downAt && d.at < restartAt).length).toBeLessThanOrEqual(CLIENTS);
    expect(readyz.samples.filter((s) => s.at > downAt && s.at < restartAt).map((s) => s.status)).toContain(503);

    await expectDrillInvariants(subject, load, 'drill-db');

    // What was delivered is real to OpenSSL too: the first and last signatures, and the chain.
    const first = load.delivered[0];
    const last = load.delivered.at(-1)!;
    expect(
      opensslVerifiesMessage(path.join(dir, 'first'), 'EC-256', first.message, first.signature!, first.chain!),
    ).toBe(true);
    expect(opensslVerifiesMessage(path.join(dir, 'last'), 'EC-256', last.message, last.signature!, last.chain!)).toBe(
      true,
    );
    expect(opensslVerifiesChain(path.join(dir, 'chain'), last.chain!).ok).toBe(true);
  });
});
