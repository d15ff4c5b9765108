import { Inject, Injectable, Logger, Optional } from '@nestjs/common';
import { Counter, Gauge } from 'prom-client';
import { SIGNET_CONFIG, SignetConfig } from '../config/config';
import { MetricsService } from '../observability/metrics.service';
import { ScrapeGauge } from '../observability/scrape-gauge';
import { AuditCheckpointsRepository } from './audit-checkpoints.repository';

interface CheckpointState {
  headSeq: number;
  checkpointSeq: number | null;
  checkpointTime: number | null;
  oldestUncheckpointed: number | null;
}

/**
 * Audit chain health for alerting:
 * - verification outcomes of this process (`signet_audit_verify_total{mode, result}`, and the last
 *   one as `signet_audit_chain_broken` / `signet_audit_verify_last_timestamp_seconds`): every periodic checkpoint
 *   verifies the chain first, so a broken chain shows up within one checkpoint interval;
 * - checkpoint freshness, read from the database at scrape time (every replica reports the fleet):
 *   time and seq of the last checkpoint, the chain head, and the age of the oldest event no
 *   checkpoint covers yet (0 when all are covered), with the configured interval to compare to.
 */
@Injectable()
export class AuditMetrics {
  private readonly logger = new Logger('AuditMetrics');
  private readonly verifications?: Counter<'mode' | 'result'>;
  private readonly broken?: Gauge;
  private verifiedAt?: number;
  private cached?: Promise<CheckpointState | undefined>;

  constructor(
    private readonly checkpoints: AuditCheckpointsRepository,
    @Inject(SIGNET_CONFIG) config: SignetConfig,
    @Optional() metrics?: MetricsService,
  ) {
    if (!metrics) return;
    const registers = [metrics.registry];
    this.verifications = new Counter({
      name: 'signet_audit_verify_total',
      help: 'Audit chain verifications run by this process, by mode and result (ok, broken, error)',
      labelNames: ['mode', 'result'],
      registers,
    });
    this.broken = new Gauge({
      name: 'signet_audit_chain_broken',
      help: 'The last audit chain verification this process completed found the chain broken (1), or intact / none yet (0)',
      registers,
    });
    new ScrapeGauge(
      'signet_audit_verify_last_timestamp_seconds',
      'When this process last completed an audit chain verification (Unix seconds; absent before the first)',
      metrics.registry,
      async () => this.verifiedAt,
    );
    new Gauge({
      name: 'signet_audit_checkpoint_interval_seconds',
      help: 'Configured interval of periodic audit checkpoints (0 = on demand only)',
      registers,
    }).set(config.audit.checkpointIntervalSeconds);
    const gauge = (name: string, help: string, value: (s: CheckpointState) => number | null) =>
      new ScrapeGauge(name, help, metrics.registry, async () => {
        const s = await this.state();
        const v = s ? value(s) : null;
        return v === null ? undefined : v;
      });
    gauge('signet_audit_chain_head_seq', 'Sequence number of the audit chain head', (s) => s.headSeq);
    gauge(
      'signet_audit_last_checkpoint_seq',
      'Sequence number the last audit checkpoint covers (absent before the first)',
      (s) => s.checkpointSeq,
    );
    gauge(
      'signet_audit_last_checkpoint_timestamp_seconds',
      'When the last audit checkpoint was signed (Unix seconds; absent before the first)',
      (s) => s.checkpointTime,
    );
    gauge(
      'signet_audit_uncheckpointed_age_seconds',
      'Age of the oldest audit event no checkpoint covers yet (0 when every event is covered)',
      (s) => (s.oldestUncheckpointed === null ? 0 : Math.max(0, Date.now() / 1000 - s.oldestUncheckpointed)),
    );
  }

  verified(mode: string, result: 'ok' | 'broken' | 'error'): void {
    this.verifications?.inc({ mode, result });
    if (result === 'error') return;
    this.broken?.set(result === 'ok' ? 0 : 1);
    this.verifiedAt = Date.now() / 1000;
  }

  /** One query per scrape (shared by the gauges); a failing database leaves them empty. */
  private state(): Promise<CheckpointState | undefined> {
    if (!this.cached) {
      const cached = Promise.resolve()
        .then(() => this.checkpoints.coverage())
        .then((c) => ({
          headSeq: Number(c.headSeq),
          checkpointSeq: c.checkpointSeq === null ? null : Number(c.checkpointSeq),
          checkpointTime: c.checkpointTime,
          oldestUncheckpointed: c.oldestUncheckpointedTime,
        }))
        .catch((error: Error) => {
          this.logger.warn(`audit metrics unavailable: ${error.message}`);
          return undefined;
        });
      this.cached = cached;
      setImmediate(() => {
        if (this.cached === cached) this.cached = undefined;
      });
    }
    return this.cached;
  }
}
