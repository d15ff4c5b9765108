import { Injectable } from '@nestjs/common';
import type { Pool, PoolClient } from 'pg';
import { DataSource } from 'typeorm';
import { ADVISORY_LOCKS } from '../database/advisory-lock';
import { pgPool } from './audit-pg';
import { AuditConnection, inTransaction } from './audit.repository';

export interface StoredCheckpoint {
  id: string;
  seq: string;
  hash: Buffer;
  timeMs: number;
  keySpec: string;
  publicKey: Buffer;
  keyRef: string | null;
  signature: Buffer;
}

/** A checkpoint to store: the head it signs (seq, hash, canonical time) and the signer's output. */
export interface NewCheckpoint {
  seq: string;
  hash: Buffer;
  time: string;
  keySpec: string;
  publicKey: Buffer;
  keyRef: string | null;
  signature: Buffer;
}

/** How far checkpoints cover the chain (for the freshness gauges). Times in Unix seconds. */
export interface CheckpointCoverage {
  headSeq: string;
  checkpointSeq: string | null;
  checkpointTime: number | null;
  oldestUncheckpointedTime: number | null;
}

// Aliases shadow column names in ORDER BY: always order by the qualified column (audit_checkpoints.seq).
export const CHECKPOINT_COLUMNS = `id::text AS id, seq::text AS seq, hash, (extract(epoch FROM time) * 1000)::bigint::text AS time_ms, key_spec, public_key, key_ref, signature`;

export function toCheckpoint(r: Record<string, unknown>): StoredCheckpoint {
  return {
    id: r.id as string,
    seq: r.seq as string,
    hash: r.hash as Buffer,
    timeMs: Number(r.time_ms),
    keySpec: r.key_spec as string,
    publicKey: r.public_key as Buffer,
    keyRef: (r.key_ref as string | null) ?? null,
    signature: r.signature as Buffer,
  };
}

/** The signed checkpoints of the chain head: the checkpoint lock, reads and inserts. */
@Injectable()
export class AuditCheckpointsRepository {
  constructor(private readonly dataSource: DataSource) {}

  /** Runs `work` in a transaction on one pooled connection: the checkpoint lock is held for it. */
  transaction<T>(work: (client: PoolClient) => Promise<T>): Promise<T> {
    return inTransaction(this.pool(), work);
  }

  /**
   * The checkpoint lock (transaction-scoped advisory lock): one checkpoint at a time across
   * replicas. With `wait` it waits for the holder's transaction to end; without, it answers false
   * at once when another transaction holds it.
   */
  async lock(client: AuditConnection, wait: boolean): Promise<boolean> {
    const sql = wait
      ? 'SELECT pg_advisory_xact_lock($1::bigint), true AS locked'
      : 'SELECT pg_try_advisory_xact_lock($1::bigint) AS locked';
    const { rows } = await client.query(sql, [ADVISORY_LOCKS.auditCheckpoint.toString()]);
    return rows[0].locked === true;
  }

  /** The latest checkpoint (highest seq), read on `client`. */
  async latest(client: AuditConnection): Promise<StoredCheckpoint | undefined> {
    const { rows } = await client.query(
      `SELECT ${CHECKPOINT_COLUMNS} FROM audit_checkpoints ORDER BY audit_checkpoints.seq DESC, audit_checkpoints.id DESC LIMIT 1`,
    );
    return rows.map(toCheckpoint)[0];
  }

  async insert(client: AuditConnection, c: NewCheckpoint): Promise<StoredCheckpoint> {
    const { rows } = await client.query(
      `INSERT INTO audit_checkpoints (seq, hash, time, key_spec, public_key, key_ref, signature) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING ${CHECKPOINT_COLUMNS}`,
      [c.seq, c.hash, c.time, c.keySpec, c.publicKey, c.keyRef, c.signature],
    );
    return toCheckpoint(rows[0]);
  }

  /** Every checkpoint, by seq (then id). */
  async all(): Promise<StoredCheckpoint[]> {
    const { rows } = await this.pool().query(
      `SELECT ${CHECKPOINT_COLUMNS} FROM audit_checkpoints ORDER BY audit_checkpoints.seq, audit_checkpoints.id`,
    );
    return rows.map(toCheckpoint);
  }

  /** Checkpoints at seqs after `after`, by seq in `order`, at most `limit`. */
  async page(after: string, limit: number, order: 'asc' | 'desc'): Promise<StoredCheckpoint[]> {
    const direction = order === 'desc' ? 'DESC' : 'ASC';
    const { rows } = await this.pool().query(
      `SELECT ${CHECKPOINT_COLUMNS} FROM audit_checkpoints WHERE seq > $1 ORDER BY audit_checkpoints.seq ${direction}, audit_checkpoints.id ${direction} LIMIT $2`,
      [after, limit],
    );
    return rows.map(toCheckpoint);
  }

  /** The head, the latest checkpoint and the oldest row after it, in one read. */
  async coverage(): Promise<CheckpointCoverage> {
    const {
      rows: [r],
    } = await this.pool().query(
      `WITH c AS (SELECT seq, time FROM audit_checkpoints ORDER BY seq DESC, id DESC LIMIT 1)
           SELECT (SELECT seq::text FROM audit_chain_head) AS head_seq,
                  (SELECT seq::text FROM c) AS checkpoint_seq,
                  (SELECT extract(epoch FROM time)::float8 FROM c) AS checkpoint_time,
                  (SELECT extract(epoch FROM e.time)::float8 FROM audit_events e
                    WHERE e.seq > COALESCE((SELECT seq FROM c), 0) ORDER BY e.seq LIMIT 1) AS oldest_uncheckpointed`,
    );
    return {
      headSeq: r.head_seq,
      checkpointSeq: r.checkpoint_seq,
      checkpointTime: r.checkpoint_time,
      oldestUncheckpointedTime: r.oldest_uncheckpointed,
    };
  }

  private pool(): Pool {
    return pgPool(this.dataSource);
  }
}
