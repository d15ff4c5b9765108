import { Client } from 'pg';
import {
  APP_FUNCTIONS,
  APP_SEQUENCE_PRIVILEGES,
  APP_TABLE_PRIVILEGES,
  applyAppRoleGrants,
} from '../../src/database/app-role';
import { createTestDatabase, query, TEST_APP_ROLE, TestDatabase } from '../support/database';

const TABLE_PRIVILEGES = ['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER'] as const;

/**
 * The service role's privileges after every migration, held against the one matrix that grants
 * them (src/database/app-role.ts). A migration adding a table fails here until the table is listed
 * with exactly the privileges its code needs; a privilege nobody listed is never there.
 */
describe('service role grants after all migrations', () => {
  let database: TestDatabase;

  beforeAll(async () => {
    database = await createTestDatabase();
  });
  afterAll(async () => {
    await database?.drop();
  });

  it('every table and sequence is in the matrix, and the matrix names nothing that does not exist', async () => {
    const relations = await query<{ name: string; kind: string }>(
      database.adminUrl,
      `SELECT relname AS name, relkind::text AS kind FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p', 'S', 'v', 'm') AND NOT relispartition ORDER BY 1`,
    );
    expect(relations.filter((r) => r.kind !== 'S').map((r) => r.name)).toEqual(
      Object.keys(APP_TABLE_PRIVILEGES).sort(),
    );
    expect(relations.filter((r) => r.kind === 'S').map((r) => r.name)).toEqual(
      Object.keys(APP_SEQUENCE_PRIVILEGES).sort(),
    );
  });

  it('the service role holds exactly the listed table privileges, none on partitions, and never TRUNCATE, REFERENCES or TRIGGER', async () => {
    // A partition made the way the service makes them (through the owner's function).
    await query(
      database.url,
      `SELECT audit_create_partition(date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')`,
    );
    const actual = await query<{ name: string; privileges: string[] }>(
      database.adminUrl,
      `SELECT c.relname AS name, array(SELECT p FROM unnest($2::text[]) AS p WHERE has_table_privilege($1, c.oid, p)) AS privileges
         FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p') ORDER BY 1`,
      [TEST_APP_ROLE, TABLE_PRIVILEGES],
    );
    const partitions = actual.filter((t) => /^audit_events_p\d{6}$/.test(t.name));
    expect(partitions.length).toBeGreaterThan(0);
    for (const partition of partitions) expect(partition).toEqual({ name: partition.name, privileges: [] });
    expect(
      Object.fromEntries(actual.filter((t) => !partitions.includes(t)).map((t) => [t.name, t.privileges])),
    ).toEqual(
      Object.fromEntries(
        Object.entries(APP_TABLE_PRIVILEGES).map(([name, privileges]) => [
          name,
          TABLE_PRIVILEGES.filter((p) => privileges.includes(p as never)),
        ]),
      ),
    );
  });

  it('sequences and functions: only what is listed', async () => {
    const sequences = await query<{ name: string; privileges: string[] }>(
      database.adminUrl,
      `SELECT relname AS name, array(SELECT p FROM unnest(ARRAY['SELECT', 'USAGE', 'UPDATE']) AS p WHERE has_sequence_privilege($1, oid, p)) AS privileges
         FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind = 'S' ORDER BY 1`,
      [TEST_APP_ROLE],
    );
    expect(Object.fromEntries(sequences.map((s) => [s.name, s.privileges]))).toEqual(APP_SEQUENCE_PRIVILEGES);
    const functions = await query<{ signature: string }>(
      database.adminUrl,
      `SELECT oid::regprocedure::text AS signature FROM pg_proc WHERE pronamespace = 'public'::regnamespace AND has_function_privilege($1, oid, 'EXECUTE') ORDER BY 1`,
      [TEST_APP_ROLE],
    );
    const listed = await query<{ signature: string }>(
      database.adminUrl,
      'SELECT to_regprocedure(f)::text AS signature FROM unnest($1::text[]) AS f ORDER BY 1',
      [APP_FUNCTIONS],
    );
    expect(functions).toEqual(listed);
  });

  it('a privilege granted outside the matrix is gone after the grants are applied again (every start does)', async () => {
    await query(database.ownerUrl, `GRANT DELETE, TRUNCATE ON api_tokens TO ${TEST_APP_ROLE}`);
    expect(
      (
        await query<{ yes: boolean }>(
          database.adminUrl,
          `SELECT has_table_privilege($1, 'api_tokens', 'TRUNCATE') AS yes`,
          [TEST_APP_ROLE],
        )
      )[0].yes,
    ).toBe(true);
    const owner = new Client({ connectionString: database.ownerUrl });
    await owner.connect();
    try {
      await applyAppRoleGrants(owner, TEST_APP_ROLE);
    } finally {
      await owner.end();
    }
    const [after] = await query<{ del: boolean; truncate: boolean; update: boolean }>(
      database.adminUrl,
      `SELECT has_table_privilege($1, 'api_tokens', 'DELETE') AS del, has_table_privilege($1, 'api_tokens', 'TRUNCATE') AS truncate, has_table_privilege($1, 'api_tokens', 'UPDATE') AS update`,
      [TEST_APP_ROLE],
    );
    expect(after).toEqual({ del: false, truncate: false, update: true });
  });
});
