import { Injectable, Logger } from '@nestjs/common';
import { Counter, Gauge } from 'prom-client';
import { MetricsService } from '../observability/metrics.service';
import { ExpiryReport, RotationStatusService } from './rotation-status.service';

/**
 * Prometheus metrics of rotation: step outcomes and alerts as counters; expiry (days until each CA
 * generation and active leaf expires), overdue rotations, keys without an active version, CRLs
 * close to nextUpdate and open alerts as gauges computed at scrape time from one report.
 */
@Injectable()
export class RotationMetrics {
  private readonly logger = new Logger('RotationMetrics');
  private readonly steps: Counter<'kind' | 'step' | 'outcome'>;
  private readonly alerts: Counter<'type'>;
  private cached?: Promise<ExpiryReport | undefined>;

  constructor(
    metrics: MetricsService,
    private readonly status: RotationStatusService,
  ) {
    const registers = [metrics.registry];
    this.steps = new Counter({
      name: 'signet_rotation_steps_total',
      help: 'Rotation steps run, by rotation kind, step and outcome (done, skipped, fail, error)',
      labelNames: ['kind', 'step', 'outcome'],
      registers,
    });
    this.alerts = new Counter({
      name: 'signet_rotation_alerts_total',
      help: 'Rotation alerts raised (e.g. root-distribution-gate: required targets did not acknowledge a new root in time)',
      labelNames: ['type'],
      registers,
    });
    const report = () => this.report();
    const gauge = <L extends string>(
      name: string,
      help: string,
      labelNames: L[],
      fill: (g: Gauge<L>, r: ExpiryReport) => void,
    ) =>
      new Gauge<L>({
        name,
        help,
        labelNames,
        registers,
        async collect() {
          const r = await report();
          this.reset();
          if (r) fill(this, r);
        },
      });
    gauge(
      'signet_ca_generation_expiry_days',
      'Days until each CA key generation in use expires',
      ['ca', 'generation', 'state'],
      (g, r) => {
        for (const c of r.caGenerations) g.set({ ca: c.ca, generation: c.generation, state: c.state }, c.days);
      },
    );
    gauge(
      'signet_key_certificate_expiry_days',
      "Days until each key's active certificate expires",
      ['key', 'version'],
      (g, r) => {
        for (const l of r.leaves) g.set({ key: l.key, version: String(l.version) }, l.days);
      },
    );
    gauge('signet_rotations_overdue', 'Keys whose scheduled rotation is overdue', [], (g, r) =>
      g.set(r.overdue.length),
    );
    gauge('signet_keys_without_active_version', 'Signing keys with no active version (they cannot sign)', [], (g, r) =>
      g.set(r.keysWithoutActiveVersion.length),
    );
    gauge(
      'signet_rotations_in_progress',
      'Rotations by state (running: before activation; activated: waiting to retire/destroy)',
      ['state'],
      (g, r) => {
        g.set({ state: 'running' }, r.rotations.running);
        g.set({ state: 'activated' }, r.rotations.activated);
      },
    );
    gauge(
      'signet_rotation_alerts_open',
      'Open rotation alerts (e.g. a root rollover blocked at the distribution gate)',
      ['subject'],
      (g, r) => {
        for (const a of r.alerts) g.inc({ subject: a.subject });
      },
    );
    gauge(
      'signet_ca_renewal_blocked',
      'Issuing CAs due for renewal that their root cannot certify long enough (roll the root over)',
      ['ca'],
      (g, r) => {
        for (const b of r.caRenewalBlocked) g.set({ ca: b.ca }, 1);
      },
    );
    gauge(
      'signet_crl_next_update_seconds',
      'Seconds until the nextUpdate of each CRL Signet signs',
      ['generation'],
      (g, r) => {
        for (const c of r.crls) if (c.secondsLeft !== null) g.set({ generation: c.generation }, c.secondsLeft);
      },
    );
    gauge(
      'signet_crls_near_next_update',
      'CRLs missing or past half their validity (their rebuild is late)',
      [],
      (g, r) => g.set(r.crls.filter((c) => c.late).length),
    );
  }

  stepFinished(kind: string, step: string, outcome: string): void {
    this.steps.inc({ kind, step, outcome });
  }

  alertRaised(type: string): void {
    this.alerts.inc({ type });
  }

  /**
   * One report per scrape: prom-client calls every gauge's collect() in one synchronous pass, so
   * the report is shared until the next macrotask. A failing database leaves the gauges empty.
   */
  private report(): Promise<ExpiryReport | undefined> {
    if (!this.cached) {
      const cached = this.status.report().catch((error: Error) => {
        this.logger.warn(`rotation metrics unavailable: ${error.message}`);
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
