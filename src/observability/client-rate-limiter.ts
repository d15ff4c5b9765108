import { Inject, Injectable } from '@nestjs/common';
import { performance } from 'node:perf_hooks';
import { isFull, takeToken, TokenBucket } from '../common/token-bucket';
import { SIGNET_CONFIG, SignetConfig } from '../config/config';

const MAX_CLIENTS = 50_000;

/**
 * Per-client-address token buckets for the unauthenticated endpoints (/pki, /ocsp, /tsa), so a
 * noisy verifier fleet cannot starve signing of HSM time. In memory, per replica; the table is
 * bounded (idle, refilled buckets are dropped first).
 */
@Injectable()
export class ClientRateLimiter {
  private readonly buckets = new Map<string, TokenBucket>();

  constructor(@Inject(SIGNET_CONFIG) private readonly config: SignetConfig) {}

  /**
   * 0 when allowed, else seconds until the next request from `address` is allowed. `limit`
   * replaces the public endpoints' rate (another use keys its buckets apart, e.g. `signin|<address>`).
   */
  take(address: string, now = performance.now(), limit?: { perSecond: number; burst: number }): number {
    const rate = limit?.perSecond ?? this.config.pki.publicRateLimitPerSecond;
    const burst = limit?.burst ?? rate * 2;
    const existing = this.buckets.get(address);
    if (!existing && this.buckets.size >= MAX_CLIENTS) this.evict(now, rate, burst);
    const { bucket, waitSeconds } = takeToken(existing, rate, burst, now);
    if (!existing) this.buckets.set(address, bucket);
    return waitSeconds;
  }

  private evict(now: number, rate: number, burst: number): void {
    for (const [address, bucket] of this.buckets) {
      if (isFull(bucket, rate, burst, now)) this.buckets.delete(address);
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
