import { Injectable } from '@nestjs/common';
import type { Pool, PoolClient } from 'pg';
import { DataSource } from 'typeorm';
import { canonicalTime } from './audit-canonical';
import { pgPool, withClient } from './audit-pg';
import { AuditActor, JsonValue } from './audit.types';

/** A connection a statement runs on: a pool (each statement on any connection) or one client (its transaction). */
export type AuditConnection = Pick<PoolClient, 'query'>;

/** The chain head: the last row's seq, hash and time (epoch ms). */
export interface ChainHead {
  seq: bigint;
  hash: Buffer;
  timeMs: number;
}

/** Rows chained onto a head by the writer: the rows as one jsonb array text, and the head after them. */
export interface ChainedRows {
  rowsJson: string;
  last: ChainHead;
}

export interface StoredRow {
  seq: string;
  timeMs: number;
  type: string;
  actor: AuditActor | null;
  subject: string | null;
  data: { [key: string]: JsonValue };
  prevHash: Buffer;
  hash: Buffer;
}

/** Filters of a read of the log (exports and the console), each narrowing the rows served. */
export interface AuditRowFilter {
  type?: string;
  /** The row's subject, or the `sub` of the workload identity that acted. */
  subject?: string;
  /** Who acted: a token's name or id, or a workload identity's `sub`. */
  actor?: string;
  /** Rows about a signing key: its own events (subject) and those naming it in data.key. */
  key?: string;
  /** `sign` rows of this artifact digest. */
  artifact?: string;
  /** ISO 8601 bounds on the row's time: since inclusive, until exclusive. */
  since?: string;
  until?: string;
}

// Aliases shadow column names in ORDER BY: always order by the qualified column (audit_events.seq).
export const ROW_COLUMNS = `seq::text AS seq, (extract(epoch FROM time) * 1000)::bigint::text AS time_ms, type, actor, subject, data, prev_hash, hash`;

export function toRow(r: Record<string, unknown>): StoredRow {
  return {
    seq: r.seq as string,
    timeMs: Number(r.time_ms),
    type: r.type as string,
    actor: (r.actor as AuditActor | null) ?? null,
    subject: (r.subject as string | null) ?? null,
    data: r.data as { [key: string]: JsonValue },
    prevHash: r.prev_hash as Buffer,
    hash: r.hash as Buffer,
  };
}

/**
 * Rows travel as one jsonb array of [seq, time, type, actor, subject, data, prev_hash hex, hash hex]
 * (actor and data are the canonical JSON texts, embedded as they are): one parameter, no per-element
 * array escaping in the driver.
 */
const INSERT_ROWS = `
    INSERT INTO audit_events (seq, time, type, actor, subject, data, prev_hash, hash)
    SELECT (e->>0)::bigint, (e->>1)::timestamptz, e->>2, NULLIF(e->3, 'null'::jsonb), e->>4, e->5, decode(e->>6, 'hex'), decode(e->>7, 'hex')
    FROM jsonb_array_elements($1::jsonb) AS e`;

const INSERT_AND_MOVE_HEAD = `
  WITH inserted AS (${INSERT_ROWS})
  UPDATE audit_chain_head SET seq = $2, hash = $3, time = $4`;

/** audit_append_batch (migration AuditAppendBatch): the whole batch in one statement, one round trip. */
const APPEND =
  'SELECT appended, head_seq, head_hash, head_time_ms FROM audit_append_batch($1, $2, $3::jsonb, $4, $5, $6)';

/** Runs `work` in a transaction on one pooled connection (see withClient). */
export async function inTransaction<T>(pool: Pool, work: (client: PoolClient) => Promise<T>): Promise<T> {
  return withClient(pool, async (client) => {
    await client.query('BEGIN');
    try {
      const result = await work(client);
      await client.query('COMMIT');
      return result;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    }
  });
}

/**
 * The audit chain's rows and its head: the writer's statements (on the writer's connection, each
 * one round trip, prepared where repeated), the reads of verify and export, and the export
 * watermark. Reads without a connection argument run on the shared pool.
 */
@Injectable()
export class AuditRepository {
  constructor(private readonly dataSource: DataSource) {}

  // ---- The writer (group commit). Statement text, names and round trips are the hot path's. ----

