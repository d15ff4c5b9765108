import { Injectable } from '@nestjs/common';
import { Readable } from 'node:stream';
import { DataSource } from 'typeorm';
import { canonicalTime } from './audit-canonical';
import { asAuditError, pgPool } from './audit-pg';
import { AuditEventView } from './audit.types';
import { ROW_COLUMNS, StoredRow, toRow } from './audit-verifier';

export interface AuditExportQuery {
  after?: string;
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
  /** `desc`: newest first, paging down with `before` (JSON pages only). */
  order?: 'asc' | 'desc';
  before?: string;
  limit?: number;
}

const STREAM_PAGE = 1000;

/** Whether an unfiltered read counts as an export (moves the watermark): SIEM reads with a token do, console reads do not. */
export interface ExportOptions {
  markExported: boolean;
}

/**
 * Reads the log for people and SIEMs. Unfiltered reads that continue from the export watermark
 * (everything up to it already served) move the watermark, which retention consults: a partition
 * is dropped only when all of its rows have been served by such an export.
 */
@Injectable()
export class AuditExportService {
  constructor(private readonly dataSource: DataSource) {}

  async page(query: AuditExportQuery, options: ExportOptions = { markExported: true }): Promise<{ events: AuditEventView[]; next: string | null }> {
    const limit = query.limit ?? 100;
    try {
      const rows = query.order === 'desc' ? await this.readNewestFirst(query, limit) : await this.read(query.after ?? '0', undefined, query, limit);
      const events = rows.map(eventView);
      if (options.markExported && !filtered(query) && events.length > 0) await this.markExported(query.after ?? '0', events[events.length - 1].seq);
      // Newest first, `next` is the `before` of the following page; otherwise its `after`.
      return { events, next: events.length === limit ? events[events.length - 1].seq : null };
    } catch (error) {
      throw asAuditError(error);
    }
  }

  /**
   * NDJSON, one event per line, from `after` up to the last row when the export started (or
   * `limit` events). The watermark moves only when the stream ran to its end.
   */
  async stream(query: AuditExportQuery, options: ExportOptions = { markExported: true }): Promise<Readable> {
    const pool = pgPool(this.dataSource);
    const { rows } = await pool.query<{ max: string | null }>('SELECT max(seq)::text AS max FROM audit_events').catch((error) => Promise.reject(asAuditError(error)));
    const until = rows[0].max ?? '0';
    const start = query.after ?? '0';
    const read = (after: string, limit: number) => this.read(after, until, query, limit);
    const markExported = (through: string) => this.markExported(start, through);
    async function* lines(): AsyncGenerator<string> {
      let after = start;
      let remaining = query.limit ?? Number.MAX_SAFE_INTEGER;
      while (remaining > 0) {
        const page = await read(after, Math.min(STREAM_PAGE, remaining));
        if (page.length === 0) break;
        let chunk = '';
        for (const row of page) chunk += JSON.stringify(eventView(row)) + '\n';
        yield chunk;
        after = page[page.length - 1].seq;
        remaining -= page.length;
        if (page.length < STREAM_PAGE) break;
      }
      if (options.markExported && !filtered(query) && after !== start) await markExported(after);
    }
    return Readable.from(lines(), { objectMode: false });
  }

  private async read(after: string, until: string | undefined, filter: AuditExportQuery, limit: number): Promise<StoredRow[]> {
    const params: unknown[] = [after, limit];
    let where = 'seq > $1';
    if (until !== undefined) where += ` AND seq <= $${params.push(until)}`;
    where += filterSql(filter, params);
    const { rows } = await pgPool(this.dataSource).query(`SELECT ${ROW_COLUMNS} FROM audit_events WHERE ${where} ORDER BY audit_events.seq LIMIT $2`, params);
    return rows.map(toRow);
  }

  /** The console's view: the newest rows first, below `before` when paging. */
  private async readNewestFirst(filter: AuditExportQuery, limit: number): Promise<StoredRow[]> {
    const params: unknown[] = [limit];
    let where = 'true';
    if (filter.before !== undefined) where += ` AND seq < $${params.push(filter.before)}`;
    if (filter.after !== undefined) where += ` AND seq > $${params.push(filter.after)}`;
    where += filterSql(filter, params);
    const { rows } = await pgPool(this.dataSource).query(`SELECT ${ROW_COLUMNS} FROM audit_events WHERE ${where} ORDER BY audit_events.seq DESC LIMIT $1`, params);
    return rows.map(toRow);
  }

  /** Served (after, through] without a filter: extend the watermark if that run joins it. */
  private async markExported(after: string, through: string): Promise<void> {
    await pgPool(this.dataSource).query(
      'UPDATE audit_export_watermark SET exported_through_seq = $2, updated_at = now() WHERE exported_through_seq >= $1 AND exported_through_seq < $2',
      [after, through],
    );
  }
}

export function eventView(row: StoredRow): AuditEventView {
  return {
    seq: row.seq,
    time: canonicalTime(row.timeMs),
    type: row.type,
    actor: row.actor,
    subject: row.subject,
    data: row.data,
    prevHash: row.prevHash.toString('hex'),
    hash: row.hash.toString('hex'),
  };
}

/** A filtered read serves only some rows: it never moves the export watermark (nor does a newest-first page). */
function filtered(query: AuditExportQuery): boolean {
  const { type, subject, actor, key, artifact, since, until, order } = query;
  return [type, subject, actor, key, artifact, since, until].some((value) => value !== undefined) || order === 'desc';
}

/** The WHERE conditions (each starting with AND) of the filters given, their values appended to `params`. */
function filterSql(filter: AuditExportQuery, params: unknown[]): string {
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
  if (filter.artifact !== undefined) where += ` AND type = 'sign' AND data #>> '{artifact,digest}' = $${params.push(filter.artifact)}`;
  if (filter.since !== undefined) where += ` AND time >= $${params.push(filter.since)}::timestamptz`;
  if (filter.until !== undefined) where += ` AND time < $${params.push(filter.until)}::timestamptz`;
  return where;
}
