import { Inject, Injectable } from '@nestjs/common';
import { performance } from 'node:perf_hooks';
import { SIGNET_CONFIG, SignetConfig } from '../config/config';

const MAX_CLIENTS = 50_000;

/**
 * Per-client-address token buckets for the unauthenticated endpoints (/pki, /ocsp, /tsa), so a
 * noisy verifier fleet cannot starve signing of HSM time. In memory, per replica; the table is
 * bounded (idle, refilled buckets are dropped first).
 */
@Injectable()
export class ClientRateLimiter {
  private readonly buckets = new Map<string, { tokens: number; updatedMs: number }>();

  constructor(@Inject(SIGNET_CONFIG) private readonly config: SignetConfig) {}

  /** 0 when allowed, else seconds until the next request from `address` is allowed. */
  take(address: string, now = performance.now()): number {
    const rate = this.config.pki.publicRateLimitPerSecond;
    const burst = rate * 2;
    let bucket = this.buckets.get(address);
    if (!bucket) {
      if (this.buckets.size >= MAX_CLIENTS) this.evict(now, rate, burst);
      bucket = { tokens: burst, updatedMs: now };
      this.buckets.set(address, bucket);
    } else {
      bucket.tokens = Math.min(burst, bucket.tokens + ((now - bucket.updatedMs) / 1000) * rate);
      bucket.updatedMs = now;
    }
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    return (1 - bucket.tokens) / rate;
  }

  private evict(now: number, rate: number, burst: number): void {
    for (const [address, bucket] of this.buckets) {
      if (bucket.tokens + ((now - bucket.updatedMs) / 1000) * rate >= burst) this.buckets.delete(address);
    }
    // Everyone is busy: forget the oldest half rather than grow without bound.
    if (this.buckets.size >= MAX_CLIENTS) {
      let drop = Math.floor(this.buckets.size / 2);
      for (const address of this.buckets.keys()) {
        if (drop-- <= 0) break;
        this.buckets.delete(address);
      }
    }
  }
}
