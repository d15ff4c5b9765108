import * as fs from 'node:fs';
import * as path from 'node:path';
import { runCli } from '../../src/cli/main';
import { DEV_ROOT_CA } from '../../src/ca/dev-hierarchy.bootstrap';
import { KeysService } from '../../src/keys/keys.service';
import { TruststoreService } from '../../src/truststore/truststore.service';
import { tempDir } from '../support/server-process';
import { startTestApp, TestApp } from '../support/test-app';
import { waitFor } from './distribution-helpers';

/**
 * The CLI beside a running server on the same database and HSM token: `signet revoke` (a one-shot
 * context without a rebuild loop) makes the server build the truststore version carrying the new
 * CRL; `signet status` prints the distribution lines.
 */
describe('signet revoke / signet status with distribution', () => {
  let t: TestApp;
  const saved = { ...process.env };

  async function cli(...argv: string[]): Promise<{ code: number; stdout: string }> {
    const out: string[] = [];
    const stdout = jest.spyOn(process.stdout, 'write').mockImplementation((chunk) => (out.push(String(chunk)), true));
    const stderr = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      return { code: await runCli(argv), stdout: out.join('') };
    } finally {
      stdout.mockRestore();
      stderr.mockRestore();
      process.exitCode = undefined;
    }
  }

  beforeAll(async () => {
    t = await startTestApp({
      SIGNET_AUDIT_CHECKPOINT_INTERVAL_SECONDS: '0',
      SIGNET_DISTRIBUTION_INTERVAL_SECONDS: '3600',
    });
    await t.app.get(KeysService).create({
      name: 'release',
      keySpec: 'EC-256',
      subject: { C: 'US', ST: 'Washington', O: 'Example Corp', CN: 'release' },
    });
    await t.app.get(TruststoreService).create({ name: 'fleet', cas: [DEV_ROOT_CA] });
    const dataDir = tempDir('cli-dist-');
    const pinFile = path.join(dataDir, 'pin');
    fs.writeFileSync(pinFile, t.token.pin, { mode: 0o600 });
    Object.assign(process.env, {
      DATABASE_URL: t.database.url,
      SIGNET_DATA_DIR: dataDir,
      SIGNET_PKCS11_MODULE: t.token.modulePath,
      SIGNET_PKCS11_PIN_FILE: pinFile,
      SIGNET_PKCS11_TOKEN_LABEL: t.token.tokenLabel,
      SIGNET_PUBLIC_URL: 'http://signet.test:8080',
      SIGNET_LOG_LEVEL: 'error',
    });
  }, 120_000);
  afterAll(async () => {
    process.env = saved;
    await t?.close();
  });

  it('a revocation made by the CLI reaches the server, which builds the truststore version carrying the CRL', async () => {
    const truststores = t.app.get(TruststoreService);
    const before = (await truststores.get('fleet')).version;
    const [leaf] = await t.app.get(KeysService).certificatesOf('release');
    expect((await cli('revoke', leaf.serial, '--reason', 'keyCompromise')).code).toBe(0);
    const after = await waitFor(
      'the server to build a new version',
      async () => {
        const view = await truststores.get('fleet');
        return view.version > before ? view : false;
        // Well under the server's own schedules (CRL refresh every 60 s, distribution interval 1 h here).
      },
      15_000,
    );
    expect(after.reason.trigger).toBe('crl');
  });

  it('signet status prints the distribution summary', async () => {
    const { code, stdout } = await cli('status');
    expect(code).toBe(0);
    expect(stdout).toMatch(/^distribution: no targets \(1 truststore\(s\)\)$/m);
  });
});
