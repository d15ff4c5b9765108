import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
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
      })().catch((e) => { process.stderr.write(String(e && e.message)); process.exit(1); });`;
    const runs = Array.from({ length: 4 }, () =>
      new Promise<{ code: number | null; out: string }>((resolve) => {
        const child = spawn(process.execPath, ['-r', 'ts-node/register/transpile-only', '-e', script, dataDir], { cwd: PROJECT_ROOT, env: { ...process.env, TS_NODE_TRANSPILE_ONLY: 'true' } });
        let out = '';
        child.stdout.on('data', (c) => (out += c));
        child.stderr.on('data', (c) => (out += c));
        child.on('exit', (code) => resolve({ code, out }));
      }),
    );
    const results = await Promise.all(runs);
    expect(results).toEqual(Array(4).fill({ code: 0, out: 'opened' }));
    const tokens = fs.readdirSync(path.join(dataDir, 'softhsm', 'tokens'));
    expect(tokens).toHaveLength(1);
    expect(fs.existsSync(path.join(dataDir, 'softhsm', '.init.lock'))).toBe(false);
  });
});
