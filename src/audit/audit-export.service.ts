import { Injectable } from '@nestjs/common';
import { Readable } from 'node:stream';
import { canonicalTime } from './audit-canonical';
import { asAuditError } from './audit-pg';
import { AuditRepository, AuditRowFilter, StoredRow } from './audit.repository';
import { AuditEventView } from './audit.types';

export interface AuditExportQuery extends AuditRowFilter {
  after?: string;
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
  constructor(private readonly rows: AuditRepository) {}

  async page(
    query: AuditExportQuery,
    options: ExportOptions = { markExported: true },
  ): Promise<{ events: AuditEventView[]; next: string | null }> {
    const limit = query.limit ?? 100;
    try {
      const rows =
        query.order === 'desc'
          ? await this.rows.rowsNewestFirst(query, limit)
          : await this.rows.rowsAfter(query.after ?? '0', undefined, query, limit);
      const events = rows.map(eventView);
      if (options.markExported && !filtered(query) && events.length > 0)
        await this.rows.markExported(query.after ?? '0', events[events.length - 1].seq);
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
    const until = await this.rows.lastSeq().catch((error) => Promise.reject(asAuditError(error)));
    const start = query.after ?? '0';
    const read = (after: string, limit: number) => this.rows.rowsAfter(after, until, query, limit);
    const markExported = (through: string) => this.rows.markExported(start, through);
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
