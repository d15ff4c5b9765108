import { DataSource } from 'typeorm';
import { WorkloadIdentity1795000920000 } from '../../migrations/1795000920000-WorkloadIdentity';
import { dataSourceOptions } from '../../src/database/data-source-options';
import { createTestDatabase, query, TestDatabase } from '../support/database';

/** The workload identity migration goes down and up again cleanly on a migrated database, and its constraints hold. */
describe('workload identity migration', () => {
  let database: TestDatabase;
  let dataSource: DataSource;

  beforeAll(async () => {
    database = await createTestDatabase();
    // Migrations run as the owner role (the service role may not create or drop tables).
    dataSource = await new DataSource(dataSourceOptions(database.ownerUrl, 2)).initialize();
  });
  afterAll(async () => {
    await dataSource?.destroy();
    await database?.drop();
  });

  const tables = async () =>
    (
      await query<{ tablename: string }>(
        database.url,
        `SELECT tablename FROM pg_tables WHERE tablename IN ('identity_providers', 'workload_rules', 'oidc_used_tokens') ORDER BY tablename`,
      )
    ).map((r) => r.tablename);
  const subIndex = async () =>
    (await query(database.url, `SELECT 1 FROM pg_indexes WHERE indexname = 'audit_events_workload_sub'`)).length;

  it('down removes exactly its tables and index, up restores them', async () => {
    const all = ['identity_providers', 'oidc_used_tokens', 'workload_rules'];
    expect(await tables()).toEqual(all);
    expect(await subIndex()).toBe(1);
    const runner = dataSource.createQueryRunner();
    try {
      await new WorkloadIdentity1795000920000().down(runner);
      expect(await tables()).toEqual([]);
      expect(await subIndex()).toBe(0);
      await new WorkloadIdentity1795000920000().up(runner);
      expect(await tables()).toEqual(all);
      expect(await subIndex()).toBe(1);
    } finally {
      await runner.release();
    }
  });

  // As the owner: the tables were dropped and made again above, and grants come at the next start.
  it('deleting a provider takes its rules and ledger rows; a jti is recorded once per provider', async () => {
    const [provider] = await query<{ id: string }>(
      database.ownerUrl,
      `INSERT INTO identity_providers (name, issuer, audiences, allowed_algorithms, clock_skew_seconds) VALUES ('p', 'https://issuer.example.com', '{signet}', '{RS256}', 60) RETURNING id`,
    );
    await query(
      database.ownerUrl,
      `INSERT INTO workload_rules (name, provider_id, claims, key_names) VALUES ('r', $1, '{"sub":"x"}', '{release}')`,
      [provider.id],
    );
    await query(
      database.ownerUrl,
      `INSERT INTO oidc_used_tokens (provider_id, jti, expires_at) VALUES ($1, 'j1', now() + interval '5 minutes')`,
      [provider.id],
    );
    await expect(
      query(
        database.ownerUrl,
        `INSERT INTO oidc_used_tokens (provider_id, jti, expires_at) VALUES ($1, 'j1', now() + interval '5 minutes')`,
        [provider.id],
      ),
    ).rejects.toThrow(/duplicate key/);
    await expect(
      query(
        database.ownerUrl,
        `INSERT INTO workload_rules (name, provider_id, claims, key_names) VALUES ('empty', $1, '{"sub":"x"}', '{}')`,
        [provider.id],
      ),
    ).rejects.toThrow(/check constraint/);
    await query(database.ownerUrl, `DELETE FROM identity_providers WHERE id = $1`, [provider.id]);
    expect(
      await query(database.ownerUrl, 'SELECT 1 FROM workload_rules UNION ALL SELECT 1 FROM oidc_used_tokens'),
    ).toEqual([]);
  });
});
