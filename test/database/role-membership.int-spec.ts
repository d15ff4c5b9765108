import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import { serviceRoleProblem } from '../../src/database/app-role';
import { createTestDatabase, query, TEST_OWNER_ROLE, TestDatabase } from '../support/database';

/**
 * A service role that is not itself privileged but can SET ROLE to a role that is (a superuser, or
 * the owner of the audit tables) can do everything that role can: switch the audit triggers off,
 * TRUNCATE or DETACH partitions. The start-up check counts every role it can become, NOINHERIT
 * memberships included.
 */
describe('the start-up check of the service role: memberships', () => {
  let database: TestDatabase;
  const roles: string[] = [];

  beforeAll(async () => {
    database = await createTestDatabase();
  });
  afterAll(async () => {
    for (const role of roles) await query(database.adminUrl, `DROP ROLE IF EXISTS ${role}`).catch(() => undefined);
    await database?.drop();
  });

  /** A fresh login role with `grant` applied to it by the superuser; the check's answer when it connects. */
  const problemFor = async (grant: (role: string) => string[]): Promise<string | undefined> => {
    const role = `signet_member_${randomBytes(4).toString('hex')}`;
    const password = randomBytes(12).toString('hex');
    roles.push(role);
    await query(database.adminUrl, `CREATE ROLE ${role} LOGIN PASSWORD '${password}'`);
    for (const statement of grant(role)) await query(database.adminUrl, statement);
    const url = new URL(database.adminUrl);
    url.username = role;
    url.password = password;
    const client = new Client({ connectionString: url.toString() });
    await client.connect();
    try {
      return await serviceRoleProblem(client);
    } finally {
      await client.end();
    }
  };
  const superuserName = async (): Promise<string> =>
    (await query<{ name: string }>(database.adminUrl, 'SELECT current_user AS name'))[0].name;

  it('passes a plain role granted only what the service needs', async () => {
    expect(await problemFor(() => [])).toBeUndefined();
  });

  it('refuses a member of a superuser role (SET ROLE makes it one), even with NOINHERIT', async () => {
    const admin = await superuserName();
    expect(await problemFor((role) => [`GRANT ${admin} TO ${role}`])).toMatch(
      new RegExp(`is a superuser \\(through membership in .*${admin}`),
    );
    expect(await problemFor((role) => [`ALTER ROLE ${role} NOINHERIT`, `GRANT ${admin} TO ${role}`])).toMatch(
      /is a superuser \(through membership/,
    );
  });

  it("refuses a NOINHERIT member of the audit tables' owner", async () => {
    expect(await problemFor((role) => [`ALTER ROLE ${role} NOINHERIT`, `GRANT ${TEST_OWNER_ROLE} TO ${role}`])).toMatch(
      /owns \(or is a member of the owner of\) .*audit_events/,
    );
  });
});
