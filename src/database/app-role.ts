import { Client } from 'pg';

/**
 * What the service role (DATABASE_URL) may do, table by table: the ONE place grants are written.
 * Migrations run as the owner role (SIGNET_MIGRATION_DATABASE_URL); after them, the owner applies
 * this matrix to the service role on every start (revoking anything beyond it). A table missing
 * from here gets nothing, and test/database/app-role-grants.int-spec.ts fails until it is added:
 * a new migration's table must be listed with exactly the privileges its code uses.
 *
 * Never TRUNCATE, REFERENCES or TRIGGER, and no DDL (the service role owns nothing). The audit
 * tables are append-only for it: SELECT and INSERT (the chain head and export watermark are
 * single rows it moves). Partitions are created and dropped through owner-owned functions.
 */
export type TablePrivilege = 'SELECT' | 'INSERT' | 'UPDATE' | 'DELETE';

export const APP_TABLE_PRIVILEGES: Readonly<Record<string, readonly TablePrivilege[]>> = {
  typeorm_migrations: ['SELECT'], // start-up check of pending migrations; backups record them
  bootstrap_steps: ['SELECT', 'INSERT'],
  audit_events: ['SELECT', 'INSERT'],
  audit_chain_head: ['SELECT', 'UPDATE'], // locked FOR UPDATE and moved by every batch
  audit_checkpoints: ['SELECT', 'INSERT'],
  audit_export_watermark: ['SELECT', 'UPDATE'],
  audit_retention_drops: ['SELECT'], // written only by audit_drop_partition()
  audit_verifications: ['SELECT', 'INSERT'],
  api_tokens: ['SELECT', 'INSERT', 'UPDATE'], // revocation and last-used are updates; never deleted
  cas: ['SELECT', 'INSERT', 'UPDATE'],
  ca_generations: ['SELECT', 'INSERT', 'UPDATE'],
  signing_keys: ['SELECT', 'INSERT', 'UPDATE'],
  key_versions: ['SELECT', 'INSERT', 'UPDATE'],
  certificates: ['SELECT', 'INSERT', 'UPDATE'],
  artifact_signings: ['SELECT', 'INSERT'],
  sign_idempotency: ['SELECT', 'INSERT', 'UPDATE', 'DELETE'], // expired entries are purged
  truststores: ['SELECT', 'INSERT', 'UPDATE'],
  truststore_versions: ['SELECT', 'INSERT', 'UPDATE'],
  distribution_regions: ['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
  distribution_targets: ['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
  distribution_deliveries: ['SELECT', 'INSERT'],
  rotations: ['SELECT', 'INSERT', 'UPDATE'],
  identity_providers: ['SELECT', 'INSERT', 'UPDATE', 'DELETE'], // admin CRUD; locked FOR UPDATE while its rules change
  workload_rules: ['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
  oidc_used_tokens: ['SELECT', 'INSERT', 'DELETE'], // single-use jti records; expired ones purged
  console_sessions: ['SELECT', 'INSERT', 'UPDATE'], // last-seen and ending are updates; never deleted
};

/** Sequences: SELECT lets backups read their position; USAGE (nextval) only where the code inserts. */
export const APP_SEQUENCE_PRIVILEGES: Readonly<Record<string, ReadonlyArray<'SELECT' | 'USAGE'>>> = {
  typeorm_migrations_id_seq: ['SELECT'],
  audit_checkpoints_id_seq: ['SELECT', 'USAGE'],
  audit_verifications_id_seq: ['SELECT', 'USAGE'],
  distribution_deliveries_id_seq: ['SELECT', 'USAGE'],
  tsa_serial_seq: ['SELECT', 'USAGE'],
};

/** Functions the service role may call (by signature). Everything else is revoked from it and PUBLIC. */
export const APP_FUNCTIONS: readonly string[] = [
  'audit_append_batch(bigint, bytea, jsonb, bigint, bytea, timestamptz)',
  'audit_create_partition(timestamptz)',
  'audit_drop_partition(text, interval)',
];

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/**
 * Applies the matrix to `appRole` on the owner's connection, in one transaction: everything on
 * the schema's tables, sequences and functions is revoked from it first, so a privilege dropped
 * from the matrix is gone after the next start. Objects the matrix names but the schema lacks
 * (an older schema, during a rolling upgrade) are skipped.
 */
export async function applyAppRoleGrants(owner: Client, appRole: string): Promise<void> {
  const role = quoteIdent(appRole);
  const { rows } = await owner.query<{ name: string; kind: string; signature: string | null; allowed: boolean }>(
    // Only what the owner role owns, and nothing an extension brought (its functions stay as they are).
    `SELECT c.relname AS name, c.relkind::text AS kind, NULL AS signature, false AS allowed FROM pg_class c
      WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p', 'S', 'v', 'm') AND NOT c.relispartition
        AND pg_has_role(current_user, c.relowner, 'USAGE')
        AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
     UNION ALL
     SELECT p.proname, 'f', p.oid::regprocedure::text, p.oid = ANY (SELECT to_regprocedure(f)::oid FROM unnest($1::text[]) AS f) FROM pg_proc p
      WHERE p.pronamespace = current_schema()::regnamespace AND p.prokind = 'f' AND pg_has_role(current_user, p.proowner, 'USAGE')
        AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')`,
    [APP_FUNCTIONS],
  );
  await owner.query('BEGIN');
  try {
    await owner.query(`GRANT USAGE ON SCHEMA ${quoteIdent(await currentSchema(owner))} TO ${role}`);
    for (const row of rows) {
      if (row.kind === 'f') {
        // regprocedure text is already quoted as needed (name and argument types).
        await owner.query(`REVOKE ALL ON FUNCTION ${row.signature} FROM ${role}, PUBLIC`);
        if (row.allowed) await owner.query(`GRANT EXECUTE ON FUNCTION ${row.signature} TO ${role}`);
      } else if (row.kind === 'S') {
        await owner.query(`REVOKE ALL ON SEQUENCE ${quoteIdent(row.name)} FROM ${role}`);
        const privileges = APP_SEQUENCE_PRIVILEGES[row.name];
        if (privileges?.length)
          await owner.query(`GRANT ${privileges.join(', ')} ON SEQUENCE ${quoteIdent(row.name)} TO ${role}`);
      } else {
        await owner.query(`REVOKE ALL ON TABLE ${quoteIdent(row.name)} FROM ${role}`);
        const privileges = APP_TABLE_PRIVILEGES[row.name];
        if (privileges?.length)
          await owner.query(`GRANT ${privileges.join(', ')} ON TABLE ${quoteIdent(row.name)} TO ${role}`);
      }
    }
    await owner.query('COMMIT');
  } catch (error) {
    await owner.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
  // Before PostgreSQL 15 every role may create objects in the public schema; the service role
  // must not (an object it owns is one it may alter). Only the schema's owner can take that away.
  await owner.query(`DO $$ BEGIN
      IF pg_has_role((SELECT nspowner FROM pg_namespace WHERE oid = current_schema()::regnamespace), 'USAGE') THEN
        EXECUTE format('REVOKE CREATE ON SCHEMA %I FROM PUBLIC', current_schema());
      END IF;
    END $$`);
}

async function currentSchema(client: Client): Promise<string> {
  return (await client.query<{ schema: string }>('SELECT current_schema() AS schema')).rows[0].schema;
}

/**
 * Why the connected role is too powerful to serve requests, or undefined when it is not: a
 * superuser or a role with BYPASSRLS/REPLICATION can switch the audit log's triggers off
 * (session_replication_role) or read around it; a role owning an audit table (or a member of its
 * owner) can disable its triggers, TRUNCATE or DETACH its partitions; a role that can create in
 * the schema can own objects there.
 */
export async function serviceRoleProblem(client: Client): Promise<string | undefined> {
  // Attributes and ownership count for every role the service role can become (SET ROLE works for
  // any membership, NOINHERIT included): superuser status is not inherited, but SET ROLE to a
  // superuser or to the audit tables' owner gives all of it.
  const { rows } = await client.query<{
    name: string;
    superuser: boolean;
    bypassrls: boolean;
    replication: boolean;
    owned: string | null;
    create: boolean;
    via: string | null;
  }>(
    `SELECT r.rolname AS name,
            bool_or(m.rolsuper) AS superuser, bool_or(m.rolbypassrls) AS bypassrls, bool_or(m.rolreplication) AS replication,
            (SELECT string_agg(c.relname, ', ' ORDER BY c.relname) FROM pg_class c
              WHERE c.relnamespace = current_schema()::regnamespace AND (c.relname LIKE 'audit\\_%' OR c.relname = 'typeorm_migrations')
                AND c.relkind IN ('r', 'p') AND pg_has_role(current_user, c.relowner, 'MEMBER')) AS owned,
            CASE WHEN r.rolsuper THEN NULL ELSE string_agg(m.rolname, ', ' ORDER BY m.rolname) FILTER (WHERE m.oid <> r.oid AND (m.rolsuper OR m.rolbypassrls OR m.rolreplication)) END AS via,
            has_schema_privilege(current_user, current_schema(), 'CREATE') AS create
       FROM pg_roles r JOIN pg_roles m ON pg_has_role(r.oid, m.oid, 'MEMBER')
      WHERE r.rolname = current_user GROUP BY r.oid, r.rolname, r.rolsuper`,
  );
  const role = rows[0];
  // PostgreSQL 15+ can grant a plain role SET on session_replication_role: the triggers' off switch.
  // (The function does not exist before 15, so it is not even named there.)
  const { rows: version } = await client.query<{ num: number }>(
    `SELECT current_setting('server_version_num')::int AS num`,
  );
  const setsReplicationRole =
    version[0].num >= 150000 &&
    (
      await client.query<{ granted: boolean }>(
        `SELECT has_parameter_privilege('session_replication_role', 'SET') AS granted`,
      )
    ).rows[0].granted;
  // A superuser has the other two as well; name the one that matters.
  const attributes = role.superuser
    ? ['is a superuser']
    : [role.bypassrls && 'has BYPASSRLS', role.replication && 'has REPLICATION'].filter(Boolean);
  if (attributes.length > 0)
    return `the service role "${role.name}" ${attributes.join(' and ')}${role.via ? ` (through membership in ${role.via})` : ''}`;
  // Below PostgreSQL 16, CREATEROLE lets a role grant itself membership in any non-superuser role.
  if (
    version[0].num < 160000 &&
    (await client.query<{ yes: boolean }>('SELECT rolcreaterole AS yes FROM pg_roles WHERE rolname = current_user'))
      .rows[0].yes
  ) {
    return `the service role "${role.name}" has CREATEROLE (before PostgreSQL 16 it can make itself a member of the audit tables' owner)`;
  }
  if (setsReplicationRole)
    return `the service role "${role.name}" may SET session_replication_role (it switches the audit log's triggers off)`;
  if (role.owned) return `the service role "${role.name}" owns (or is a member of the owner of) ${role.owned}`;
  if (role.create) return `the service role "${role.name}" may create objects in schema ${await currentSchema(client)}`;
  return undefined;
}

/** The role a URL logs in as, asked of the server (a URL without a user name uses the OS user). */
export async function connectedRole(client: Client): Promise<string> {
  return (await client.query<{ role: string }>('SELECT current_user AS role')).rows[0].role;
}
