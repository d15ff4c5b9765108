import { Inject, Injectable, Logger } from '@nestjs/common';
import { SIGNET_CONFIG, SignetConfig } from '../config/config';
import { AuditPartition, partitionsNamed } from './audit-partitions';
import { AuditPartitionsRepository } from './audit-partitions.repository';
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
    private readonly partitions: AuditPartitionsRepository,
    private readonly audit: AuditService,
    @Inject(SIGNET_CONFIG) private readonly config: SignetConfig,
  ) {}

  async apply(retentionDays = this.config.audit.retentionDays): Promise<RetentionDecision[]> {
    if (!retentionDays) return [];
    const cutoff = this.audit.now() - retentionDays * 86400_000;
    const decisions: RetentionDecision[] = [];
    for (const partition of partitionsNamed(await this.partitions.partitionNames())) {
      if (partition.to.getTime() > cutoff) break;
      const decision = await this.tryDrop(partition, retentionDays);
      decisions.push(decision);
      if (!decision.dropped) {
        this.logger.warn(
          `retention: keeping ${partition.name} although older than ${retentionDays} days: ${decision.reason}`,
        );
        break;
      }
      this.logger.log(`retention: dropped ${partition.name}`);
    }
    return decisions;
  }

  private async tryDrop(partition: AuditPartition, retentionDays: number): Promise<RetentionDecision> {
    const refuse = (reason: string): RetentionDecision => ({ partition: partition.name, dropped: false, reason });
    const {
      first,
      last,
      exportedThrough: exported,
      lastCheckpointSeq: checkpointed,
    } = await this.partitions.retentionState(partition);
    if (last !== null) {
      if (BigInt(exported) < BigInt(last))
        return refuse(`not exported: rows up to seq ${exported} were exported, the partition ends at seq ${last}`);
      if (checkpointed === null || BigInt(checkpointed) < BigInt(last)) {
        return refuse(
          `not covered by a checkpoint: the latest checkpoint is at seq ${checkpointed ?? 'none'}, the partition ends at seq ${last}`,
        );
      }
    }
    // Audited first: the drop must not happen without its record (the writer could not insert
    // while the DROP below holds its lock, so the event cannot be written in the same transaction).
    await this.audit.record({
      type: 'audit.partition.dropped',
      subject: partition.name,
      data: {
        from: partition.from,
        to: partition.to,
        firstSeq: first,
        lastSeq: last,
        retentionDays: this.config.audit.retentionDays ?? null,
      },
    });
    // The owner role's function drops it (migration AuditLeastPrivilege) after checking again, in
    // the database, that it is the oldest, expired, exported and checkpointed, and records the
    // drop itself: the service role can neither drop a partition nor write audit_retention_drops.
    await this.partitions.drop(partition, retentionDays);
    return { partition: partition.name, dropped: true };
  }
}
