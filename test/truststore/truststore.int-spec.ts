import { createHash, X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ADMIN_TOKEN_FILE } from '../../src/auth/admin-token.bootstrap';
import { DEV_ISSUING_CA, DEV_ROOT_CA } from '../../src/ca/dev-hierarchy.bootstrap';
import { CaService } from '../../src/ca/ca.service';
import { CaCreationService } from '../../src/ca/ca-creation.service';
import { KeysService } from '../../src/keys/keys.service';
import { RevocationService } from '../../src/revocation/revocation.service';
import { TruststoreService } from '../../src/truststore/truststore.service';
import { TruststoreVersionsService } from '../../src/truststore/truststore-versions.service';
import { query } from '../support/database';
import { tempDir } from '../support/server-process';
import { startTestApp, TestApp } from '../support/test-app';
import { notationLayoutProblems, storesIn, trustPolicyRuleProblems, unpackTar } from './notary-rules';

/**
 * Truststores on the whole application (PostgreSQL, SoftHSM2, the dev CA hierarchy): what a
 * version holds, when a new one is built, and the HTTP API with its roles.
 */
describe('truststores (whole app)', () => {
  let t: TestApp;
  let admin: string;
  let truststores: TruststoreService;
  let versions: TruststoreVersionsService;
  let cas: CaService;
  const subject = { C: 'US', ST: 'Washington', O: 'Example Corp', CN: 'release' };

  const call = (method: 'GET' | 'POST' | 'PATCH', url: string, token: string | undefined, payload?: unknown) =>
    t.app.inject({
      method,
      url,
      payload: payload as object,
      headers: token ? { authorization: `Bearer ${token}` } : {},
    });

  async function token(role: string): Promise<string> {
    const response = await call('POST', '/v1/tokens', admin, {
      name: `t-${role}-${Math.random().toString(36).slice(2, 8)}`,
      role,
    });
    expect(response.statusCode).toBe(201);
    return response.json().token;
  }

  beforeAll(async () => {
    t = await startTestApp({
      SIGNET_AUDIT_CHECKPOINT_INTERVAL_SECONDS: '0',
      SIGNET_DISTRIBUTION_INTERVAL_SECONDS: '3600',
    });
    admin = fs.readFileSync(path.join(t.config.dataDir, ADMIN_TOKEN_FILE), 'utf8').trim();
    truststores = t.app.get(TruststoreService);
    versions = t.app.get(TruststoreVersionsService);
    cas = t.app.get(CaService);
    await t.app.get(KeysService).create({ name: 'release', keySpec: 'EC-256', subject });
  });
  afterAll(() => t?.close());

  const rootSha256 = async (name: string) => {
    const pem = (await cas.get(name)).generations.map((g) => g.certificate!);
    return pem.map((p) => createHash('sha256').update(new X509Certificate(p).raw).digest('hex'));
  };

  it('POST /v1/truststores builds version 1: the root, the CRLs of the root and the issuing CA, the TSA root and the key identities', async () => {
    const response = await call('POST', '/v1/truststores', admin, {
      name: 'production',
      cas: [DEV_ROOT_CA],
      trustPolicy: { registryScopes: ['registry.example.com/app'] },
    });
    expect(response.statusCode).toBe(201);
    const view = response.json();
    expect(view).toMatchObject({
      name: 'production',
      cas: [DEV_ROOT_CA],
      version: 1,
      trustPolicy: { registryScopes: ['registry.example.com/app'], level: 'strict' },
    });
    expect(view.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(view.roots.map((r: { sha256: string }) => r.sha256)).toEqual(await rootSha256(DEV_ROOT_CA));
    const issuingGeneration = (await cas.get(DEV_ISSUING_CA)).generations[0].name;
    expect(view.crls.map((c: { generation: string }) => c.generation).sort()).toEqual(
      [`${DEV_ROOT_CA}-g1`, issuingGeneration].sort(),
    );
    expect(view.tsaRoots).toHaveLength(1);
    expect(view.trustedIdentities).toEqual(['x509.subject: C=US, ST=Washington, O=Example Corp, CN=release']);
    // The digest is over the stored canonical form.
    const [row] = await query<{ canonical: Buffer; digest: string }>(
      t.database.url,
      `SELECT canonical, digest FROM truststore_versions WHERE version = 1`,
    );
    expect(`sha256:${createHash('sha256').update(row.canonical).digest('hex')}`).toBe(row.digest);
    expect(row.digest).toBe(view.digest);
  });

  it('refuses an issuing CA, an unknown CA and a bad name, naming the field', async () => {
    const issuing = await call('POST', '/v1/truststores', admin, { name: 'bad', cas: [DEV_ISSUING_CA] });
    expect(issuing.statusCode).toBe(400);
    expect(issuing.json().error.message).toMatch(/root CAs only/);
    expect((await call('POST', '/v1/truststores', admin, { name: 'bad', cas: ['nope'] })).statusCode).toBe(404);
    expect((await call('POST', '/v1/truststores', admin, { name: 'Bad_Name', cas: [DEV_ROOT_CA] })).statusCode).toBe(
      400,
    );
    expect((await call('POST', '/v1/truststores', admin, { name: 'production', cas: [DEV_ROOT_CA] })).statusCode).toBe(
      409,
    );
    expect((await call('POST', '/v1/truststores', admin, { name: 'x', cas: [DEV_ROOT_CA], extra: 1 })).statusCode).toBe(
      400,
    );
  });

  it('rebuilding without a change stores nothing; the same content always has the same digest', async () => {
    const before = await truststores.get('production');
    await expect(versions.rebuildAll('test')).resolves.toEqual([]);
    expect((await truststores.get('production')).version).toBe(before.version);
  });

  it('serves every bundle format with version and digest headers; the notation tar passes the NOTARY.md rules', async () => {
    const view = await truststores.get('production');
    const types: Record<string, string> = {
      pem: 'application/x-pem-file',
      notation: 'application/x-tar',
      pkcs12: 'application/x-pkcs12',
      ratify: 'application/yaml',
      kyverno: 'application/yaml',
      'kyverno-ivp': 'application/yaml',
      'trust-manager': 'application/yaml',
    };
    for (const [format, type] of Object.entries(types)) {
      const response = await call('GET', `/v1/truststores/production/bundle?format=${format}`, admin);
      expect(response.statusCode).toBe(200);
      expect(response.headers['content-type']).toContain(type);
      expect(response.headers['x-signet-truststore-version']).toBe(String(view.version));
      expect(response.headers.etag).toBe(`"${view.digest}"`);
    }
    const tar = await call('GET', '/v1/truststores/production/bundle?format=notation', admin);
    const dir = path.join(tempDir('notation-'), 'config');
    unpackTar(tar.rawPayload, dir);
    expect(notationLayoutProblems(dir)).toEqual([]);
    expect(
      trustPolicyRuleProblems(JSON.parse(fs.readFileSync(path.join(dir, 'trustpolicy.json'), 'utf8')), storesIn(dir)),
    ).toEqual([]);
    expect((await call('GET', '/v1/truststores/production/bundle?format=jks', admin)).statusCode).toBe(400);
    // the OpenAPI document lists every format, the ImageValidatingPolicy one included
    const openapi = (await call('GET', '/openapi.json', undefined)).json();
    const format = openapi.paths['/v1/truststores/{name}/bundle'].get.parameters.find(
      (p: { name: string }) => p.name === 'format',
    );
    expect(format.schema.enum).toEqual([
      'pem',
      'notation',
      'pkcs12',
      'ratify',
      'kyverno',
      'kyverno-ivp',
      'trust-manager',
    ]);
    expect((await call('GET', '/v1/truststores/production/bundle?format=pem&version=99', admin)).statusCode).toBe(404);
  });

  it('a new root CA added to the truststore: a new version holding both roots (rollover)', async () => {
    await t.app.get(CaCreationService).create({
      name: 'next-root',
      kind: 'root',
      keySpec: 'EC-256',
      subject: { C: 'US', ST: 'Washington', O: 'Example Corp', CN: 'Next Root' },
    });
    const response = await call('PATCH', '/v1/truststores/production', admin, { cas: [DEV_ROOT_CA, 'next-root'] });
    expect(response.statusCode).toBe(200);
    const view = response.json();
    expect(view.version).toBe(2);
    expect(view.roots.map((r: { ca: string }) => r.ca).sort()).toEqual(['next-root', DEV_ROOT_CA]);
    expect(view.reason).toEqual({
      trigger: 'updated',
      changes: expect.arrayContaining([expect.stringMatching(/roots added: next-root-g1/)]),
    });
    const [row] = await query<{ root_sha256: string[] }>(
      t.database.url,
      `SELECT root_sha256 FROM truststore_versions WHERE version = 2`,
    );
    expect(row.root_sha256.sort()).toEqual(
      [...(await rootSha256(DEV_ROOT_CA)), ...(await rootSha256('next-root'))].sort(),
    );
  });

  it('a revocation changes a CRL, hence the version; the version records when the revocation was made', async () => {
    const before = await truststores.get('production');
    const [leaf] = await t.app.get(KeysService).certificatesOf('release');
    const revoked = await t.app.get(RevocationService).revoke(leaf.serial, { reason: 'keyCompromise' });
    // The CRL rebuild (coalesced) publishes, the publishing replica rebuilds the truststores.
    const deadline = Date.now() + 30_000;
    let after = before;
    while (Date.now() < deadline && after.version === before.version) {
      await new Promise((r) => setTimeout(r, 200));
      after = await truststores.get('production');
    }
    expect(after.version).toBe(before.version + 1);
    expect(after.reason.trigger).toBe('crl');
    const [row] = await query<{ revoked_at: Date }>(
      t.database.url,
      `SELECT revoked_at FROM truststore_versions v JOIN truststores s ON s.id = v.truststore_id WHERE s.name = 'production' AND v.version = $1`,
      [after.version],
    );
    expect(row.revoked_at.toISOString()).toBe(revoked.revokedAt);
  });

  it('expired roots drop out; a retired root stays while unexpired leaves remain under it', async () => {
    const production = await truststores.byName('production');
    const in11Years = new Date(Date.now() + 11 * 365 * 86_400_000);
    const later = await versions.collect(production, in11Years);
    expect(later.roots).toEqual([]);
    // Retire the dev root generation: the release key's leaf (unexpired) keeps it in.
    await query(t.database.url, `UPDATE ca_generations SET state = 'retired' WHERE name = $1`, [`${DEV_ROOT_CA}-g1`]);
    try {
      const now = await versions.collect(production);
      expect(now.roots.map((r) => r.ca).sort()).toEqual(['next-root', DEV_ROOT_CA]);
      // Once those leaves have expired (two years on), the retired root leaves too; next-root stays.
      const in2Years = await versions.collect(production, new Date(Date.now() + 2 * 365 * 86_400_000));
      expect(in2Years.roots.map((r) => r.ca)).toEqual(['next-root']);
    } finally {
      await query(t.database.url, `UPDATE ca_generations SET state = 'active' WHERE name = $1`, [`${DEV_ROOT_CA}-g1`]);
    }
  });

  it('trust-manager namespace selector: the default, one chosen at creation, changed (a new version) and reset; a bad one refused with nothing written', async () => {
    const bundleOf = async (name: string) =>
      (await call('GET', `/v1/truststores/${name}/bundle?format=trust-manager`, admin)).body;
    const created = await call('POST', '/v1/truststores', admin, {
      name: 'scoped',
      cas: [DEV_ROOT_CA],
      trustManager: { namespaceSelector: { matchLabels: { team: 'payments' } } },
    });
    expect(created.statusCode).toBe(201);
    expect(created.json().trustManager).toEqual({ namespaceSelector: { matchLabels: { team: 'payments' } } });
    expect(await bundleOf('scoped')).toContain('namespaceSelector:\n      matchLabels:\n        team: payments');
    // the default for a truststore that sets none
    expect((await truststores.get('production')).trustManager).toEqual({
      namespaceSelector: { matchLabels: { 'signet.io/trust': 'true' } },
    });
    expect(await bundleOf('production')).toContain("signet.io/trust: 'true'");

    const changed = await call('PATCH', '/v1/truststores/scoped', admin, {
      trustManager: { namespaceSelector: { matchExpressions: [{ key: 'env', operator: 'In', values: ['prod'] }] } },
    });
    expect(changed.statusCode).toBe(200);
    expect(changed.json()).toMatchObject({ version: 2, reason: { changes: ['trust-manager settings changed'] } });
    const [row] = await query<{ trust_manager: unknown }>(
      t.database.url,
      `SELECT trust_manager FROM truststores WHERE name = 'scoped'`,
    );
    expect(row.trust_manager).toEqual({
      namespaceSelector: { matchExpressions: [{ key: 'env', operator: 'In', values: ['prod'] }] },
    });

    const bad = await call('PATCH', '/v1/truststores/scoped', admin, {
      trustManager: { namespaceSelector: { matchLabels: { 'no spaces': 'x' } } },
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error).toMatchObject({
      code: 'VALIDATION_ERROR',
      details: { field: 'trustManager.namespaceSelector.matchLabels' },
    });
    expect((await truststores.get('scoped')).version).toBe(2);

    const reset = await call('PATCH', '/v1/truststores/scoped', admin, { trustManager: null });
    expect(reset.json()).toMatchObject({
      version: 3,
      trustManager: { namespaceSelector: { matchLabels: { 'signet.io/trust': 'true' } } },
    });
    const audit = (await call('GET', '/v1/audit?type=truststore.updated', admin)).json().events as Array<{
      subject: string;
      data: Record<string, unknown>;
    }>;
    expect(audit.filter((e) => e.subject === 'scoped').map((e) => e.data.trustManager)).toEqual([
      { namespaceSelector: { matchExpressions: [{ key: 'env', operator: 'In', values: ['prod'] }] } },
      null,
    ]);
  });

  it('roles: auditors and security officers read; only admins create and alter', async () => {
    const auditor = await token('auditor');
    const officer = await token('security-officer');
    const signer = await token('signer');
    expect((await call('GET', '/v1/truststores/production', auditor)).statusCode).toBe(200);
    expect((await call('GET', '/v1/truststores', officer)).statusCode).toBe(200);
    expect((await call('GET', '/v1/truststores/production/bundle?format=pem', auditor)).statusCode).toBe(200);
    expect((await call('GET', '/v1/truststores/production', signer)).statusCode).toBe(403);
    expect((await call('GET', '/v1/truststores/production', undefined)).statusCode).toBe(401);
    expect((await call('POST', '/v1/truststores', officer, { name: 'other', cas: [DEV_ROOT_CA] })).statusCode).toBe(
      403,
    );
    expect((await call('PATCH', '/v1/truststores/production', auditor, { cas: [DEV_ROOT_CA] })).statusCode).toBe(403);
  });

  it('every version is audited', async () => {
    const response = await call('GET', '/v1/audit?type=truststore.version.created', admin);
    expect(response.statusCode).toBe(200);
    const events = response.json().events as Array<{ subject: string; data: { version: number; digest: string } }>;
    const versions = events.filter((e) => e.subject === 'production').map((e) => e.data.version);
    expect(versions).toEqual(expect.arrayContaining([1, 2, 3]));
  });
});
