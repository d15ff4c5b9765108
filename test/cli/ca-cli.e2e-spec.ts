import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createTestDatabase, query, TestDatabase } from '../support/database';
import { ensureBuilt, PROJECT_ROOT, tempDir } from '../support/server-process';

/**
 * The `signet` CLI as an operator runs it (bin/signet, real processes) on a real PostgreSQL and a
 * SoftHSM2 token under its data dir: an issuing CA under an offline root made with OpenSSL, a key,
 * a revocation — checked with OpenSSL.
 */
describe('signet CLI: offline root, key create, revoke', () => {
  let database: TestDatabase;
  let dataDir: string;
  let work: string;

  beforeAll(async () => {
    ensureBuilt();
    database = await createTestDatabase();
    dataDir = tempDir('cli-data-');
    work = tempDir('cli-work-');
  });
  afterAll(() => database.drop());

  function signet(...args: string[]): { code: number | null; stdout: string; stderr: string } {
    const result = spawnSync(path.join(PROJECT_ROOT, 'bin', 'signet'), args, {
      cwd: work,
      encoding: 'utf8',
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? '/root',
        DATABASE_URL: database.url,
        SIGNET_DATA_DIR: dataDir,
        SIGNET_PUBLIC_URL: 'http://pki.example.test',
      },
    });
    return { code: result.status, stdout: result.stdout, stderr: result.stderr };
  }
  function openssl(...args: string[]): string {
    const result = spawnSync('openssl', args, { cwd: work, encoding: 'utf8' });
    if (result.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${result.stderr}`);
    return result.stdout + result.stderr;
  }

  it('creates an issuing CA key and CSR, imports the chain an OpenSSL offline root signed, issues a key under it and revokes it', async () => {
    const init = signet(
      'init',
      '--offline-root',
      '--subject',
      'C=US,ST=Washington,O=Example Corp',
      '--issuing',
      'prod-issuing',
      '--csr-out',
      'issuing.csr',
    );
    expect(init.code).toBe(0);
    expect(init.stdout).toContain('CSR written to issuing.csr');
    expect(openssl('req', '-in', 'issuing.csr', '-noout', '-subject')).toContain('CN = Example Corp Issuing CA');

    fs.writeFileSync(
      path.join(work, 'int.ext'),
      'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign,digitalSignature\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\ncrlDistributionPoints=URI:http://offline-root.example.test/root.crl\n',
    );
    openssl(
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-384',
      '-nodes',
      '-keyout',
      'root.key',
      '-out',
      'root.pem',
      '-days',
      '3650',
      '-subj',
      '/C=US/ST=Washington/O=Example Corp/CN=Example Offline Root',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    );
    openssl(
      'x509',
      '-req',
      '-in',
      'issuing.csr',
      '-CA',
      'root.pem',
      '-CAkey',
      'root.key',
      '-CAcreateserial',
      '-out',
      'issuing.pem',
      '-days',
      '1800',
      '-sha384',
      '-extfile',
      'int.ext',
    );
    fs.writeFileSync(
      path.join(work, 'chain.pem'),
      fs.readFileSync(path.join(work, 'issuing.pem'), 'utf8') + fs.readFileSync(path.join(work, 'root.pem'), 'utf8'),
    );

    const imported = signet('init', '--import-chain', 'chain.pem', '--issuing', 'prod-issuing');
    expect(imported.stderr).toBe('');
    expect(imported.code).toBe(0);
    expect(imported.stdout).toContain('generation prod-issuing-g1 is active');

    const key = signet(
      'key',
      'create',
      '--name',
      'release',
      '--key-spec',
      'EC-256',
      '--subject',
      'C=US,ST=Washington,O=Example Corp,CN=release',
      '--issuer',
      'prod-issuing',
    );
    expect(key.code).toBe(0);
    const serial = /certificate ([0-9a-f]+)/.exec(key.stdout)![1];
    const [version] = await query<{ certificate: Buffer; chain: Buffer[] }>(
      database.url,
      'SELECT certificate, chain FROM key_versions WHERE serial = $1',
      [serial],
    );
    fs.writeFileSync(path.join(work, 'leaf.der'), version.certificate);
    openssl('x509', '-inform', 'DER', '-in', 'leaf.der', '-out', 'leaf.pem');
    expect(version.chain.map((der) => der.toString('base64'))).toEqual(
      ['issuing.pem', 'root.pem'].map((f) =>
        Buffer.from(
          fs.readFileSync(path.join(work, f), 'utf8').replace(/-----[A-Z ]+-----|\s/g, ''),
          'base64',
        ).toString('base64'),
      ),
    );
    expect(openssl('verify', '-x509_strict', '-CAfile', 'root.pem', '-untrusted', 'issuing.pem', 'leaf.pem')).toContain(
      'leaf.pem: OK',
    );
    expect(openssl('x509', '-in', 'leaf.pem', '-noout', '-ext', 'crlDistributionPoints')).toContain(
      'http://pki.example.test/pki/prod-issuing-g1.crl',
    );

    const revoked = signet('revoke', serial.toUpperCase(), '--reason', 'keyCompromise');
    expect(revoked.code).toBe(0);
    expect(revoked.stdout).toContain(`revoked ${serial} (keyCompromise)`);
    expect(signet('revoke', serial).stdout).toContain('was already revoked');
    const [state] = await query<{ state: string }>(database.url, 'SELECT state FROM key_versions WHERE serial = $1', [
      serial,
    ]);
    expect(state.state).toBe('revoked');
  });

  it('reports a reconciled HSM (every key pair referenced by a row), then an orphan once a key pair has no row', async () => {
    const clean = signet('hsm', 'reconcile');
    expect(clean.stdout).toMatch(/0 orphan\(s\), 0 missing/);
    expect(clean.code).toBe(0);
    // A key version row removed behind Signet's back leaves its key pair orphaned.
    await query(database.url, `UPDATE key_versions SET destroyed_at = now() WHERE serial IS NOT NULL`);
    const orphaned = signet('hsm', 'reconcile');
    expect(orphaned.stdout).toMatch(/orphan: pkcs11:token=signet;id=/);
    expect(orphaned.code).toBe(1);
  });

  it('initialises a SoftHSM2 token from a PIN file once (docker-compose hsm-init) without printing the PIN', () => {
    const dir = tempDir('hsm-init-');
    const pinFile = path.join(dir, 'pin');
    fs.writeFileSync(pinFile, 'compose-pin-4711\n', { mode: 0o600 });
    const env = {
      PATH: process.env.PATH ?? '',
      SIGNET_PKCS11_MODULE: '/usr/lib/softhsm/libsofthsm2.so',
      SIGNET_PKCS11_PIN_FILE: pinFile,
      SIGNET_PKCS11_TOKEN_LABEL: 'compose',
      SOFTHSM2_CONF: path.join(dir, 'softhsm', 'softhsm2.conf'),
    };
    const run = () =>
      spawnSync(path.join(PROJECT_ROOT, 'bin', 'signet'), ['hsm', 'init-token'], { encoding: 'utf8', env });
    const first = run();
    expect(first.status).toBe(0);
    expect(first.stdout).toContain("initialised token 'compose'");
    expect(run().stdout).toContain("token 'compose' already exists");
    expect(first.stdout + first.stderr).not.toContain('compose-pin-4711');
    const slots = spawnSync('softhsm2-util', ['--show-slots'], { encoding: 'utf8', env });
    expect(slots.stdout).toMatch(/Label:\s+compose/);
  });

  it('fails with one line and a non-zero exit for bad input', () => {
    const badSerial = signet('revoke', 'zz-not-hex');
    expect(badSerial.code).not.toBe(0);
    expect(badSerial.stderr.trim().split('\n')).toHaveLength(1);
    expect(badSerial.stderr).toMatch(/^signet revoke: /);
    const unknown = signet('revoke', 'abcdef0123');
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toMatch(/no certificate with serial abcdef0123/);
    const missing = signet('key', 'create', '--name', 'x');
    expect(missing.code).toBe(2);
    const wrongChain = signet('init', '--import-chain', 'chain.pem', '--issuing', 'prod-issuing');
    expect(wrongChain.code).not.toBe(0);
    expect(wrongChain.stderr).toMatch(/no pending generation/);
  });
});
