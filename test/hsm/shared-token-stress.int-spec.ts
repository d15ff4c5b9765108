import { spawn } from 'node:child_process';
import { verify } from 'node:crypto';
import { ensureSoftHsmDevToken, readPinFile } from '../../src/hsm/softhsm-dev-token';
import { Pkcs11KeyStore } from '../../src/hsm/pkcs11-key-store';
import { PROJECT_ROOT, tempDir } from '../support/server-process';

/**
 * Replicas sharing one SoftHSM2 token directory (the compose stack's replicas share a token volume).
 * Every login rewrites the token's file in place; other processes read it whenever they look up
 * the token or open a session, and SoftHSM2's own file locks do not keep them from reading it
 * half-written. Each process takes the shared token lock (an OFD lock on a file in the token
 * directory, module-instance-lock.ts) around those calls; these tests churn them from several
 * processes and threads at once. Before the lock, CI saw CKR_GENERAL_ERROR from C_OpenSession or
 * C_GetTokenInfo, or the token missing, with four processes starting on one data dir.
 */
describe('processes sharing one SoftHSM2 token directory', () => {
  const spawnScript = (script: string, args: string[]): Promise<{ code: number | null; out: string; err: string }> =>
    new Promise((resolve) => {
      const child = spawn(process.execPath, ['-r', 'ts-node/register/transpile-only', '-e', script, ...args], {
        cwd: PROJECT_ROOT,
        env: { ...process.env, TS_NODE_TRANSPILE_ONLY: 'true' },
      });
      let out = '';
      let err = '';
      child.stdout.on('data', (c) => (out += c));
      child.stderr.on('data', (c) => (err += c));
      child.on('exit', (code) => resolve({ code, out, err }));
    });

  // One process logs in and out in a loop (each login rewrites the token file) while two read token
  // info and open sessions, all through the key store's binding. Without the shared token lock about
  // one read in four failed (CKR_GENERAL_ERROR, or CKR_TOKEN_NOT_PRESENT once the instance had read
  // a half-written file), even with every process single-threaded.
  it('a process logging in over and over never makes another read the token half-written', async () => {
    const dataDir = tempDir('shared-token-login-');
    await ensureSoftHsmDevToken({ dataDir, label: 'churn' });
    const script = `
      const pkcs11js = require('pkcs11js');
      const { ensureSoftHsmDevToken, readPinFile } = require('./src/hsm/softhsm-dev-token');
      const { Pkcs11Library } = require('./src/hsm/pkcs11-library');
      const [dataDir, role, rounds] = process.argv.slice(1);
      (async () => {
        const token = await ensureSoftHsmDevToken({ dataDir, label: 'churn' });
        const pin = readPinFile(token.pinFile);
        const library = Pkcs11Library.acquire(token.modulePath);
        const api = library.api;
        const { slot } = library.locateToken('churn');
        const failures = {};
        for (let i = 0; i < Number(rounds); i++) {
          try {
            const session = api.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION);
            if (role === 'login') {
              api.C_Login(session, pkcs11js.CKU_USER, pin);
              api.C_Logout(session);
            } else {
              api.C_GetTokenInfo(slot);
            }
            api.C_CloseSession(session);
          } catch (e) {
            const code = String(e.message).split(':')[0];
            failures[code] = (failures[code] || 0) + 1;
          }
        }
        library.release();
        process.stdout.write(JSON.stringify(failures));
      })().catch((e) => { process.stderr.write(String(e && e.stack)); process.exit(1); });`;
    const results = await Promise.all([
      spawnScript(script, [dataDir, 'login', '1500']),
      spawnScript(script, [dataDir, 'read', '3000']),
      spawnScript(script, [dataDir, 'read', '3000']),
    ]);
    expect(results.map((r) => ({ code: r.code, err: r.err, failures: r.out }))).toEqual(
      Array(3).fill({ code: 0, err: '', failures: '{}' }),
    );
  }, 240_000);

  const PROCESSES = 4;
  const CYCLES = 6;

  it(`${PROCESSES} processes each open, sign on 2 own-instance threads and close ${CYCLES} times at once: every cycle succeeds and every signature verifies`, async () => {
    const dataDir = tempDir('shared-token-stress-');
    const token = await ensureSoftHsmDevToken({ dataDir, label: 'stress' });
    const setup = new Pkcs11KeyStore({
      modulePath: token.modulePath,
      tokenLabel: 'stress',
      pin: readPinFile(token.pinFile),
      poolSize: 2,
      signWorkers: 0,
    });
    await setup.open();
    const key = await setup.createKey({ spec: 'EC-256', label: 'stress-key' });
    await setup.close();

    // Each child: open a store whose two signing threads each load their own instance of the module
    // (own login, own reads of the token file), sign once on every thread, close; CYCLES times.
    const script = `
      const { createHash } = require('node:crypto');
      const { ensureSoftHsmDevToken, readPinFile } = require('./src/hsm/softhsm-dev-token');
      const { Pkcs11KeyStore } = require('./src/hsm/pkcs11-key-store');
      const [dataDir, keyUri, cycles] = process.argv.slice(1);
      (async () => {
        const token = await ensureSoftHsmDevToken({ dataDir, label: 'stress' });
        const pin = readPinFile(token.pinFile);
        const signatures = [];
        for (let cycle = 0; cycle < Number(cycles); cycle++) {
          const store = new Pkcs11KeyStore({ modulePath: token.modulePath, tokenLabel: 'stress', pin, poolSize: 4, signWorkers: 2, signThreadModule: 'own',
            recovery: { maxAttempts: 1, initialBackoffMs: 1, maxBackoffMs: 1, downRetryMs: 1000, probeIntervalMs: 0 } });
          await store.open();
          try {
            const message = 'cycle ' + cycle + ' of ' + process.pid;
            const digest = createHash('sha256').update(message).digest();
            const sigs = await Promise.all([0, 1, 2, 3].map(() => store.sign(keyUri, digest, { hash: 'SHA-256' })));
            for (const sig of sigs) signatures.push({ message, signature: sig.toString('base64') });
          } finally {
            await store.close();
          }
        }
        process.stdout.write(JSON.stringify(signatures));
      })().catch((e) => { process.stderr.write(String(e && (e.stack + ' ' + JSON.stringify(e.details || {})))); process.exit(1); });`;
    const runs = Array.from({ length: PROCESSES }, () => spawnScript(script, [dataDir, key.uri, String(CYCLES)]));
    const results = await Promise.all(runs);
    expect(results.map((r) => ({ code: r.code, err: r.err }))).toEqual(Array(PROCESSES).fill({ code: 0, err: '' }));

    for (const result of results) {
      const signatures = JSON.parse(result.out) as { message: string; signature: string }[];
      expect(signatures).toHaveLength(CYCLES * 4);
      for (const s of signatures) {
        const spki = {
          key: key.publicKeySpki,
          format: 'der' as const,
          type: 'spki' as const,
          dsaEncoding: 'ieee-p1363' as const,
        };
        expect(verify('sha256', Buffer.from(s.message), spki, Buffer.from(s.signature, 'base64'))).toBe(true);
      }
    }
  }, 240_000);
});
