import { Inject, Injectable, Logger, Optional } from '@nestjs/common';
import { hostname } from 'node:os';
import { Client } from 'pg';
import { Gauge } from 'prom-client';
import { DataSource } from 'typeorm';
import { SIGNET_CONFIG, SignetConfig } from '../config/config';
import { ADVISORY_LOCKS } from '../database/advisory-lock';
import { MetricsService } from '../observability/metrics.service';
import { canonicalTime } from './audit-canonical';
import { asAuditError, pgPool, withClient } from './audit-pg';
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
    private readonly dataSource: DataSource,
    private readonly verifier: AuditVerifier,
    private readonly audit: AuditService,
    @Inject(SIGNET_CONFIG) private readonly config: SignetConfig,
    @Optional() metrics?: MetricsService,
  ) {
    if (metrics) {
      const registry = metrics.registry;
      const gauge = (name: string, help: string) => (registry.getSingleMetric(name) as Gauge | undefined) ?? new Gauge({ name, help, registers: [registry] });
      this.gauges = {
        ok: gauge('signet_audit_verify_ok', 'Outcome of the latest scheduled full verify of the audit chain (1 ok, 0 broken)'),
        lastRun: gauge('signet_audit_verify_last_run_timestamp_seconds', 'When the latest scheduled full verify of the audit chain started (Unix time)'),
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
      return await this.onLockConnection(async (client) => {
        const key = ADVISORY_LOCKS.auditFullVerify.toString();
        const { rows } = await client.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1::bigint) AS locked', [key]);
        if (!rows[0].locked) return undefined;
        try {
          const latest = await this.latest();
          // 0.9: replicas' timers drift; a run a little early beats one skipped for a whole interval.
          if (latest && this.audit.now() - Date.parse(latest.startedAt) < intervalHours * 3_600_000 * 0.9) {
            this.report(latest);
            return undefined;
          }
          return await this.run();
        } finally {
          await client.query('SELECT pg_advisory_unlock($1::bigint)', [key]);
        }
      });
    } catch (error) {
      throw asAuditError(error);
    }
  }

  /**
   * The lock is a session lock held for the whole verify (minutes on a large log): on a
   * connection of its own, so the verify's pages never wait for the pool behind it (one pooled
   * connection when the DataSource has no URL).
   */
  private async onLockConnection<T>(work: (client: Pick<Client, 'query'>) => Promise<T>): Promise<T> {
    const url = (this.dataSource.options as { url?: string }).url;
    if (!url) return withClient(pgPool(this.dataSource), work);
    const client = new Client({ connectionString: url, application_name: 'signet-audit-verify' });
    client.on('error', () => undefined);
    await client.connect();
    try {
      return await work(client);
    } finally {
      await client.end().catch(() => undefined);
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
    await pgPool(this.dataSource).query(
      `INSERT INTO audit_verifications (started_at, finished_at, mode, ok, checked, head_seq, first_broken_seq, reason, run_by) VALUES ($1, $2, 'full', $3, $4, $5, $6, $7, $8)`,
      [run.startedAt, run.finishedAt, run.ok, run.checked, run.head, run.firstBrokenSeq ?? null, run.reason ?? null, run.runBy],
    );
    if (run.ok) {
      this.logger.log(`scheduled full verify: audit chain intact, ${run.checked} row(s) checked up to seq ${run.head}`);
    } else {
      this.logger.error(`scheduled full verify FAILED: the audit chain is broken at seq ${run.firstBrokenSeq}: ${run.reason}`);
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
    const { rows } = await pgPool(this.dataSource).query(
      `SELECT (extract(epoch FROM started_at) * 1000)::bigint::text AS started_ms, (extract(epoch FROM finished_at) * 1000)::bigint::text AS finished_ms,
              ok, checked::text AS checked, head_seq::text AS head, first_broken_seq::text AS first_broken_seq, reason, run_by
         FROM audit_verifications WHERE mode = 'full' ORDER BY audit_verifications.started_at DESC, audit_verifications.id DESC LIMIT 1`,
    );
    const row = rows[0];
    if (!row) return undefined;
    return {
      startedAt: canonicalTime(Number(row.started_ms)),
      finishedAt: canonicalTime(Number(row.finished_ms)),
      ok: row.ok,
      checked: Number(row.checked),
      head: row.head,
      ...(row.ok ? {} : { firstBrokenSeq: row.first_broken_seq ?? undefined, reason: row.reason ?? undefined }),
      runBy: row.run_by,
    };
  }
}
