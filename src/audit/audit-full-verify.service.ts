import { Inject, Injectable, Logger, Optional } from '@nestjs/common';
import { hostname } from 'node:os';
import { Gauge } from 'prom-client';
import { SIGNET_CONFIG, SignetConfig } from '../config/config';
import { MetricsService } from '../observability/metrics.service';
import { canonicalTime } from './audit-canonical';
import { asAuditError } from './audit-pg';
import { AuditVerificationsRepository } from './audit-verifications.repository';
import { AuditVerifier } from './audit-verifier';
import { AuditService } from './audit.service';

export interface AuditVerificationRun {
  startedAt: string;
  finishedAt: string;
  ok: boolean;
  checked: number;
  head: string;
  firstBrokenSeq?: string;
  reason?: string;
  runBy: string;
}

/**
 * The scheduled full verify (SIGNET_AUDIT_FULL_VERIFY_INTERVAL_HOURS, default daily). The default
 * verify starts at the last checkpoint that still matches, so it never looks again at rows before
 * it: an edit there by someone who can bypass the database's guards (a superuser) would go unseen.
 * Once per interval one replica (session advisory lock + the last run recorded in
 * audit_verifications) recomputes the whole kept chain; a failure is logged at error level naming
 * the first bad seq. Every replica exports the latest recorded outcome as metrics
 * (signet_audit_verify_ok, signet_audit_verify_last_run_timestamp_seconds), whoever ran it.
 */
@Injectable()
export class AuditFullVerifyService {
  private readonly logger = new Logger('AuditFullVerify');
  private readonly gauges?: { ok: Gauge; lastRun: Gauge; checked: Gauge };

  constructor(
    private readonly verifications: AuditVerificationsRepository,
    private readonly verifier: AuditVerifier,
    private readonly audit: AuditService,
    @Inject(SIGNET_CONFIG) private readonly config: SignetConfig,
    @Optional() metrics?: MetricsService,
  ) {
    if (metrics) {
      const registry = metrics.registry;
      const gauge = (name: string, help: string) =>
        (registry.getSingleMetric(name) as Gauge | undefined) ?? new Gauge({ name, help, registers: [registry] });
      this.gauges = {
        ok: gauge(
          'signet_audit_verify_ok',
          'Outcome of the latest scheduled full verify of the audit chain (1 ok, 0 broken)',
        ),
        lastRun: gauge(
          'signet_audit_verify_last_run_timestamp_seconds',
          'When the latest scheduled full verify of the audit chain started (Unix time)',
        ),
        checked: gauge('signet_audit_verify_rows_checked', 'Rows the latest scheduled full verify recomputed'),
      };
    }
  }

  /**
   * Runs a full verify when the interval has passed since the last one (any replica's) and no other
   * replica is running one; returns what it recorded, or undefined when it was not due or not ours.
   */
  async runIfDue(): Promise<AuditVerificationRun | undefined> {
    const intervalHours = this.config.audit.fullVerifyIntervalHours;
    if (intervalHours <= 0) return undefined;
    try {
      return await this.verifications.whileHoldingFullVerifyLock(async () => {
        const latest = await this.latest();
        // 0.9: replicas' timers drift; a run a little early beats one skipped for a whole interval.
        if (latest && this.audit.now() - Date.parse(latest.startedAt) < intervalHours * 3_600_000 * 0.9) {
          this.report(latest);
          return undefined;
        }
        return await this.run();
      });
    } catch (error) {
      throw asAuditError(error);
    }
  }

  /** Sets this replica's gauges from the latest recorded run (another replica's, perhaps). */
  async refreshMetrics(): Promise<AuditVerificationRun | undefined> {
    const latest = await this.latest();
    if (latest) this.report(latest);
    return latest;
  }

  private async run(): Promise<AuditVerificationRun> {
    const started = this.audit.now();
    const result = await this.verifier.verify('full');
    const run: AuditVerificationRun = {
      startedAt: canonicalTime(started),
      finishedAt: canonicalTime(Math.max(started, this.audit.now())),
      ok: result.ok,
      checked: result.checked,
      head: result.head,
      ...(result.ok ? {} : { firstBrokenSeq: result.firstBrokenSeq, reason: result.reason }),
      runBy: `${hostname()}:${process.pid}`,
    };
    await this.verifications.recordFull({
      ...run,
      firstBrokenSeq: run.firstBrokenSeq ?? null,
      reason: run.reason ?? null,
    });
    if (run.ok) {
      this.logger.log(`scheduled full verify: audit chain intact, ${run.checked} row(s) checked up to seq ${run.head}`);
    } else {
      this.logger.error(
        `scheduled full verify FAILED: the audit chain is broken at seq ${run.firstBrokenSeq}: ${run.reason}`,
      );
    }
    this.report(run);
    return run;
  }

  private report(run: AuditVerificationRun): void {
    this.gauges?.ok.set(run.ok ? 1 : 0);
    this.gauges?.lastRun.set(Date.parse(run.startedAt) / 1000);
    this.gauges?.checked.set(run.checked);
  }

  private async latest(): Promise<AuditVerificationRun | undefined> {
    const row = await this.verifications.latestFull();
    if (!row) return undefined;
    return {
      startedAt: canonicalTime(row.startedMs),
      finishedAt: canonicalTime(row.finishedMs),
      ok: row.ok,
      checked: row.checked,
      head: row.head,
      ...(row.ok ? {} : { firstBrokenSeq: row.firstBrokenSeq ?? undefined, reason: row.reason ?? undefined }),
      runBy: row.runBy,
    };
  }
}
