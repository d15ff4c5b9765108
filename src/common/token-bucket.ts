/** One token bucket's state: tokens available and when they were last counted. */
export interface TokenBucket {
  tokens: number;
  updatedMs: number;
}

/**
 * Takes one token from `bucket` (created full when absent) after refilling it at `rate` per second
 * up to `burst`. Returns the bucket and 0 when allowed, else the seconds until a token is available.
 */
export function takeToken(
  bucket: TokenBucket | undefined,
  rate: number,
  burst: number,
  nowMs: number,
): { bucket: TokenBucket; waitSeconds: number } {
  if (!bucket) {
    bucket = { tokens: burst, updatedMs: nowMs };
  } else {
    bucket.tokens = Math.min(burst, bucket.tokens + ((nowMs - bucket.updatedMs) / 1000) * rate);
    bucket.updatedMs = nowMs;
  }
  if (bucket.tokens >= 1) {
    bucket.tokens -= 1;
    return { bucket, waitSeconds: 0 };
  }
  return { bucket, waitSeconds: (1 - bucket.tokens) / rate };
}

/** True when an idle bucket has refilled completely, i.e. forgetting it changes nothing. */
export function isFull(bucket: TokenBucket, rate: number, burst: number, nowMs: number): boolean {
  return bucket.tokens + ((nowMs - bucket.updatedMs) / 1000) * rate >= burst;
}
