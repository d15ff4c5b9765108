import * as fs from 'node:fs';
import * as path from 'node:path';
import { DataSource } from 'typeorm';
import { dataSourceOptions } from '../../src/database/data-source-options';
import { ArtifactSigningSource1795000910000 } from '../../migrations/1795000910000-ArtifactSigningSource';
import { ADMIN_TOKEN_FILE } from '../../src/auth/admin-token.bootstrap';
import { query } from '../support/database';
import { startTestApp, TestApp } from '../support/test-app';
import { notarySigningInput, SUBJECT } from './support/signing-kit';

/**
 * Promotion evidence written before issue #17 (`artifact_signings` rows that may come from a
 * claimed `artifact`) no longer counts; the migration adding `artifact_source` goes down and up
 * on a database with rows, and a replica of the previous version (which inserts without the
 * column) keeps working beside the new one.
 */
describe('artifact_signings.artifact_source (migration 1795000910000)', () => {
  let t: TestApp;
  let admin: string;

  const sign = (key: string, signingInput: string) =>
    t.app.inject({
      method: 'POST',
      url: `/v1/keys/${key}/sign`,
      headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
      payload: JSON.stringify({ payload: Buffer.from(signingInput).toString('base64'), hashAlgorithm: 'SHA-256' }),
    });
  const rows = () =>
    query<{ artifact_digest: string; key_name: string; artifact_source: string }>(
      t.database.url,
      'SELECT artifact_digest, key_name, artifact_source FROM artifact_signings ORDER BY key_name, artifact_source',
    );

  beforeAll(async () => {
    t = await startTestApp({ SIGNET_AUDIT_CHECKPOINT_INTERVAL_SECONDS: '0' });
    admin = fs.readFileSync(path.join(t.config.dataDir, ADMIN_TOKEN_FILE), 'utf8').trim();
    for (const [name, requires] of [
      ['src-test', []],
      ['src-prod', ['src-test']],
    ] as const) {
      const created = await t.app.inject({
        method: 'POST',
        url: '/v1/keys',
        headers: { authorization: `Bearer ${admin}` },
        payload: { name, keySpec: 'EC-256', subject: { ...SUBJECT, CN: name }, requires },
      });
      expect(created.statusCode).toBe(201);
    }
  }, 300_000);
  afterAll(() => t?.close());

  it('does not count a legacy row (as the previous version inserts it) as evidence; a signing from the payload is added beside it and counts', async () => {
    const image = notarySigningInput('EC-256', 'legacy-image', new Date('2026-12-01T00:00:00Z'));
    // What the previous version wrote for a claimed artifact: no artifact_source column given.
    await query(
      t.database.url,
      `INSERT INTO artifact_signings (artifact_digest, key_name, key_version_id, key_version, audit_seq)
       SELECT $1, 'src-test', v.id, v.version, NULL FROM key_versions v JOIN signing_keys k ON k.id = v.key_id WHERE k.name = 'src-test'`,
      [image.digest],
    );
    expect(await rows()).toEqual([{ artifact_digest: image.digest, key_name: 'src-test', artifact_source: 'legacy' }]);
    const refused = await sign(
      'src-prod',
      notarySigningInput('EC-256', 'legacy-image', new Date('2026-12-01T00:01:00Z')).signingInput,
    );
    expect(refused.statusCode).toBe(409);
    expect(refused.json().error.details.missing).toEqual(['src-test']);

    expect((await sign('src-test', image.signingInput)).statusCode).toBe(200);
    expect(await rows()).toEqual([
      { artifact_digest: image.digest, key_name: 'src-test', artifact_source: 'legacy' },
      { artifact_digest: image.digest, key_name: 'src-test', artifact_source: 'payload' },
    ]);
    expect(
      (
        await sign(
          'src-prod',
          notarySigningInput('EC-256', 'legacy-image', new Date('2026-12-01T00:02:00Z')).signingInput,
        )
      ).statusCode,
    ).toBe(200);
    expect((await rows()).map((r) => [r.key_name, r.artifact_source])).toEqual([
      ['src-prod', 'payload'],
      ['src-test', 'legacy'],
      ['src-test', 'payload'],
    ]);
  });

  it('goes down to one row per (artifact, key, version) and up again', async () => {
    // Migrations run as the owner role (the service role may not alter tables).
    const owner = await new DataSource(dataSourceOptions(t.database.ownerUrl, 1)).initialize();
    const runner = owner.createQueryRunner();
    const migration = new ArtifactSigningSource1795000910000();
    try {
      await migration.down(runner);
      const columns = await query<{ column_name: string }>(
        t.database.url,
        `SELECT column_name FROM information_schema.columns WHERE table_name = 'artifact_signings' ORDER BY column_name`,
      );
      expect(columns.map((c) => c.column_name)).not.toContain('artifact_source');
      expect(await query(t.database.url, 'SELECT key_name FROM artifact_signings ORDER BY key_name')).toEqual([
        { key_name: 'src-prod' },
        { key_name: 'src-test' },
      ]);
      await migration.up(runner);
      expect((await rows()).map((r) => [r.key_name, r.artifact_source])).toEqual([
        ['src-prod', 'legacy'],
        ['src-test', 'legacy'],
      ]);
    } finally {
      await runner.release();
      await owner.destroy();
    }
  });
});
