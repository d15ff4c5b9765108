import { Inject, Injectable, Logger } from '@nestjs/common';
import { Interval } from '@nestjs/schedule';
import { createHash } from 'node:crypto';
import { DomainError, ErrorCode } from '../common/errors';
import { SIGNET_CONFIG, SignetConfig } from '../config/config';
import { IdempotencyRepository } from './idempotency.repository';
import type { SignRequest } from './sign-request';

export type IdempotencyClaim = { kind: 'claimed' } | { kind: 'replay'; response: string };

/**
 * A claim left `pending` this long belongs to a request that died before answering (requests
 * time out after 30 s). Its response was never sent — responses are stored before they are sent —
 * so a retry may take the claim over and sign.
 */
const ABANDONED_AFTER_SECONDS = 60;
/** How long a duplicate waits for the first request with its key to finish before 409. */
const WAIT_FOR_FIRST_MS = 3_000;

/**
 * `idempotencyKey` on sign requests, kept in PostgreSQL so it holds across replicas. The first
 * request with a (token, key) pair claims it (INSERT … ON CONFLICT: of concurrent duplicates
 * exactly one wins and signs); its response is stored before it is sent; later requests within
 * the window get that response again, or 409 CONFLICT when they are a different request.
 */
@Injectable()
export class IdempotencyStore {
  private readonly logger = new Logger(IdempotencyStore.name);
  private readonly windowSeconds: number;

  constructor(
    private readonly records: IdempotencyRepository,
    @Inject(SIGNET_CONFIG) config: SignetConfig,
  ) {
    this.windowSeconds = config.signing.idempotencyWindowSeconds;
  }

  async claim(tokenId: string, key: string, fingerprint: Buffer): Promise<IdempotencyClaim> {
    const deadline = Date.now() + WAIT_FOR_FIRST_MS;
    for (let pause = 20; ; pause = Math.min(pause * 2, 200)) {
      if (await this.records.tryClaim(tokenId, key, fingerprint, this.windowSeconds, ABANDONED_AFTER_SECONDS))
        return { kind: 'claimed' };
      const existing = await this.records.find(tokenId, key);
      if (!existing) continue; // pruned in between: claim again
      if (!existing.fingerprint.equals(fingerprint)) {
        throw new DomainError(
          ErrorCode.CONFLICT,
          'sign: this idempotencyKey was already used with a different request',
          { field: 'idempotencyKey' },
        );
      }
      if (existing.state === 'done') return { kind: 'replay', response: existing.response as string };
      if (Date.now() >= deadline) {
        throw new DomainError(
          ErrorCode.CONFLICT,
          'sign: a request with this idempotencyKey is still being processed; retry later',
          { field: 'idempotencyKey', retryAfterSeconds: 1 },
        );
      }
      await new Promise((resolve) => setTimeout(resolve, pause));
    }
  }

  /** Stores the response; must succeed before the response is sent (else 503, signature withheld). */
  async complete(tokenId: string, key: string, response: string): Promise<void> {
    await this.records.complete(tokenId, key, response);
  }

  /** Frees the claim of a request that failed, so a retry can sign (best effort). */
  async release(tokenId: string, key: string): Promise<void> {
    await this.records.releasePending(tokenId, key);
  }

  /** Drops pairs older than the window (each replica runs it; deleting twice is harmless). */
  @Interval('sign-idempotency-prune', 600_000)
  async prune(): Promise<number> {
    try {
      return await this.records.deleteOlderThan(this.windowSeconds);
    } catch (error) {
      this.logger.warn(`pruning idempotency keys failed: ${(error as Error).message}`);
      return 0;
    }
  }
}

/** What makes two sign requests "the same": the key and every field that changes the signature or its record. */
export function requestFingerprint(keyName: string, request: SignRequest): Buffer {
  const artifact = request.artifact
    ? [request.artifact.digest, request.artifact.mediaType ?? '', request.artifact.size ?? '']
    : null;
  return createHash('sha256')
    .update(JSON.stringify([keyName, request.mode, request.hashAlgorithm, request.signatureFormat, artifact]))
    .update('\0')
    .update(request.bytes)
    .digest();
}