  /**
   * The chain-head lock: begins the batch's transaction, bounds its statements, and locks and reads
   * the head (FOR UPDATE), all in one simple-protocol round trip. The lock is what keeps replicas
   * on one unbroken chain; it is held until commit() or rollback().
   */
  async beginAndLockHead(client: AuditConnection, statementTimeoutMs: number): Promise<ChainHead> {
    const results = (await client.query(
      `BEGIN; SET LOCAL statement_timeout = ${Math.floor(statementTimeoutMs)}; ` +
        'SELECT seq::text AS seq, hash, (extract(epoch FROM time) * 1000)::bigint::text AS time_ms FROM audit_chain_head FOR UPDATE',
    )) as unknown as Array<{ rows: Array<{ seq: string; hash: Buffer; time_ms: string }> }>;
    const row = results[2].rows[0];
    if (!row) throw new Error('audit_chain_head has no row (migration not applied?)');
    return { seq: BigInt(row.seq), hash: row.hash, timeMs: Number(row.time_ms) };
  }

  /** Inserts the rows and moves the head past them, in the transaction beginAndLockHead began. */
  async insertAndMoveHead(client: AuditConnection, chained: ChainedRows): Promise<void> {
    await client.query({
      name: 'signet_audit_insert_batch',
      text: INSERT_AND_MOVE_HEAD,
      values: [chained.rowsJson, chained.last.seq.toString(), chained.last.hash, canonicalTime(chained.last.timeMs)],
    });
  }

  async commit(client: AuditConnection): Promise<void> {
    await client.query('COMMIT');
  }

  /** Ends whatever transaction `client` is in, ignoring failures (the connection may be gone). */
  async rollbackQuietly(client: AuditConnection): Promise<void> {
    await client.query('ROLLBACK').catch(() => undefined);
  }

  /**
   * One statement, committed as it returns (autocommit): audit_append_batch locks the head, and
   * inserts the rows and moves the head only if the head is still `onto`. Otherwise nothing is
   * written and the current head is returned.
   */
  async appendOnto(
    client: AuditConnection,
    onto: ChainHead,
    chained: ChainedRows,
  ): Promise<{ appended: true } | { appended: false; head: ChainHead }> {
    const result = await client.query<{ appended: boolean; head_seq: string; head_hash: Buffer; head_time_ms: string }>(
      {
        name: 'signet_audit_append_batch',
        text: APPEND,
        values: [
          onto.seq.toString(),
          onto.hash,
          chained.rowsJson,
          chained.last.seq.toString(),
          chained.last.hash,
          canonicalTime(chained.last.timeMs),
        ],
      },
    );
    const row = result.rows[0];
    if (row.appended) return { appended: true };
    return {
      appended: false,
      head: { seq: BigInt(row.head_seq), hash: row.head_hash, timeMs: Number(row.head_time_ms) },
    };
  }

  // ---- Reads of the chain (verify, checkpoints). ----

  /** The head's seq, read on `connection` (the checkpoint transaction's). */
  async headSeq(connection: AuditConnection): Promise<string> {
    const { rows } = await connection.query('SELECT seq::text AS seq FROM audit_chain_head');
    return rows[0].seq as string;
  }

  /** The head's seq and hash and the highest seq of any row (null when no row is kept), in one read. */
  async headAndLastSeq(): Promise<{ headSeq: string; headHash: Buffer; maxSeq: string | null }> {
    const { rows } = await this.pool().query<{ head_seq: string; head_hash: Buffer; max_seq: string | null }>(
      `SELECT (SELECT seq::text FROM audit_chain_head) AS head_seq, (SELECT hash FROM audit_chain_head) AS head_hash,
              (SELECT max(seq)::text FROM audit_events) AS max_seq`,
    );
    return { headSeq: rows[0].head_seq, headHash: rows[0].head_hash, maxSeq: rows[0].max_seq };
  }

  /** The last row retention dropped (where the kept chain starts), or undefined when none was. */
  async lastDroppedRow(): Promise<{ seq: bigint; hash: Buffer } | undefined> {
    const { rows } = await this.pool().query<{ last_seq: string; last_hash: Buffer }>(
      'SELECT last_seq::text AS last_seq, last_hash FROM audit_retention_drops WHERE last_seq IS NOT NULL ORDER BY audit_retention_drops.last_seq DESC LIMIT 1',
    );
    return rows[0] ? { seq: BigInt(rows[0].last_seq), hash: rows[0].last_hash } : undefined;
  }

