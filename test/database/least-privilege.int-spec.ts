import * as fs from 'node:fs';
import * as path from 'node:path';
import { Client } from 'pg';
import { DataSource } from 'typeorm';
import { recomputeHash } from '../../src/audit/audit-verifier';
import { ROW_COLUMNS, toRow } from '../../src/audit/audit.repository';
import { AuditService } from '../../src/audit/audit.service';
import { ADMIN_TOKEN_FILE } from '../../src/auth/admin-token.bootstrap';
import { createNodeSigner } from '../support/node-signer';
import { query, TEST_APP_ROLE, TEST_OWNER_ROLE } from '../support/database';
import { startTestApp, TestApp } from '../support/test-app';
import { createAuditHarness } from '../audit/audit-harness';

/**
 * Issue #17, audit tail rewrite: the role the service runs as could rewrite the audit log (it was
 * the database superuser): `SET session_replication_role = replica`, edit a row, recompute the
 * hashes to the head, and a full verify said ok. Against real PostgreSQL, as the very role the
 * running application uses, every step of that and of the other ways around the append-only
 * triggers is refused.
 */
describe('the service role cannot rewrite the audit log', () => {
  let t: TestApp;
  let serviceUrl: string;
  let partition: string;

  beforeAll(async () => {
    t = await startTestApp();
    await t.app.get(AuditService).record({ type: 'test.event', subject: 'one', data: { i: 1 } });
    await t.app.get(AuditService).record({ type: 'test.event', subject: 'two', data: { i: 2 } });
    // The URL the application's own pool connects with.
    serviceUrl = (t.app.get(DataSource).options as { url: string }).url;
    partition = (
      await query<{ name: string }>(
        serviceUrl,
        `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'audit_events'::regclass ORDER BY 1 LIMIT 1`,
      )
    )[0].name;
  });
  afterAll(async () => {
    await t?.close();
  });

  /** Runs `sql` as the service role; resolves with the error PostgreSQL answered, or undefined when it was done. */
  async function asService(sql: string): Promise<{ code?: string; message: string } | undefined> {
    const client = new Client({ connectionString: serviceUrl });
    await client.connect();
    try {
      await client.query(sql);
      return undefined;
    } catch (error) {
      return error as { code?: string; message: string };
    } finally {
      await client.end();
    }
  }

  it('runs as a role that is neither superuser nor owner of anything', async () => {
    const [role] = await t.app.get(DataSource).query(
      `SELECT current_user AS name, r.rolsuper AS superuser, r.rolbypassrls AS bypassrls, r.rolreplication AS replication,
              (SELECT count(*)::int FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relowner = r.oid) AS owned
         FROM pg_roles r WHERE r.rolname = current_user`,
    );
    expect(role).toEqual({ name: TEST_APP_ROLE, superuser: false, bypassrls: false, replication: false, owned: 0 });
  });

  it.each([
    ['SET session_replication_role = replica', /permission denied/],
    ["UPDATE audit_events SET subject = 'forged' WHERE seq = 1", /permission denied/],
    ['DELETE FROM audit_events WHERE seq = 2', /permission denied/],
    ['TRUNCATE audit_events', /permission denied/],
    ['TRUNCATE {partition}', /permission denied/],
    ['ALTER TABLE audit_events DETACH PARTITION {partition}', /must be owner/],
    ['DROP TABLE {partition}', /must be owner/],
    ['ALTER TABLE audit_events DISABLE TRIGGER USER', /must be owner/],
    ['ALTER TABLE {partition} DISABLE TRIGGER USER', /must be owner/],
    ['UPDATE audit_checkpoints SET seq = 0', /permission denied/],
    ['DELETE FROM audit_checkpoints', /permission denied/],
    [
      "INSERT INTO audit_retention_drops (partition_name, range_from, range_to, last_seq) VALUES ('audit_events_p200001', now(), now(), 2)",
      /permission denied/,
    ],
    ['DELETE FROM audit_verifications', /permission denied/],
    ['CREATE TABLE audit_shadow (seq bigint)', /permission denied/],
    [
      "CREATE TABLE audit_events_p209901 PARTITION OF audit_events FOR VALUES FROM ('2099-01-01') TO ('2099-02-01')",
      /permission denied|must be owner/,
    ],
    // The drop function checks for itself: this month's partition has not expired, whatever the caller says.
    ["SELECT audit_drop_partition('{partition}', interval '0 days')", /has not expired|not yet exported/],
  ])('refuses: %s', async (statement, answer) => {
    const error = await asService(statement.replace(/\{partition\}/g, partition));
    expect(error?.message).toMatch(answer);
    // Nothing moved: the chain still verifies in full, both rows in place.
    expect(
      (
        await t.app.inject({
          method: 'GET',
          url: '/v1/audit/verify?full=true',
          headers: { authorization: `Bearer ${adminToken(t)}` },
        })
      ).json(),
    ).toMatchObject({ ok: true });
  });

  it('the rewrite of the finding fails at its first step and a full verify still holds', async () => {
    const client = new Client({ connectionString: serviceUrl });
    await client.connect();
    try {
      await expect(client.query('SET session_replication_role = replica')).rejects.toThrow(/permission denied/);
      const rows = (await client.query(`SELECT ${ROW_COLUMNS} FROM audit_events ORDER BY audit_events.seq`)).rows.map(
        toRow,
      );
      const forged = { ...rows[0], data: { ...rows[0].data, forged: true } };
      const hash = recomputeHash(forged);
      await expect(
        client.query('UPDATE audit_events SET data = $2, hash = $3 WHERE seq = $1', [
          forged.seq,
          JSON.stringify(forged.data),
          hash,
        ]),
      ).rejects.toThrow(/permission denied/);
    } finally {
      await client.end();
    }
    const [first] = await query<{ data: Record<string, unknown> }>(
      serviceUrl,
      'SELECT data FROM audit_events WHERE seq = 1',
    );
    expect(first.data.forged).toBeUndefined();
  });

  it('partitions belong to the owner role and carry their own TRUNCATE guard, even against the owner', async () => {
    const owners = await query<{ name: string; owner: string }>(
      t.database.adminUrl,
      `SELECT c.relname AS name, pg_get_userbyid(c.relowner) AS owner FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'audit_events'::regclass`,
    );
    expect(owners.length).toBeGreaterThan(0);
    expect(new Set(owners.map((o) => o.owner))).toEqual(new Set([TEST_OWNER_ROLE]));
    // A statement-level TRUNCATE trigger on the parent is not cloned to partitions; each has its own.
    await expect(query(t.database.ownerUrl, `TRUNCATE ${partition}`)).rejects.toThrow(/append-only/);
  });

  it('a write into a month without a partition creates it through the owner-owned function, as the service role', async () => {
    const harness = await createAuditHarness(t.database.url, {
      signer: createNodeSigner('EC-256'),
      clock: () => Date.UTC(2031, 6, 15),
    });
    try {
      await harness.audit.record({ type: 'test.event', data: { later: true } });
      const [made] = await query<{ owner: string; guarded: boolean }>(
        t.database.adminUrl,
        `SELECT pg_get_userbyid(c.relowner) AS owner, EXISTS (SELECT 1 FROM pg_trigger g WHERE g.tgrelid = c.oid AND g.tgname = 'audit_events_p203107_no_truncate') AS guarded
           FROM pg_class c WHERE c.relname = 'audit_events_p203107'`,
      );
      expect(made).toEqual({ owner: TEST_OWNER_ROLE, guarded: true });
    } finally {
      await harness.close();
    }
  });
});

function adminToken(t: TestApp): string {
  // The dev bootstrap writes the admin token under the data dir.
  return fs.readFileSync(path.join(t.config.dataDir, ADMIN_TOKEN_FILE), 'utf8').trim();
}
