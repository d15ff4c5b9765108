import { DataSource } from 'typeorm';
import { dataSourceOptions } from '../../src/database/data-source-options';
import { Truststores1795000600000 } from '../../migrations/1795000600000-Truststores';
import { Distribution1795000610000 } from '../../migrations/1795000610000-Distribution';
import { TruststoreTrustManager1795000930000 } from '../../migrations/1795000930000-TruststoreTrustManager';
import { createTestDatabase, query, TestDatabase } from '../support/database';

/** The truststore and distribution migrations go down and up again cleanly on a migrated database. */
describe('truststore and distribution migrations', () => {
  let database: TestDatabase;
  let dataSource: DataSource;

  beforeAll(async () => {
    database = await createTestDatabase();
    // Migrations run as the owner role, as in production.
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
        `SELECT tablename FROM pg_tables WHERE tablename LIKE 'truststore%' OR tablename LIKE 'distribution%' ORDER BY tablename`,
      )
    ).map((r) => r.tablename);

  it('TruststoreTrustManager: down drops truststores.trust_manager, up adds it back (nullable, objects only)', async () => {
    const columns = async () =>
      (
        await query<{ column_name: string }>(
          database.url,
          `SELECT column_name FROM information_schema.columns WHERE table_name = 'truststores' AND column_name = 'trust_manager'`,
        )
      ).length;
    expect(await columns()).toBe(1);
    const runner = dataSource.createQueryRunner();
    try {
      await new TruststoreTrustManager1795000930000().down(runner);
      expect(await columns()).toBe(0);
      await new TruststoreTrustManager1795000930000().up(runner);
      expect(await columns()).toBe(1);
      await expect(
        runner.query(
          `INSERT INTO truststores (name, ca_ids, trust_policy, current_version, trust_manager) VALUES ('m', '{}', '{}', 0, '[]')`,
        ),
      ).rejects.toThrow(/check/i);
    } finally {
      await runner.release();
    }
  });

  it('down removes exactly their tables, up restores them', async () => {
    const all = [
      'distribution_deliveries',
      'distribution_regions',
      'distribution_targets',
      'truststore_versions',
      'truststores',
    ];
    expect(await tables()).toEqual(all);
    const runner = dataSource.createQueryRunner();
    try {
      await new Distribution1795000610000().down(runner);
      expect(await tables()).toEqual(['truststore_versions', 'truststores']);
      await new Truststores1795000600000().down(runner);
      expect(await tables()).toEqual([]);
      await new Truststores1795000600000().up(runner);
      await new Distribution1795000610000().up(runner);
      expect(await tables()).toEqual(all);
    } finally {
      await runner.release();
    }
  });
});
