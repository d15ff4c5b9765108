import { Injectable } from '@nestjs/common';
import { Client } from 'pg';
import { DataSource } from 'typeorm';
import { ADVISORY_LOCKS } from '../database/advisory-lock';
import { pgPool, withClient } from './audit-pg';

/** One scheduled full verify as audit_verifications records it (times in epoch ms). */
export interface StoredVerification {
  startedMs: number;
  finishedMs: number;
  ok: boolean;
  checked: number;
  head: string;
  firstBrokenSeq: string | null;
  reason: string | null;
  runBy: string;
}

/** A full verify's outcome to record (times canonical text). */
export type NewVerification = Omit<StoredVerification, 'startedMs' | 'finishedMs'> & {
  startedAt: string;
  finishedAt: string;
};

/** The scheduled full verify's records (audit_verifications) and its lock. */
@Injectable()
export class AuditVerificationsRepository {
  constructor(private readonly dataSource: DataSource) {}

  /**
   * The full-verify lock: a session advisory lock, held while `work` runs (minutes on a large
   * log) and released after it. On a connection of its own, so the verify's pages never wait for
   * the pool behind it (one pooled connection when the DataSource has no URL). Resolves undefined,
   * without running `work`, when another replica holds the lock.
   */
  async whileHoldingFullVerifyLock<T>(work: () => Promise<T>): Promise<T | undefined> {
    return this.onLockConnection(async (client) => {
      const key = ADVISORY_LOCKS.auditFullVerify.toString();
      const { rows } = await client.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1::bigint) AS locked', [
        key,
      ]);
      if (!rows[0].locked) return undefined;
      try {
        return await work();
      } finally {
        await client.query('SELECT pg_advisory_unlock($1::bigint)', [key]);
      }
    });
  }

  /** The latest full verify any replica recorded. */
  async latestFull(): Promise<StoredVerification | undefined> {
    const { rows } = await this.dataSourcePool().query(
      `SELECT (extract(epoch FROM started_at) * 1000)::bigint::text AS started_ms, (extract(epoch FROM finished_at) * 1000)::bigint::text AS finished_ms,
              ok, checked::text AS checked, head_seq::text AS head, first_broken_seq::text AS first_broken_seq, reason, run_by
         FROM audit_verifications WHERE mode = 'full' ORDER BY audit_verifications.started_at DESC, audit_verifications.id DESC LIMIT 1`,
    );
    const row = rows[0];
    if (!row) return undefined;
    return {
      startedMs: Number(row.started_ms),
      finishedMs: Number(row.finished_ms),
      ok: row.ok,
      checked: Number(row.checked),
      head: row.head,
      firstBrokenSeq: row.first_broken_seq,
      reason: row.reason,
      runBy: row.run_by,
    };
  }

  async recordFull(run: NewVerification): Promise<void> {
    await this.dataSourcePool().query(
      `INSERT INTO audit_verifications (started_at, finished_at, mode, ok, checked, head_seq, first_broken_seq, reason, run_by) VALUES ($1, $2, 'full', $3, $4, $5, $6, $7, $8)`,
      [run.startedAt, run.finishedAt, run.ok, run.checked, run.head, run.firstBrokenSeq, run.reason, run.runBy],
    );
  }

  private async onLockConnection<T>(work: (client: Pick<Client, 'query'>) => Promise<T>): Promise<T> {
    const url = (this.dataSource.options as { url?: string }).url;
    if (!url) return withClient(this.dataSourcePool(), work);
    const client = new Client({ connectionString: url, application_name: 'signet-audit-verify' });
    client.on('error', () => undefined);
    await client.connect();
    try {
      return await work(client);
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  private dataSourcePool() {
    return pgPool(this.dataSource);
  }
}
