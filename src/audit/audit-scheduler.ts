import { Inject, Injectable, Logger, OnApplicationBootstrap, OnModuleDestroy, Optional } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { SIGNET_CONFIG, SignetConfig } from '../config/config';
import { scrubText } from '../observability/logger';
import { AuditCheckpointService } from './audit-checkpoint.service';
import { AuditFullVerifyService } from './audit-full-verify.service';
import { AuditRetentionService } from './audit-retention.service';
import { AuditService } from './audit.service';

const DAY_MS = 86400_000;
const FULL_VERIFY_TICK_MS = 15 * 60_000;

/**
 * Timers only enqueue: each tick starts its job unless the previous run is still going. The jobs
 * guard themselves in PostgreSQL (advisory locks, "is it due" checks against the table), so N
 * replicas with the same timers produce one checkpoint per interval and one retention pass.
 */
@Injectable()
export class AuditScheduler implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('AuditScheduler');
  private readonly running = new Set<string>();
  private readonly names: string[] = [];

  constructor(
    private readonly audit: AuditService,
    private readonly checkpoints: AuditCheckpointService,
    private readonly retention: AuditRetentionService,
    private readonly fullVerify: AuditFullVerifyService,
    @Inject(SIGNET_CONFIG) private readonly config: SignetConfig,
    @Optional() private readonly registry?: SchedulerRegistry,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    // Partitions for this month and the next exist before the first write needs one.
    await this.run('partitions', () => this.audit.ensureUpcomingPartitions());
    // ScheduleModule (and so the registry) is only loaded in servers, never for a CLI call.
    if (!this.registry) return;
    const interval = this.config.audit.checkpointIntervalSeconds;
    if (interval > 0) {
      this.every('audit-checkpoint', interval * 1000, () => this.checkpoints.createIfDue());
    }
    if (this.config.audit.fullVerifyIntervalHours > 0) {
      // Metrics from the latest run (any replica's) at once; the check for "due" every quarter hour
      // (or sooner for short intervals), so the run itself lands within that of its time.
      await this.run('audit-full-verify', () => this.fullVerify.refreshMetrics());
      this.every(
        'audit-full-verify',
        Math.min(FULL_VERIFY_TICK_MS, this.config.audit.fullVerifyIntervalHours * 3_600_000),
        () => this.fullVerify.runIfDue(),
      );
    }
    this.every('audit-maintenance', DAY_MS / 4, async () => {
      await this.audit.ensureUpcomingPartitions();
      await this.retention.apply();
    });
  }

  onModuleDestroy(): void {
    for (const name of this.names) {
      try {
        this.registry?.deleteInterval(name);
      } catch {
        // already gone
      }
    }
  }

  private every(name: string, ms: number, job: () => Promise<unknown>): void {
    const timer = setInterval(() => void this.run(name, job), ms);
    timer.unref();
    this.registry!.addInterval(name, timer);
    this.names.push(name);
  }

  private async run(name: string, job: () => Promise<unknown>): Promise<void> {
    if (this.running.has(name)) return;
    this.running.add(name);
    try {
      await job();
    } catch (error) {
      this.logger.warn(`${name}: ${scrubText((error as Error).message ?? String(error))}`);
    } finally {
      this.running.delete(name);
    }
  }
}
