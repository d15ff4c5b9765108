import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { PoolStatementsRepository } from './pool-statements.repository';

/** A stored (token, idempotency key) record. */
export interface IdempotencyRecord {
  fingerprint: Buffer;
  state: 'pending' | 'done';
  response: string | null;
}

const CLAIM = `
  INSERT INTO sign_idempotency AS s (token_id, idempotency_key, fingerprint, state, created_at)
  VALUES ($1, $2, $3, 'pending', now())
  ON CONFLICT (token_id, idempotency_key) DO UPDATE
    SET fingerprint = EXCLUDED.fingerprint, state = 'pending', response = NULL, created_at = now()
    WHERE s.created_at < now() - make_interval(secs => $4)
       OR (s.state = 'pending' AND s.created_at < now() - make_interval(secs => $5))
  RETURNING 1`;

/**
 * Sign idempotency records (`sign_idempotency`), one statement each straight on the pg pool (the
 * signing path): a database error reads as the audit layer's (503).
 */
@Injectable()
export class IdempotencyRepository extends PoolStatementsRepository {
  constructor(dataSource: DataSource) {
    super(dataSource);
  }

  /**
   * Claims (token, key) for this request in one statement: inserted, or taken over when the stored
   * record is older than `windowSeconds` or a claim left pending for `abandonedAfterSeconds`. Of
   * concurrent duplicates exactly one gets true.
   */
  async tryClaim(
    tokenId: string,
    key: string,
    fingerprint: Buffer,
    windowSeconds: number,
    abandonedAfterSeconds: number,
  ): Promise<boolean> {
    const rows = await this.query(CLAIM, [tokenId, key, fingerprint, windowSeconds, abandonedAfterSeconds]);
    return rows.length === 1;
  }

  async find(tokenId: string, key: string): Promise<IdempotencyRecord | undefined> {
    const [existing] = await this.query(
      'SELECT fingerprint, state, response FROM sign_idempotency WHERE token_id = $1 AND idempotency_key = $2',
      [tokenId, key],
    );
    return existing as unknown as IdempotencyRecord | undefined;
  }

  async complete(tokenId: string, key: string, response: string): Promise<void> {
    await this.query(
      `UPDATE sign_idempotency SET state = 'done', response = $3 WHERE token_id = $1 AND idempotency_key = $2`,
      [tokenId, key, response],
    );
  }

  /** Deletes the claim if it is still pending. */
  async releasePending(tokenId: string, key: string): Promise<void> {
    await this.query(
      `DELETE FROM sign_idempotency WHERE token_id = $1 AND idempotency_key = $2 AND state = 'pending'`,
      [tokenId, key],
    );
  }

  /** Deletes up to 10,000 records older than `windowSeconds`; returns how many. */
  async deleteOlderThan(windowSeconds: number): Promise<number> {
    const rows = await this.query(
      `DELETE FROM sign_idempotency WHERE ctid IN (SELECT ctid FROM sign_idempotency WHERE created_at < now() - make_interval(secs => $1) LIMIT 10000) RETURNING 1`,
      [windowSeconds],
    );
    return rows.length;
  }
}
