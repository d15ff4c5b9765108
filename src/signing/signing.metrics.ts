import { Injectable, Optional } from '@nestjs/common';
import { DomainError } from '../common/errors';
import { FastCounter, FastCounterChild, FastHistogram, FastHistogramChild } from '../observability/fast-metrics';
import { MetricsService } from '../observability/metrics.service';

/** Label for requests that never resolved to a key (unknown names must not become label values). */
const NO_KEY = '-';

/**
 * `signet_signatures_total{key, outcome}`: outcome `signed`, `replayed` (idempotent repeat) or the
 * error code in lower case (`promotion_required`, `database_unavailable`, …).
 * `signet_sign_duration_seconds{outcome}`: `signed`, `replayed` or `error`, end to end in the
 * service (validation, HSM, audit commit). Hot-path metric types (observability/fast-metrics.ts).
 */
@Injectable()
export class SigningMetrics {
  private readonly signatures?: FastCounter;
  private readonly duration?: FastHistogram;
  /** Children by key, so the hot path does not look label sets up. */
  private readonly signedByKey = new Map<string, FastCounterChild>();
  private readonly signedDuration?: FastHistogramChild;

  constructor(@Optional() metrics?: MetricsService) {
    if (!metrics) return;
    const registry = metrics.registry;
    this.signatures =
      (registry.getSingleMetric('signet_signatures_total') as FastCounter | undefined) ??
      new FastCounter('signet_signatures_total', 'Sign requests by key and outcome', ['key', 'outcome'], registry);
    this.duration =
      (registry.getSingleMetric('signet_sign_duration_seconds') as FastHistogram | undefined) ??
      new FastHistogram(
        'signet_sign_duration_seconds',
        'Sign request latency inside Signet (validation, HSM, audit commit) by outcome',
        ['outcome'],
        [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
        registry,
      );
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
