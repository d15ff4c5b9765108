import { Injectable, Optional } from '@nestjs/common';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { MetricsService } from '../observability/metrics.service';

/**
 * Distribution metrics on the process registry: convergence time per delivery, revoke → converged
 * time per revocation, push outcomes and failures by kind, and (refreshed by the reconciler's
 * schedule from the database, so every replica reports the fleet) lag per target.
 */
@Injectable()
export class DistributionMetrics {
  readonly convergence?: Histogram<'region' | 'kind'>;
  readonly revocationPropagation?: Histogram<'truststore'>;
  readonly attempts?: Counter<'region' | 'kind' | 'result'>;
  readonly failures?: Counter<'region' | 'kind' | 'error'>;
  readonly lagSeconds?: Gauge<'region' | 'target'>;
  readonly lagVersions?: Gauge<'region' | 'target'>;
  readonly targets?: Gauge<'state'>;
  readonly targetState?: Gauge<'region' | 'target' | 'state'>;

  constructor(@Optional() metrics?: MetricsService) {
    if (!metrics) return;
    const registry = metrics.registry;
    this.convergence = metric(
      registry,
      'signet_distribution_convergence_seconds',
      () =>
        new Histogram({
          name: 'signet_distribution_convergence_seconds',
          help: 'From a truststore version being built to a target confirmed holding it',
          labelNames: ['region', 'kind'],
          buckets: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600],
          registers: [registry],
        }),
    );
    this.revocationPropagation = metric(
      registry,
      'signet_distribution_revocation_propagation_seconds',
      () =>
        new Histogram({
          name: 'signet_distribution_revocation_propagation_seconds',
          help: 'From a revocation to the last target of a truststore holding the CRL that carries it',
          labelNames: ['truststore'],
          buckets: [0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14400],
          registers: [registry],
        }),
    );
    this.attempts = metric(
      registry,
      'signet_distribution_attempts_total',
      () =>
        new Counter({
          name: 'signet_distribution_attempts_total',
          help: 'Reconcile attempts by outcome (pushed, held, failed)',
          labelNames: ['region', 'kind', 'result'],
          registers: [registry],
        }),
    );
    this.failures = metric(
      registry,
      'signet_distribution_failures_total',
      () =>
        new Counter({
          name: 'signet_distribution_failures_total',
          help: 'Failed reconcile attempts by error kind',
          labelNames: ['region', 'kind', 'error'],
          registers: [registry],
        }),
    );
    this.lagSeconds = metric(
      registry,
      'signet_distribution_lag_seconds',
      () =>
        new Gauge({
          name: 'signet_distribution_lag_seconds',
          help: 'Seconds a target has been behind its truststore (0 when converged)',
          labelNames: ['region', 'target'],
          registers: [registry],
        }),
    );
    this.lagVersions = metric(
      registry,
      'signet_distribution_lag_versions',
      () =>
        new Gauge({
          name: 'signet_distribution_lag_versions',
          help: 'Truststore versions a target is behind',
          labelNames: ['region', 'target'],
          registers: [registry],
        }),
    );
    this.targets = metric(
      registry,
      'signet_distribution_targets',
      () =>
        new Gauge({
          name: 'signet_distribution_targets',
          help: 'Targets by reconcile state',
          labelNames: ['state'],
          registers: [registry],
        }),
    );
    // Per target, so an alert can name the failing one (the summary above cannot).
    this.targetState = metric(
      registry,
      'signet_distribution_target_state',
      () =>
        new Gauge({
          name: 'signet_distribution_target_state',
          help: 'Reconcile state of each target (1 for its current state: converged, pending, pushing, retrying, blocked)',
          labelNames: ['region', 'target', 'state'],
          registers: [registry],
        }),
    );
  }
}

/** Reuses a metric already registered (several apps in one test process share nothing else). */
function metric<T>(registry: Registry, name: string, create: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? create();
}
