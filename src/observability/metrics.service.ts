import { Injectable } from '@nestjs/common';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { FastCounter, FastHistogram } from './fast-metrics';

/** One Prometheus registry for the process; feature modules add their own metrics to it. */
@Injectable()
export class MetricsService {
  readonly registry = new Registry();
  /** Observed on every request: the hot path's own metric types (fast-metrics.ts), same exposition. */
  readonly httpRequests: FastCounter;
  readonly httpDuration: FastHistogram;

  constructor() {
    this.registry.setDefaultLabels({ service: 'signet' });
    collectDefaultMetrics({ register: this.registry });
    const labelNames = ['method', 'route', 'status'];
    this.httpRequests = new FastCounter(
      'signet_http_requests_total',
      'HTTP requests by method, route template and status code',
      labelNames,
      this.registry,
    );
    this.httpDuration = new FastHistogram(
      'signet_http_request_duration_seconds',
      'HTTP request latency by method, route template and status code',
      labelNames,
      [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      this.registry,
    );
  }

  observeRequest(method: string, route: string, status: number, seconds: number): void {
    const code = String(status);
    this.httpRequests.labels(method, route, code).inc();
    this.httpDuration.labels(method, route, code).observe(seconds);
  }
}
