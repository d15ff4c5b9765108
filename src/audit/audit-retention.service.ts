import { Inject, Injectable, Logger } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { SIGNET_CONFIG, SignetConfig } from '../config/config';
import { ADVISORY_LOCKS } from '../database/advisory-lock';
import { AuditPartition, listPartitions } from './audit-partitions';
import { inTransaction, pgPool } from './audit-pg';
import { AuditService } from './audit.service';

export interface RetentionDecision {
  partition: string;
  dropped: boolean;
  reason?: string;
}

/**
 * SIGNET_AUDIT_RETENTION_DAYS: monthly partitions that lie wholly before now − retention are
 * dropped, oldest first, but only when every row in them was exported (export watermark) and is
 * covered by a checkpoint. The first partition that does not qualify stops the run, so the kept
 * log is always a contiguous tail of the chain. Each drop is audited before it happens and
 * recorded (last seq and hash) so a full verify knows where the kept chain must start.
 */
@Injectable()
export class AuditRetentionService {
  private readonly logger = new Logger('AuditRetention');

  constructor(
    private readonly dataSource: DataSource,
    private readonly audit: AuditService,
    @Inject(SIGNET_CONFIG) private readonly config: SignetConfig,
  ) {}

  async apply(retentionDays = this.config.audit.retentionDays): Promise<RetentionDecision[]> {
    if (!retentionDays) return [];
    const pool = pgPool(this.dataSource);
    const cutoff = this.audit.now() - retentionDays * 86400_000;
    const decisions: RetentionDecision[] = [];
    for (const partition of await listPartitions(pool)) {
      if (partition.to.getTime() > cutoff) break;
      const decision = await this.tryDrop(partition, retentionDays);
      decisions.push(decision);
      if (!decision.dropped) {
        this.logger.warn(`retention: keeping ${partition.name} although older than ${retentionDays} days: ${decision.reason}`);
        break;
      }
      this.logger.log(`retention: dropped ${partition.name}`);
    }
    return decisions;
  }

  private async tryDrop(partition: AuditPartition, retentionDays: number): Promise<RetentionDecision> {
    const pool = pgPool(this.dataSource);
    const refuse = (reason: string): RetentionDecision => ({ partition: partition.name, dropped: false, reason });
    // Names come from listPartitions (our own pattern), never from input.
    // Through the parent table (the service role has no rights on a partition by name); the time
    // range prunes the scan to that one partition.
    const stats = await pool.query<{ first: string | null; last: string | null; exported: string; checkpointed: string | null }>(
      `SELECT (SELECT min(seq)::text FROM audit_events WHERE time >= $1 AND time < $2) AS first, (SELECT max(seq)::text FROM audit_events WHERE time >= $1 AND time < $2) AS last,
              (SELECT exported_through_seq::text FROM audit_export_watermark) AS exported,
              (SELECT max(seq)::text FROM audit_checkpoints) AS checkpointed`,
      [partition.from, partition.to],
    );
    const { first, last, exported, checkpointed } = stats.rows[0];
    if (last !== null) {
      if (BigInt(exported) < BigInt(last)) return refuse(`not exported: rows up to seq ${exported} were exported, the partition ends at seq ${last}`);
      if (checkpointed === null || BigInt(checkpointed) < BigInt(last)) {
        return refuse(`not covered by a checkpoint: the latest checkpoint is at seq ${checkpointed ?? 'none'}, the partition ends at seq ${last}`);
      }
    }
    // Audited first: the drop must not happen without its record (the writer could not insert
    // while the DROP below holds its lock, so the event cannot be written in the same transaction).
    await this.audit.record({ type: 'audit.partition.dropped', subject: partition.name, data: { from: partition.from, to: partition.to, firstSeq: first, lastSeq: last, retentionDays: this.config.audit.retentionDays ?? null } });
    // The owner role's function drops it (migration AuditLeastPrivilege) after checking again, in
    // the database, that it is the oldest, expired, exported and checkpointed, and records the
    // drop itself: the service role can neither drop a partition nor write audit_retention_drops.
    await inTransaction(pool, async (client) => {
      await client.query('SELECT pg_advisory_xact_lock($1::bigint)', [ADVISORY_LOCKS.auditRetention.toString()]);
      await client.query('SELECT audit_drop_partition($1, make_interval(days => $2)) AS outcome', [partition.name, retentionDays]);
    });
    return { partition: partition.name, dropped: true };
  }
}
