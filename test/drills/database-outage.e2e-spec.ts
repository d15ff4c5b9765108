import { NestFastifyApplication } from '@nestjs/platform-fastify';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { createApp } from '../../src/app.factory';
import { AuditService } from '../../src/audit/audit.service';
import { AuditVerifier } from '../../src/audit/audit-verifier';
import { ADMIN_TOKEN_FILE } from '../../src/auth/admin-token.bootstrap';
import { loadConfig } from '../../src/config/config';
import { EmbeddedPostgres } from '../../src/database/embedded-postgres';
import { migrateUnderLock } from '../../src/database/platform-database';
import { KEY_STORE, KeyStore } from '../../src/hsm/key-store';
import { createLogger } from '../../src/observability/logger';
import { query } from '../support/database';
import { freePort, tempDir } from '../support/server-process';
import { createTestToken } from '../support/softhsm';
import { opensslVerifiesChain, opensslVerifiesMessage, sha, SUBJECT } from './support/signing-kit';

/**
 * Fail closed: PostgreSQL (a server this test owns, never the shared test server) is stopped in
 * the middle of a stream of sign requests and started again on the same port. Every answer while
 * it is down is a 503 without a signature; afterwards every signature a client received has its
 * audit row, every audit sign row matches a real HSM signature (delivered ≤ audit rows ≤ HSM
 * signatures), and signing resumes without restarting Signet.
 */
describe('signing while PostgreSQL stops and comes back (fail closed)', () => {
  let postgres: EmbeddedPostgres;
  let databaseUrl: string;
  let app: NestFastifyApplication;
  let keyStore: KeyStore;
  let signer: string;
  let dir: string;

  async function waitUntil(what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 90_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await condition())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  beforeAll(async () => {
    dir = tempDir('sign-fail-closed-');
    postgres = new EmbeddedPostgres({ baseDir: path.join(dir, 'postgres'), port: await freePort() });
    databaseUrl = await postgres.start();
    await migrateUnderLock(databaseUrl);
    const token = await createTestToken('signfc');
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
    app = await createApp({ config, databaseUrl, hsm: { modulePath: token.modulePath, tokenLabel: token.tokenLabel, pin: token.pin, poolSize: 4 } }, createLogger('fatal', sink));
    keyStore = app.get<KeyStore>(KEY_STORE);
    const admin = fs.readFileSync(path.join(config.dataDir, ADMIN_TOKEN_FILE), 'utf8').trim();
    const headers = { authorization: `Bearer ${admin}` };
    const key = await app.inject({ method: 'POST', url: '/v1/keys', headers, payload: { name: 'fail-closed', keySpec: 'EC-256', subject: { ...SUBJECT, CN: 'fail-closed' } } });
    expect(key.statusCode).toBe(201);
    const created = await app.inject({ method: 'POST', url: '/v1/tokens', headers, payload: { name: 'fc-signer', role: 'signer', keys: ['fail-closed'] } });
    signer = created.json().token;
  }, 180_000);

  afterAll(async () => {
    await app?.close();
    await postgres?.stop();
  });

  it('answers 503 without a signature while the database is down, loses no audit row, and resumes by itself', async () => {
    const message = Buffer.from('image manifest under test');
    const body = JSON.stringify({ digest: sha('EC-256', message).toString('base64'), hashAlgorithm: 'SHA-256' });
    const delivered: Array<{ signature: string; chain: string[] }> = [];
    const refused: Array<{ status: number; body: string }> = [];
    let phase: 'before' | 'stopping' | 'down' | 'starting' | 'after' = 'before';
    const deliveredIn = { before: 0, stopping: 0, down: 0, starting: 0, after: 0 };
    let running = true;

    const hsmBefore = keyStore.counters().signOperations;
    const client = async () => {
      while (running) {
        const response = await app.inject({ method: 'POST', url: '/v1/keys/fail-closed/sign', headers: { authorization: `Bearer ${signer}`, 'content-type': 'application/json' }, payload: body });
        if (response.statusCode === 200) {
          const json = response.json();
          delivered.push({ signature: json.signature, chain: json.certificateChain });
          deliveredIn[phase]++;
        } else {
          refused.push({ status: response.statusCode, body: response.body });
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
      }
    };
    const clients = Array.from({ length: 8 }, () => client());
    try {
      await waitUntil('signatures before the outage', () => delivered.length >= 100);
      phase = 'stopping';
      await postgres.stop();
      phase = 'down';
      const downSince = Date.now();
      // Long enough for the change listener to notice and for many requests to be refused.
      await waitUntil('503s during the outage', () => refused.filter((r) => r.status === 503).length >= 50 && Date.now() - downSince > 1500);
      phase = 'starting';
      await postgres.start();
      phase = 'after';
      await waitUntil('signing to resume after the database came back', () => deliveredIn.after >= 100);
    } finally {
      running = false;
      await Promise.all(clients);
    }
    await app.get(AuditService).flushed();

    // During the outage: 503 only, each in the error shape, none with a signature.
    expect(refused.length).toBeGreaterThanOrEqual(50);
    for (const r of refused) {
      expect(r.status).toBe(503);
      const error = JSON.parse(r.body).error;
      expect(['DATABASE_UNAVAILABLE', 'SERVICE_UNAVAILABLE']).toContain(error.code);
      expect(r.body).not.toContain('signature');
    }
    // Nothing is delivered while the database is down, except answers whose audit commit landed
    // just before the stop and were processed after the server's exit was noticed (≤ one per client).
    expect(deliveredIn.down).toBeLessThanOrEqual(8);

    const rows = await query<{ signature: string }>(databaseUrl, `SELECT data->>'signature' AS signature FROM audit_events WHERE type = 'sign' AND subject = 'fail-closed'`);
    const audited = new Set(rows.map((row) => row.signature));
    const hsmSignatures = keyStore.counters().signOperations - hsmBefore;
    const unaudited = delivered.filter((d) => !audited.has(d.signature));
    expect(unaudited).toEqual([]);
    expect(delivered.length).toBeLessThanOrEqual(rows.length);
    expect(rows.length).toBeLessThanOrEqual(hsmSignatures);
    expect(audited.size).toBe(rows.length); // each row one distinct signature

    // What was delivered is real: OpenSSL verifies signatures from before and after, and the chain.
    const first = delivered[0];
    const last = delivered[delivered.length - 1];
    expect(opensslVerifiesMessage(path.join(dir, 'first'), 'EC-256', message, first.signature, first.chain)).toBe(true);
    expect(opensslVerifiesMessage(path.join(dir, 'last'), 'EC-256', message, last.signature, last.chain)).toBe(true);
    expect(opensslVerifiesChain(path.join(dir, 'chain'), last.chain).ok).toBe(true);

    // The hash chain survived the outage intact.
    const verified = await app.get(AuditVerifier).verify('full');
    expect(verified.ok).toBe(true);
  });
});
