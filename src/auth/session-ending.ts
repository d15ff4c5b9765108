import type { EntityManager } from 'typeorm';
import type { AuditService } from '../audit/audit.service';
import type { AuditActor } from '../audit/audit.types';

/**
 * Ends the open console sessions `where` selects (parameters $1…), each with one `session.ended`
 * audit row, inside the caller's transaction. Its own file so TokenService (revocation ends the
 * token's sessions) and SessionService share it without importing each other.
 */
export async function endSessions(manager: EntityManager, audit: AuditService, where: string, params: unknown[], reason: string, actor?: AuditActor): Promise<number> {
  const [rows]: [Array<{ id: string; token_id: string }>, number] = await manager.query(
    `UPDATE console_sessions SET ended_at = now(), end_reason = $${params.length + 1} WHERE ${where} AND ended_at IS NULL RETURNING id, token_id`,
    [...params, reason],
  );
  if (rows.length > 0) await audit.recordMany(rows.map((row) => ({ type: 'session.ended', actor, subject: row.id, data: { tokenId: row.token_id, reason } })));
  return rows.length;
}
