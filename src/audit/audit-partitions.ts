// Backup's restore (src/backup) creates partitions on the pool it restores through; everything in src/audit uses AuditPartitionsRepository.
export { ensurePartitionsOnPool } from './audit-partitions.repository';

/**
 * audit_events is range-partitioned by month (UTC) on `time`. Partitions are named
 * audit_events_pYYYYMM; they are created ahead by a daily job and on demand when a write falls
 * outside every partition (there is deliberately no default partition: it would have to be
 * scanned whenever a month is added, and could never be dropped by retention), always through
 * audit_create_partition(), which the owner role owns (AuditPartitionsRepository).
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

/** The partition a table name of our own pattern (audit_events_pYYYYMM) stands for; undefined for any other name. */
export function partitionNamed(name: string): AuditPartition | undefined {
  const match = NAME.exec(name);
  return match ? partitionFor(Date.UTC(Number(match[1]), Number(match[2]) - 1, 1)) : undefined;
}

/** Partitions of our own pattern among `names`, oldest first. */
export function partitionsNamed(names: string[]): AuditPartition[] {
  return names
    .map(partitionNamed)
    .filter((p): p is AuditPartition => p !== undefined)
    .sort((a, b) => a.from.getTime() - b.from.getTime());
}

/** PostgreSQL's "no partition of relation … found for row". */
export function isMissingPartition(error: unknown): boolean {
  const e = error as { code?: string; message?: string };
  return e.code === '23514' && /no partition of relation/.test(e.message ?? '');
}
