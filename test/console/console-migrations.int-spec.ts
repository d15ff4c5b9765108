import { DataSource } from 'typeorm';
import { ConsoleSessions1795000940000 } from '../../migrations/1795000940000-ConsoleSessions';
import { DistributionTargetEvents1795000950000 } from '../../migrations/1795000950000-DistributionTargetEvents';
import { ConsoleSearch1795000960000 } from '../../migrations/1795000960000-ConsoleSearch';
import { dataSourceOptions } from '../../src/database/data-source-options';
import { createTestDatabase, query, TestDatabase } from '../support/database';

/** The security console's migrations go down and up again cleanly on a migrated database, and their constraints hold. */
describe('console migrations', () => {
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
    (await query(database.url, `SELECT 1 FROM pg_tables WHERE tablename = 'console_sessions'`)).length;

  it('down removes its table, up restores it', async () => {
    expect(await tables()).toBe(1);
    const runner = dataSource.createQueryRunner();
    try {
      await new ConsoleSessions1795000940000().down(runner);
      expect(await tables()).toBe(0);
      await new ConsoleSessions1795000940000().up(runner);
      expect(await tables()).toBe(1);
    } finally {
      await runner.release();
    }
  });

  it('the target-change trigger and the artifact index go down and up again', async () => {
    const triggers = async () =>
      (
        await query<{ tgname: string }>(
          database.url,
          `SELECT tgname FROM pg_trigger WHERE tgrelid = 'distribution_targets'::regclass AND NOT tgisinternal ORDER BY tgname`,
        )
      ).map((r) => r.tgname);
    const index = async () =>
      (await query(database.url, `SELECT 1 FROM pg_indexes WHERE indexname = 'audit_events_artifact_digest'`)).length;
    expect(await triggers()).toEqual(['distribution_target_changed', 'distribution_target_updated']);
    expect(await index()).toBe(1);
    const runner = dataSource.createQueryRunner();
    try {
      await new ConsoleSearch1795000960000().down(runner);
      await new DistributionTargetEvents1795000950000().down(runner);
      expect(await triggers()).toEqual([]);
      expect(await index()).toBe(0);
      await new DistributionTargetEvents1795000950000().up(runner);
      await new ConsoleSearch1795000960000().up(runner);
      expect(await triggers()).toEqual(['distribution_target_changed', 'distribution_target_updated']);
      expect(await index()).toBe(1);
    } finally {
      await runner.release();
    }
  });

  it('finds the artifact index in place when an operator built it beforehand without blocking inserts (docs/operations.md, upgrade order)', async () => {
    const runner = dataSource.createQueryRunner();
    try {
      await new ConsoleSearch1795000960000().down(runner);
      await query(database.ownerUrl, `SELECT audit_create_partition(date_trunc('month', now()))`);
      // What docs/operations.md describes: the parent index ON ONLY, each partition's CONCURRENTLY, attached.
      await query(
        database.ownerUrl,
        `CREATE INDEX audit_events_artifact_digest ON ONLY audit_events ((data #>> '{artifact,digest}')) WHERE type = 'sign'`,
      );
      const partitions = await query<{ name: string }>(
        database.ownerUrl,
        `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'audit_events'::regclass`,
      );
      expect(partitions.length).toBeGreaterThan(0);
      for (const { name } of partitions) {
        await query(
          database.ownerUrl,
          `CREATE INDEX CONCURRENTLY ${name}_artifact_pre ON ${name} ((data #>> '{artifact,digest}')) WHERE type = 'sign'`,
        );
        await query(
          database.ownerUrl,
          `ALTER INDEX audit_events_artifact_digest ATTACH PARTITION ${name}_artifact_pre`,
        );
      }
      await new ConsoleSearch1795000960000().up(runner);
      const [state] = await query<{ indisvalid: boolean }>(
        database.url,
        `SELECT indisvalid FROM pg_index WHERE indexrelid = 'audit_events_artifact_digest'::regclass`,
      );
      expect(state.indisvalid).toBe(true);
    } finally {
      await runner.release();
    }
  });

  it('keeps one row per session hash, of 32 bytes, for an existing token', async () => {
    const [token] = await query<{ id: string }>(
      database.ownerUrl,
      `INSERT INTO api_tokens (name, role, token_hash) VALUES ('s', 'auditor', '\\x01') RETURNING id`,
    );
    const insert = (hash: string, tokenId: string) =>
      query(
        database.ownerUrl,
        `INSERT INTO console_sessions (session_hash, token_id, expires_at, address) VALUES (decode($1, 'hex'), $2, now() + interval '1 hour', '::1')`,
        [hash, tokenId],
      );
    await insert('ab'.repeat(32), token.id);
    await expect(insert('ab'.repeat(32), token.id)).rejects.toThrow(/duplicate key/);
    await expect(insert('ab'.repeat(16), token.id)).rejects.toThrow(/check constraint/);
    await expect(insert('cd'.repeat(32), '00000000-0000-0000-0000-000000000000')).rejects.toThrow(/foreign key/);
  });
});
