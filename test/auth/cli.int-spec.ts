import * as fs from 'node:fs';
import * as path from 'node:path';
import { runCli } from '../../src/cli/main';
import { createTestDatabase, query, TestDatabase } from '../support/database';
import { tempDir } from '../support/server-process';
import { createTestToken } from '../support/softhsm';

/** `signet token create` and `signet audit verify`, run in-process as `bin/signet` runs them. */
describe('signet token create / audit verify', () => {
  let database: TestDatabase;
  const saved = { ...process.env };

  async function cli(...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    const out: string[] = [];
    const err: string[] = [];
    const stdout = jest.spyOn(process.stdout, 'write').mockImplementation((chunk) => (out.push(String(chunk)), true));
    const stderr = jest.spyOn(process.stderr, 'write').mockImplementation((chunk) => (err.push(String(chunk)), true));
    try {
      const code = await runCli(argv);
      return { code, stdout: out.join(''), stderr: err.join('') };
    } finally {
      stdout.mockRestore();
      stderr.mockRestore();
      process.exitCode = undefined;
    }
  }

  beforeAll(async () => {
    database = await createTestDatabase();
    const token = await createTestToken('cli');
    const dataDir = tempDir('cli-');
    const pinFile = path.join(dataDir, 'pin');
    fs.writeFileSync(pinFile, token.pin, { mode: 0o600 });
    Object.assign(process.env, {
      DATABASE_URL: database.url,
      SIGNET_DATA_DIR: dataDir,
      SIGNET_PKCS11_MODULE: token.modulePath,
      SIGNET_PKCS11_PIN_FILE: pinFile,
      SIGNET_PKCS11_TOKEN_LABEL: token.tokenLabel,
      SIGNET_LOG_LEVEL: 'error',
    });
  });
  afterAll(async () => {
    process.env = saved;
    await database.drop();
  });

  it('creates a token, printing it once and alone on stdout', async () => {
    const result = await cli(
      'token',
      'create',
      '--name',
      'ci',
      '--role',
      'signer',
      '--key',
      'release',
      '--key',
      'staging',
      '--expires-in-days',
      '90',
    );
    expect(result.code).toBe(0);
    const token = result.stdout.trim();
    expect(token).toMatch(/^sgt_[A-Za-z0-9_-]{43}$/);
    expect(result.stderr).toMatch(/created signer token "ci" .*shown only now/);
    expect(result.stderr).not.toContain(token);
    const [row] = await query<{ role: string; key_grants: string[]; expires_at: Date }>(
      database.url,
      `SELECT role, key_grants, expires_at FROM api_tokens WHERE name = 'ci'`,
    );
    expect(row).toMatchObject({ role: 'signer', key_grants: ['release', 'staging'] });
    expect(row.expires_at.getTime()).toBeGreaterThan(Date.now() + 89 * 86400_000);
    const [event] = await query<{ type: string; actor: { address: string } }>(
      database.url,
      'SELECT type, actor FROM audit_events ORDER BY seq DESC LIMIT 1',
    );
    expect(event).toMatchObject({
      type: 'token.created',
      actor: { tokenName: 'cli', address: expect.stringMatching(/^cli:/) },
    });
  });

  it('refuses bad arguments with exit code 2 and one line', async () => {
    const bad = await cli('token', 'create', '--name', 'x', '--role', 'root');
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(bad.stderr).toMatch(/--role must be one of admin, signer, security-officer, auditor/);
    expect((await cli('token', 'create', '--role', 'admin')).code).toBe(2);
  });

  it('verifies the audit log: exit 0 when intact, exit 1 naming the first bad seq when not', async () => {
    const ok = await cli('audit', 'verify', '--full');
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/^audit log OK: 1 row\(s\) checked after seq 0 up to seq 1 \(full\); no checkpoint yet/);
    const json = await cli('audit', 'verify', '--json');
    expect(JSON.parse(json.stdout)).toMatchObject({ ok: true, head: '1' });

    await query(
      database.adminUrl,
      `ALTER TABLE audit_events DISABLE TRIGGER USER; UPDATE audit_events SET subject = 'forged' WHERE seq = 1; ALTER TABLE audit_events ENABLE TRIGGER USER`,
    );
    const broken = await cli('audit', 'verify');
    expect(broken.code).toBe(1);
    expect(broken.stderr.trim()).toBe(
      'signet audit verify: audit log BROKEN at seq 1: row 1 does not match its hash: its content was altered (edited or swapped)',
    );
  });

  it('says when a workload rule would make a long-lived signer token unnecessary', async () => {
    const plain = await cli('token', 'create', '--name', 'ci-plain', '--role', 'signer', '--key', 'nightly');
    expect(plain.code).toBe(0);
    expect(plain.stderr).toMatch(
      /hint: CI pipelines with an OIDC issuer .* add a workload rule \(POST \/v1\/workload-rules\)/,
    );
    const [provider] = await query<{ id: string }>(
      database.url,
      `INSERT INTO identity_providers (name, issuer, audiences, allowed_algorithms, clock_skew_seconds) VALUES ('gha', 'https://token.actions.githubusercontent.com', '{signet}', '{RS256}', 60) RETURNING id`,
    );
    await query(
      database.url,
      `INSERT INTO workload_rules (name, provider_id, claims, key_names) VALUES ('app-release', $1, '{"repository":"acme/app"}', '{release}')`,
      [provider.id],
    );
    const covered = await cli('token', 'create', '--name', 'ci-covered', '--role', 'signer', '--key', 'release');
    expect(covered.code).toBe(0);
    expect(covered.stderr).toMatch(
      /hint: workload rule "app-release" already let CI pipelines sign with release using short-lived OIDC ID tokens/,
    );
    expect(covered.stdout.trim()).toMatch(/^sgt_/);
    // Other roles get no hint.
    const auditor = await cli('token', 'create', '--name', 'ci-auditor', '--role', 'auditor');
    expect(auditor.stderr).not.toContain('hint:');
  });
});
