import type { Pool, PoolClient } from 'pg';
import { ADVISORY_LOCKS } from '../database/advisory-lock';
import { withClient } from './audit-pg';

/**
 * audit_events is range-partitioned by month (UTC) on `time`. Partitions are named
 * audit_events_pYYYYMM; they are created ahead by a daily job and on demand when a write falls
 * outside every partition (there is deliberately no default partition: it would have to be
 * scanned whenever a month is added, and could never be dropped by retention), always through
 * audit_create_partition(), which the owner role owns.
 */
export interface AuditPartition {
  name: string;
  from: Date;
  to: Date;
}

const NAME = /^audit_events_p(\d{4})(\d{2})$/;

export function monthStart(epochMs: number): Date {
  const d = new Date(epochMs);
  return new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1));
}

export function partitionFor(epochMs: number): AuditPartition {
  const from = monthStart(epochMs);
  const to = new Date(Date.UTC(from.getUTCFullYear(), from.getUTCMonth() + 1, 1));
  const name = `audit_events_p${from.getUTCFullYear()}${String(from.getUTCMonth() + 1).padStart(2, '0')}`;
  return { name, from, to };
}

/** Monthly partitions covering every instant from `fromMs` to `toMs`, inclusive. */
export function partitionsCovering(fromMs: number, toMs: number): AuditPartition[] {
  const out: AuditPartition[] = [];
  for (let p = partitionFor(fromMs); p.from.getTime() <= toMs; p = partitionFor(p.to.getTime())) out.push(p);
  return out;
}

export async function listPartitions(pool: Pool): Promise<AuditPartition[]> {
  const { rows } = await pool.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'audit_events'::regclass`,
  );
  return rows
    .map((row) => {
      const match = NAME.exec(row.name);
      return match ? partitionFor(Date.UTC(Number(match[1]), Number(match[2]) - 1, 1)) : undefined;
    })
    .filter((p): p is AuditPartition => p !== undefined)
    .sort((a, b) => a.from.getTime() - b.from.getTime());
}

/**
 * Creates the missing partitions among `wanted` on `client` (which must not be inside a
 * transaction), under an advisory lock so replicas racing on a month boundary do not collide.
 * Returns the names it created.
 */
export async function ensurePartitions(client: PoolClient, wanted: AuditPartition[]): Promise<string[]> {
  const { rows } = await client.query<{ name: string }>('SELECT name FROM unnest($1::text[]) AS name WHERE to_regclass(name) IS NULL', [wanted.map((p) => p.name)]);
  if (rows.length === 0) return [];
  const missing = new Set(rows.map((row) => row.name));
  await client.query('BEGIN');
  try {
    await client.query('SELECT pg_advisory_xact_lock($1::bigint)', [ADVISORY_LOCKS.auditPartitions.toString()]);
    const created: string[] = [];
    for (const partition of wanted.filter((p) => missing.has(p.name))) {
      const exists = await client.query('SELECT to_regclass($1) IS NOT NULL AS exists', [partition.name]);
      if (exists.rows[0].exists) continue;
      // The owner role's function creates it (migration AuditLeastPrivilege): the service role
      // creates no tables, so it never owns a partition it could truncate or detach.
      const { rows: made } = await client.query<{ created: boolean }>('SELECT audit_create_partition($1) AS created', [partition.from.toISOString()]);
      if (made[0].created) created.push(partition.name);
    }
    await client.query('COMMIT');
    return created;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}

/** ensurePartitions on a connection of its own. */
export async function ensurePartitionsOnPool(pool: Pool, wanted: AuditPartition[]): Promise<string[]> {
  return withClient(pool, (client) => ensurePartitions(client, wanted));
}

/** PostgreSQL's "no partition of relation … found for row". */
export function isMissingPartition(error: unknown): boolean {
  const e = error as { code?: string; message?: string };
  return e.code === '23514' && /no partition of relation/.test(e.message ?? '');
}
