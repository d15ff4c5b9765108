import { Inject, Injectable } from '@nestjs/common';
import { performance } from 'node:perf_hooks';
import { takeToken, TokenBucket } from '../common/token-bucket';
import { SIGNET_CONFIG, SignetConfig } from '../config/config';

/**
 * A token bucket per API token, in this process's memory: limits are per replica (N replicas
 * behind a load balancer allow up to N × the rate). That keeps the check free of I/O on the
 * signing hot path; a global limit belongs in front of Signet (the load balancer) or in
 * PostgreSQL, at a price per request.
 */
@Injectable()
export class RateLimiter {
  private readonly buckets = new Map<string, TokenBucket>();

  constructor(@Inject(SIGNET_CONFIG) private readonly config: SignetConfig) {}

  /**
   * Takes one request from `key`'s bucket. Returns 0 when allowed, else the seconds until one
   * request will be allowed again. `perSecond` overrides the configured rate for this key.
   */
  take(key: string, perSecond?: number | null): number {
    const rate = perSecond ?? this.config.auth.rateLimitPerSecond;
    if (rate <= 0) return 0;
    // A per-token rate keeps the configured burst-to-rate ratio.
    const burst = perSecond
      ? Math.max(
          1,
          Math.round((perSecond * this.config.auth.rateLimitBurst) / Math.max(1, this.config.auth.rateLimitPerSecond)),
        )
      : this.config.auth.rateLimitBurst;
    const existing = this.buckets.get(key);
    const { bucket, waitSeconds } = takeToken(existing, rate, burst, performance.now());
    if (!existing) this.buckets.set(key, bucket);
    return waitSeconds;
  }

  /** Forgets a key's bucket (its token was revoked). */
  forget(key: string): void {
    this.buckets.delete(key);
  }
}
