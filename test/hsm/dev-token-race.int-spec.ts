import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Pkcs11FaultInjector } from '../../src/hsm/pkcs11-fault-injector';
import { ensureSoftHsmDevToken } from '../../src/hsm/softhsm-dev-token';
import { createTestToken, type TestToken } from '../support/softhsm';
import { openStore, sample, verifyWithNode } from './hsm-test-kit';
import { PROJECT_ROOT, tempDir } from '../support/server-process';

/**
 * Replicas (or a CLI next to a server) starting at once on one data dir: exactly one creates the
 * SoftHSM2 token and its PIN files; the others wait and then log in with the same PIN.
 */
describe('SoftHSM2 dev token created by several processes at once', () => {
  it('ends with one token, one PIN, and every process able to log in', async () => {
    const dataDir = tempDir('token-race-');
    const script = `
      const { ensureSoftHsmDevToken, readPinFile } = require('./src/hsm/softhsm-dev-token');
      const { Pkcs11KeyStore } = require('./src/hsm/pkcs11-key-store');
      (async () => {
        const token = await ensureSoftHsmDevToken({ dataDir: process.argv[1], label: 'race' });
        const store = new Pkcs11KeyStore({ modulePath: token.modulePath, tokenLabel: 'race', pin: readPinFile(token.pinFile), poolSize: 1 });
        await store.open();
        await store.close();
        process.stdout.write('opened');
      })().catch((e) => { process.stderr.write(String(e && (e.stack + ' ' + JSON.stringify(e.details || {})))); process.exit(1); });`;
    const runs = Array.from(
      { length: 4 },
      () =>
        new Promise<{ code: number | null; out: string }>((resolve) => {
          const child = spawn(process.execPath, ['-r', 'ts-node/register/transpile-only', '-e', script, dataDir], {
            cwd: PROJECT_ROOT,
            env: { ...process.env, TS_NODE_TRANSPILE_ONLY: 'true' },
          });
          let out = '';
          child.stdout.on('data', (c) => (out += c));
          child.stderr.on('data', (c) => (out += c));
          child.on('exit', (code) => resolve({ code, out }));
        }),
    );
    const results = await Promise.all(runs);
    expect(results).toEqual(Array(4).fill({ code: 0, out: 'opened' }));
    // Tokens are directories (the token lock file sits beside them).
    const tokens = fs
      .readdirSync(path.join(dataDir, 'softhsm', 'tokens'), { withFileTypes: true })
      .filter((entry) => entry.isDirectory());
    expect(tokens).toHaveLength(1);
    expect(fs.existsSync(path.join(dataDir, 'softhsm', '.init.lock'))).toBe(false);
  });
});

describe('SoftHSM2 dev token init lock', () => {
  const lockOf = (dataDir: string): string => path.join(dataDir, 'softhsm', '.init.lock');
  const placeLock = (dataDir: string, content: string): string => {
    fs.mkdirSync(path.join(dataDir, 'softhsm'), { recursive: true });
    fs.writeFileSync(lockOf(dataDir), content);
    return lockOf(dataDir);
  };
  const tokenCount = (dataDir: string): number =>
    fs
      .readdirSync(path.join(dataDir, 'softhsm', 'tokens'), { withFileTypes: true })
      .filter((entry) => entry.isDirectory()).length;

  it('takes over a lock whose owner died, creates the token and leaves no lock or claim file', async () => {
    const dataDir = tempDir('token-lock-dead-');
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], {
      encoding: 'utf8',
    }).stdout;
    placeLock(dataDir, dead);
    await ensureSoftHsmDevToken({ dataDir, label: 'lock-dead' });
    expect(tokenCount(dataDir)).toBe(1);
    expect(fs.readdirSync(path.join(dataDir, 'softhsm')).filter((f) => f.startsWith('.init.lock'))).toEqual([]);
  });

  it('takes over an empty lock only once it is stale (an older Signet caught between creating and writing it)', async () => {
    const dataDir = tempDir('token-lock-empty-');
    const lock = placeLock(dataDir, '');
    const past = new Date(Date.now() - 60_000);
    fs.utimesSync(lock, past, past);
    await ensureSoftHsmDevToken({ dataDir, label: 'lock-empty' });
    expect(tokenCount(dataDir)).toBe(1);
    expect(fs.existsSync(lock)).toBe(false);
  });

  it('waits while a live process holds the lock, then creates the token', async () => {
    const dataDir = tempDir('token-lock-live-');
    const holder = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)']);
    try {
      const lock = placeLock(dataDir, String(holder.pid));
      let done = false;
      const ensuring = ensureSoftHsmDevToken({ dataDir, label: 'lock-live' }).then(() => (done = true));
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(done).toBe(false);
      expect(fs.existsSync(path.join(dataDir, 'softhsm', 'tokens')) ? tokenCount(dataDir) : 0).toBe(0);
      fs.rmSync(lock);
      await ensuring;
      expect(tokenCount(dataDir)).toBe(1);
    } finally {
      holder.kill();
    }
  });
});

/**
 * SoftHSM2 answers C_GetTokenInfo with CKR_GENERAL_ERROR for a token whose file it read while
 * another process was rewriting it (seen in CI with four processes starting on one data dir), and
 * keeps doing so until the module is initialised again.
 */
describe('a token file caught half-written while the key store opens', () => {
  /** The token directory SoftHSM2 made for `label` (its token.object holds the padded label). */
  const tokenObjectOf = (token: TestToken): string => {
    const dir = fs.readdirSync(token.tokenDir).find((d) => {
      const file = path.join(token.tokenDir, d, 'token.object');
      return fs.existsSync(file) && fs.readFileSync(file).includes(Buffer.from(token.tokenLabel));
    });
    if (!dir) throw new Error(`no token directory for ${token.tokenLabel}`);
    return path.join(token.tokenDir, dir, 'token.object');
  };

  // Cut after 10 bytes SoftHSM2 answers CKR_GENERAL_ERROR for the slot; after 16 the token is not listed.
  it.each([
    { bytes: 10, seen: 'CKR_GENERAL_ERROR from C_GetTokenInfo' },
    { bytes: 16, seen: 'the token missing from the slot list' },
  ])(
    'is read again once whole (real torn file on SoftHSM2, $seen): the store re-initialises the module, opens and signs',
    async ({ bytes }) => {
      const token = await createTestToken('torn-read');
      const file = tokenObjectOf(token);
      const whole = fs.readFileSync(file);
      fs.writeFileSync(file, whole.subarray(0, bytes)); // what a reader sees mid-rewrite
      const restore = setTimeout(() => fs.writeFileSync(file, whole), 100);
      const store = await openStore(token, { poolSize: 1 }).finally(() => {
        clearTimeout(restore);
        fs.writeFileSync(file, whole);
      });
      try {
        expect(store.health().state).toBe('ready');
        const key = await store.createKey({ spec: 'EC-256', label: 'after-torn-read' });
        const s = sample('EC-256', 'after a torn read');
        expect(
          verifyWithNode('EC-256', key.publicKeySpki, s, await store.sign(key.uri, s.digest, { hash: s.hash })),
        ).toBe(true);
      } finally {
        await store.close();
      }
    },
  );

  it('still fails for other errors from C_GetTokenInfo, naming the code (injected through the fault seam)', async () => {
    const token = await createTestToken('torn-read-other');
    const faults = new Pkcs11FaultInjector();
    faults.arm('CKR_DEVICE_ERROR', { count: 1, methods: ['C_GetTokenInfo'] });
    await expect(openStore(token, { poolSize: 1 }, { faults })).rejects.toThrow(/CKR_DEVICE_ERROR/);
  });
});
