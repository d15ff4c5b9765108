import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ecdsaRawToDer } from '../../src/pki/signature-algorithms';
import { ensureBuilt, freePort, PROJECT_ROOT, ServerProcess, tempDir } from '../support/server-process';

/**
 * Backup and restore drill on the real parts: a server on embedded defaults (PostgreSQL + SoftHSM2
 * token in its data dir) is backed up with `signet backup` while it runs, restored with
 * `signet restore` into a fresh data dir, and the restored server signs with the same key, serves
 * the same chain, and its audit chain and checkpoints verify.
 */
describe('backup and restore drill', () => {
  beforeAll(() => ensureBuilt());

  function signet(dataDir: string, ...args: string[]) {
    return spawnSync(path.join(PROJECT_ROOT, 'bin', 'signet'), args, {
      encoding: 'utf8',
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', SIGNET_DATA_DIR: dataDir },
    });
  }

  async function api(server: ServerProcess, token: string, method: string, url: string, body?: unknown) {
    const response = await fetch(`${server.url}${url}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await response.text();
    return { status: response.status, text, json: () => JSON.parse(text) };
  }

  async function signAndVerify(server: ServerProcess, token: string, work: string, label: string): Promise<string> {
    const message = Buffer.from(`artifact ${label}`);
    const digest = createHash('sha256').update(message).digest();
    const signed = await api(server, token, 'POST', '/v1/keys/backup-key/sign', {
      digest: digest.toString('base64'),
      hashAlgorithm: 'SHA-256',
    });
    expect(signed.status).toBe(200);
    const { signature, certificateChain } = signed.json() as { signature: string; certificateChain: string[] };
    const pems = certificateChain.map(
      (der) => `-----BEGIN CERTIFICATE-----\n${der.match(/.{1,64}/g)!.join('\n')}\n-----END CERTIFICATE-----\n`,
    );
    fs.writeFileSync(path.join(work, `${label}-leaf.pem`), pems[0]);
    fs.writeFileSync(path.join(work, `${label}-issuing.pem`), pems[1]);
    fs.writeFileSync(path.join(work, `${label}-root.pem`), pems[2]);
    fs.writeFileSync(path.join(work, `${label}.msg`), message);
    fs.writeFileSync(path.join(work, `${label}.sig`), ecdsaRawToDer(Buffer.from(signature, 'base64')));
    execFileSync('openssl', ['x509', '-in', `${label}-leaf.pem`, '-pubkey', '-noout', '-out', `${label}.pub`], {
      cwd: work,
    });
    expect(
      execFileSync(
        'openssl',
        ['dgst', '-sha256', '-verify', `${label}.pub`, '-signature', `${label}.sig`, `${label}.msg`],
        { cwd: work, encoding: 'utf8' },
      ),
    ).toContain('Verified OK');
    expect(
      execFileSync(
        'openssl',
        [
          'verify',
          '-x509_strict',
          '-CAfile',
          `${label}-root.pem`,
          '-untrusted',
          `${label}-issuing.pem`,
          `${label}-leaf.pem`,
        ],
        { cwd: work, encoding: 'utf8' },
      ),
    ).toContain('OK');
    return pems.join('');
  }

  it('restores keys, chains, tokens and a verifying audit chain into a fresh data dir', async () => {
    const source = tempDir('backup-src-');
    const target = tempDir('backup-dst-');
    const work = tempDir('backup-work-');
    const backupDir = path.join(tempDir('backup-out-'), 'b1');

    const a = new ServerProcess(await freePort(), { SIGNET_DATA_DIR: source });
    await a.waitReady();
    const admin = fs.readFileSync(path.join(source, 'admin.token'), 'utf8').trim();
    const created = await api(a, admin, 'POST', '/v1/keys', {
      name: 'backup-key',
      keySpec: 'EC-256',
      subject: { C: 'US', ST: 'Washington', O: 'Example Corp', CN: 'backup-key' },
    });
    expect(created.status).toBe(201);
    const chainBefore = await signAndVerify(a, admin, work, 'before');
    expect((await api(a, admin, 'POST', '/v1/audit/checkpoints')).status).toBeLessThan(300);

    // Taken while the server runs: the CLI attaches to its PostgreSQL.
    const backup = signet(source, 'backup', '--out', backupDir);
    expect(backup.stderr).toBe('');
    expect(backup.status).toBe(0);
    expect(backup.stdout).toContain('token included');
    expect(fs.statSync(backupDir).mode & 0o077).toBe(0);
    a.kill('SIGTERM');
    expect((await a.exited).code).toBe(0);

    const restore = signet(target, 'restore', '--from', backupDir);
    expect({
      status: restore.status,
      stderr: restore.stderr
        .split('\n')
        .filter((l) => !l.includes('"level":"warn"'))
        .join('\n')
        .trim(),
    }).toEqual({ status: 0, stderr: '' });
    expect(restore.stdout).toMatch(/^restored \d+ rows/);
    // A second restore into the same place is refused.
    expect(signet(target, 'restore', '--from', backupDir).status).not.toBe(0);

    const b = new ServerProcess(await freePort(), { SIGNET_DATA_DIR: target });
    await b.waitReady();
    try {
      // The admin token of the source still authenticates: tokens are restored (as hashes).
      const chainAfter = await signAndVerify(b, admin, work, 'after');
      expect(chainAfter).toBe(chainBefore);
      const verify = await api(b, admin, 'GET', '/v1/audit/verify?full=true');
      expect(verify.status).toBe(200);
      expect(verify.json()).toMatchObject({ ok: true });
      expect(verify.json().lastCheckpoint).not.toBeNull();
    } finally {
      b.kill('SIGTERM');
      await b.exited;
    }
  });
});