  /** Every row at one of `seqs` (duplicates included), `pageSize` seqs a statement. */
  async rowsAt(seqs: string[], pageSize: number): Promise<StoredRow[]> {
    const out: StoredRow[] = [];
    for (let i = 0; i < seqs.length; i += pageSize) {
      const { rows } = await this.pool().query(
        `SELECT ${ROW_COLUMNS} FROM audit_events WHERE seq = ANY($1::bigint[])`,
        [seqs.slice(i, i + pageSize)],
      );
      for (const row of rows) out.push(toRow(row));
    }
    return out;
  }

  /** Rows with `from` ≤ seq ≤ `through`, by seq (then time, so duplicates come out in a stable order), at most `limit`. */
  async rowsBetween(from: bigint, through: bigint, limit: number): Promise<StoredRow[]> {
    const { rows } = await this.pool().query(
      `SELECT ${ROW_COLUMNS} FROM audit_events WHERE seq >= $1 AND seq <= $2 ORDER BY audit_events.seq, audit_events.time LIMIT ${limit}`,
      [from.toString(), through.toString()],
    );
    return rows.map(toRow);
  }

  // ---- Reads for people and SIEMs (export). ----

  /** The highest seq of any row, '0' when there is none. */
  async lastSeq(): Promise<string> {
    const { rows } = await this.pool().query<{ max: string | null }>('SELECT max(seq)::text AS max FROM audit_events');
    return rows[0].max ?? '0';
  }

  /** Rows after `after` (and up to `until`), oldest first, matching `filter`, at most `limit`. */
  async rowsAfter(
    after: string,
    until: string | undefined,
    filter: AuditRowFilter,
    limit: number,
  ): Promise<StoredRow[]> {
    const params: unknown[] = [after, limit];
    let where = 'seq > $1';
    if (until !== undefined) where += ` AND seq <= $${params.push(until)}`;
    where += filterSql(filter, params);
    const { rows } = await this.pool().query(
      `SELECT ${ROW_COLUMNS} FROM audit_events WHERE ${where} ORDER BY audit_events.seq LIMIT $2`,
      params,
    );
    return rows.map(toRow);
  }

  /** The newest rows first, below `before` and above `after` when given, matching `filter`, at most `limit`. */
  async rowsNewestFirst(
    filter: AuditRowFilter & { before?: string; after?: string },
    limit: number,
  ): Promise<StoredRow[]> {
    const params: unknown[] = [limit];
    let where = 'true';
    if (filter.before !== undefined) where += ` AND seq < $${params.push(filter.before)}`;
    if (filter.after !== undefined) where += ` AND seq > $${params.push(filter.after)}`;
    where += filterSql(filter, params);
    const { rows } = await this.pool().query(
      `SELECT ${ROW_COLUMNS} FROM audit_events WHERE ${where} ORDER BY audit_events.seq DESC LIMIT $1`,
      params,
    );
    return rows.map(toRow);
  }

  /** Served (after, through] without a filter: extends the export watermark if that run joins it. */
  async markExported(after: string, through: string): Promise<void> {
    await this.pool().query(
      'UPDATE audit_export_watermark SET exported_through_seq = $2, updated_at = now() WHERE exported_through_seq >= $1 AND exported_through_seq < $2',
      [after, through],
    );
  }

  private pool(): Pool {
    return pgPool(this.dataSource);
  }
}

/** The WHERE conditions (each starting with AND) of the filters given, their values appended to `params`. */
function filterSql(filter: AuditRowFilter, params: unknown[]): string {
  let where = '';
  if (filter.type !== undefined) where += ` AND type = $${params.push(filter.type)}`;
  if (filter.subject !== undefined) {
    const n = params.push(filter.subject);
    where += ` AND (subject = $${n} OR (actor ? 'workload' AND actor #>> '{workload,sub}' = $${n}))`;
  }
  if (filter.actor !== undefined) {
    const n = params.push(filter.actor);
    where += ` AND (actor->>'tokenName' = $${n} OR actor->>'tokenId' = $${n} OR (actor ? 'workload' AND actor #>> '{workload,sub}' = $${n}))`;
  }
  if (filter.key !== undefined) {
    const n = params.push(filter.key);
    where += ` AND (subject = $${n} OR data->>'key' = $${n} OR data->>'keyName' = $${n})`;
  }
  if (filter.artifact !== undefined)
    where += ` AND type = 'sign' AND data #>> '{artifact,digest}' = $${params.push(filter.artifact)}`;
  if (filter.since !== undefined) where += ` AND time >= $${params.push(filter.since)}::timestamptz`;
  if (filter.until !== undefined) where += ` AND time < $${params.push(filter.until)}::timestamptz`;
  return where;
}
