import type { EntityManager } from 'typeorm';
import type { AuditService } from '../audit/audit.service';
import type { AuditActor } from '../audit/audit.types';
import type { SessionSelector, TokensRepository } from './tokens.repository';

/**
 * Ends the open console sessions `which` selects, each with one `session.ended` audit row, inside
 * the caller's transaction. Its own file so TokenService (revocation ends the token's sessions)
 * and SessionService share it without importing each other.
 */
export async function endSessions(
  manager: EntityManager,
  tokens: TokensRepository,
  audit: AuditService,
  which: SessionSelector,
  reason: string,
  actor?: AuditActor,
): Promise<number> {
  const rows = await tokens.endSessions(manager, which, reason);
  if (rows.length > 0)
    await audit.recordMany(
      rows.map((row) => ({ type: 'session.ended', actor, subject: row.id, data: { tokenId: row.token_id, reason } })),
    );
  return rows.length;
}
