import { Injectable, Optional } from '@nestjs/common';
import { Counter, Histogram } from 'prom-client';
import { DomainError } from '../common/errors';
import { MetricsService } from '../observability/metrics.service';

/** Label for requests that never resolved to a key (unknown names must not become label values). */
const NO_KEY = '-';

/**
 * `signet_signatures_total{key, outcome}`: outcome `signed`, `replayed` (idempotent repeat) or the
 * error code in lower case (`promotion_required`, `database_unavailable`, …).
 * `signet_sign_duration_seconds{outcome}`: `signed`, `replayed` or `error`, end to end in the
 * service (validation, HSM, audit commit).
 */
@Injectable()
export class SigningMetrics {
  private readonly signatures?: Counter<'key' | 'outcome'>;
  private readonly duration?: Histogram<'outcome'>;
  /** Label children by key, so the hot path does not hash label sets. */
  private readonly signedByKey = new Map<string, Counter.Internal>();
  private readonly signedDuration?: Histogram.Internal<'outcome'>;

  constructor(@Optional() metrics?: MetricsService) {
    if (!metrics) return;
    const registry = metrics.registry;
    this.signatures =
      (registry.getSingleMetric('signet_signatures_total') as Counter<'key' | 'outcome'> | undefined) ??
      new Counter({ name: 'signet_signatures_total', help: 'Sign requests by key and outcome', labelNames: ['key', 'outcome'], registers: [registry] });
    this.duration =
      (registry.getSingleMetric('signet_sign_duration_seconds') as Histogram<'outcome'> | undefined) ??
      new Histogram({
        name: 'signet_sign_duration_seconds',
        help: 'Sign request latency inside Signet (validation, HSM, audit commit) by outcome',
        labelNames: ['outcome'],
        buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
        registers: [registry],
      });
    this.signedDuration = this.duration.labels('signed');
  }

  signed(keyName: string, seconds: number, replayed = false): void {
    if (!this.signatures) return;
    if (replayed) {
      this.signatures.labels(keyName, 'replayed').inc();
      this.duration!.labels('replayed').observe(seconds);
      return;
    }
    let child = this.signedByKey.get(keyName);
    if (!child) {
      child = this.signatures.labels(keyName, 'signed');
      this.signedByKey.set(keyName, child);
    }
    child.inc();
    this.signedDuration!.observe(seconds);
  }

  failed(keyName: string | undefined, error: unknown, seconds: number): void {
    if (!this.signatures) return;
    const outcome = error instanceof DomainError ? error.code.toLowerCase() : 'internal';
    this.signatures.labels(keyName ?? NO_KEY, outcome).inc();
    this.duration!.labels('error').observe(seconds);
  }
}
