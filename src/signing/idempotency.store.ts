import { Inject, Injectable, Logger } from '@nestjs/common';
import { Interval } from '@nestjs/schedule';
import { createHash } from 'node:crypto';
import { DataSource } from 'typeorm';
import { asAuditError, pgPool } from '../audit/audit-pg';
import { DomainError, ErrorCode } from '../common/errors';
import { SIGNET_CONFIG, SignetConfig } from '../config/config';
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

const CLAIM = `
  INSERT INTO sign_idempotency AS s (token_id, idempotency_key, fingerprint, state, created_at)
  VALUES ($1, $2, $3, 'pending', now())
  ON CONFLICT (token_id, idempotency_key) DO UPDATE
    SET fingerprint = EXCLUDED.fingerprint, state = 'pending', response = NULL, created_at = now()
    WHERE s.created_at < now() - make_interval(secs => $4)
       OR (s.state = 'pending' AND s.created_at < now() - make_interval(secs => $5))
  RETURNING 1`;

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
    private readonly dataSource: DataSource,
    @Inject(SIGNET_CONFIG) config: SignetConfig,
  ) {
    this.windowSeconds = config.signing.idempotencyWindowSeconds;
  }

  async claim(tokenId: string, key: string, fingerprint: Buffer): Promise<IdempotencyClaim> {
    const deadline = Date.now() + WAIT_FOR_FIRST_MS;
    for (let pause = 20; ; pause = Math.min(pause * 2, 200)) {
      const claimed = await this.query(CLAIM, [tokenId, key, fingerprint, this.windowSeconds, ABANDONED_AFTER_SECONDS]);
      if (claimed.length === 1) return { kind: 'claimed' };
      const [existing] = await this.query('SELECT fingerprint, state, response FROM sign_idempotency WHERE token_id = $1 AND idempotency_key = $2', [tokenId, key]);
      if (!existing) continue; // pruned in between: claim again
      if (!(existing.fingerprint as Buffer).equals(fingerprint)) {
        throw new DomainError(ErrorCode.CONFLICT, 'sign: this idempotencyKey was already used with a different request', { field: 'idempotencyKey' });
      }
      if (existing.state === 'done') return { kind: 'replay', response: existing.response as string };
      if (Date.now() >= deadline) {
        throw new DomainError(ErrorCode.CONFLICT, 'sign: a request with this idempotencyKey is still being processed; retry later', { field: 'idempotencyKey', retryAfterSeconds: 1 });
      }
      await new Promise((resolve) => setTimeout(resolve, pause));
    }
  }

  /** Stores the response; must succeed before the response is sent (else 503, signature withheld). */
  async complete(tokenId: string, key: string, response: string): Promise<void> {
    await this.query(`UPDATE sign_idempotency SET state = 'done', response = $3 WHERE token_id = $1 AND idempotency_key = $2`, [tokenId, key, response]);
  }

  /** Frees the claim of a request that failed, so a retry can sign (best effort). */
  async release(tokenId: string, key: string): Promise<void> {
    await this.query(`DELETE FROM sign_idempotency WHERE token_id = $1 AND idempotency_key = $2 AND state = 'pending'`, [tokenId, key]);
  }

  /** Drops pairs older than the window (each replica runs it; deleting twice is harmless). */
  @Interval('sign-idempotency-prune', 600_000)
  async prune(): Promise<number> {
    try {
      const rows = await this.query(
        `DELETE FROM sign_idempotency WHERE ctid IN (SELECT ctid FROM sign_idempotency WHERE created_at < now() - make_interval(secs => $1) LIMIT 10000) RETURNING 1`,
        [this.windowSeconds],
      );
      return rows.length;
    } catch (error) {
      this.logger.warn(`pruning idempotency keys failed: ${(error as Error).message}`);
      return 0;
    }
  }

  private async query(text: string, values: unknown[]): Promise<Array<Record<string, unknown>>> {
    try {
      return (await pgPool(this.dataSource).query(text, values)).rows;
    } catch (error) {
      throw asAuditError(error);
    }
  }
}

/** What makes two sign requests "the same": the key and every field that changes the signature or its record. */
export function requestFingerprint(keyName: string, request: SignRequest): Buffer {
  const artifact = request.artifact ? [request.artifact.digest, request.artifact.mediaType ?? '', request.artifact.size ?? ''] : null;
  return createHash('sha256')
    .update(JSON.stringify([keyName, request.mode, request.hashAlgorithm, request.signatureFormat, artifact]))
    .update('\0')
    .update(request.bytes)
    .digest();
}
