import { Injectable } from '@nestjs/common';
import { DataSource, EntityManager } from 'typeorm';
import { Role } from '../common/roles';
import { ADVISORY_LOCKS } from '../database/advisory-lock';

/** An API token row as the services read it (never its hash). */
export interface TokenRow {
  id: string;
  name: string;
  role: Role;
  key_grants: string[];
  rate_limit_per_second: number | null;
  expires_at: Date | null;
  revoked_at: Date | null;
  created_at: Date;
  last_used_at: Date | null;
}

/** A live console session joined with its token, as one request's check reads it. */
export interface LiveSessionRow {
  id: string;
  expires_at: Date;
  last_seen_at: Date;
  token_id: string;
  name: string;
  role: Role;
  key_grants: string[];
}

/** Which sessions to end: one session, or every session of a token. */
export type SessionSelector = { sessionId: string } | { tokenId: string };

const COLUMNS = 'id, name, role, key_grants, rate_limit_per_second, expires_at, revoked_at, created_at, last_used_at';

/**
 * API tokens and the console sessions opened with them (a session lives only as long as its
 * token). Changes run in the caller's transaction (`manager`), which also writes their audit rows.
 */
@Injectable()
export class TokensRepository {
  constructor(private readonly dataSource: DataSource) {}

  // Tokens

  /** Inserts a token (its hash only); a duplicate name fails with the driver's unique violation (23505). */
  async insert(
    manager: EntityManager,
    token: {
      name: string;
      role: Role;
      keyGrants: string[];
      hash: Buffer;
      expiresAt: Date | null;
      rateLimitPerSecond: number | null;
    },
  ): Promise<TokenRow> {
    const rows: TokenRow[] = await manager.query(
      `INSERT INTO api_tokens (name, role, key_grants, token_hash, expires_at, rate_limit_per_second) VALUES ($1, $2, $3, $4, $5, $6) RETURNING ${COLUMNS}`,
      [token.name, token.role, token.keyGrants, token.hash, token.expiresAt, token.rateLimitPerSecond],
    );
    return rows[0];
  }

  all(): Promise<TokenRow[]> {
    return this.dataSource.query(`SELECT ${COLUMNS} FROM api_tokens ORDER BY created_at, name`);
  }

  async byId(id: string): Promise<TokenRow | undefined> {
    const rows: TokenRow[] = await this.dataSource.query(`SELECT ${COLUMNS} FROM api_tokens WHERE id = $1`, [id]);
    return rows[0];
  }

  /** The token whose SHA-256 is `hash` (authentication's one query on a cache miss). */
  async byHash(hash: Buffer): Promise<TokenRow | undefined> {
    const rows: TokenRow[] = await this.dataSource.query(`SELECT ${COLUMNS} FROM api_tokens WHERE token_hash = $1`, [
      hash,
    ]);
    return rows[0];
  }

  /**
   * The lock every change to an existing token takes first: one transaction-scoped advisory lock,
   * the same on every replica's connection, held until the transaction ends. Two changes that each
   * leave another admin token (revoke A here, shorten B's expiry there) cannot both pass the
   * last-admin check on snapshots that do not see each other. Token changes are rare; signing
   * never takes it.
   */
  async lockTokenChanges(manager: EntityManager): Promise<void> {
    await manager.query('SELECT pg_advisory_xact_lock($1::bigint)', [ADVISORY_LOCKS.tokenChanges.toString()]);
  }

  /** The token, locked (FOR UPDATE) until the caller's transaction ends. */
  async lockToken(manager: EntityManager, id: string): Promise<TokenRow | undefined> {
    const rows: TokenRow[] = await manager.query(`SELECT ${COLUMNS} FROM api_tokens WHERE id = $1 FOR UPDATE`, [id]);
    return rows[0];
  }

  /** Sets the fields `changes` has (an absent key keeps its column) and returns the row. */
  async update(
    manager: EntityManager,
    id: string,
    changes: { keys?: unknown; expiresAt?: unknown; rateLimitPerSecond?: unknown },
  ): Promise<TokenRow> {
    const rows: [TokenRow[], number] = await manager.query(
      `UPDATE api_tokens SET
         key_grants = CASE WHEN $2 THEN $3::text[] ELSE key_grants END,
         expires_at = CASE WHEN $4 THEN $5::timestamptz ELSE expires_at END,
         rate_limit_per_second = CASE WHEN $6 THEN $7::integer ELSE rate_limit_per_second END
       WHERE id = $1 RETURNING ${COLUMNS}`,
      [
        id,
        'keys' in changes,
        changes.keys ?? null,
        'expiresAt' in changes,
        changes.expiresAt ?? null,
        'rateLimitPerSecond' in changes,
        changes.rateLimitPerSecond ?? null,
      ],
    );
    return rows[0][0];
  }

  async revoke(manager: EntityManager, id: string): Promise<TokenRow> {
    const rows: [TokenRow[], number] = await manager.query(
      `UPDATE api_tokens SET revoked_at = now() WHERE id = $1 RETURNING ${COLUMNS}`,
      [id],
    );
    return rows[0][0];
  }

  /** Admin tokens unrevoked and valid for at least `minutes` more, as the caller's transaction sees them. */
  async usableAdminCount(manager: EntityManager, minutes: number): Promise<number> {
    const [{ usable }]: Array<{ usable: number }> = await manager.query(
      `SELECT count(*)::int AS usable FROM api_tokens
        WHERE role = 'admin' AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now() + make_interval(mins => $1))`,
      [minutes],
    );
    return usable;
  }

  async recordUse(id: string): Promise<void> {
    await this.dataSource.query('UPDATE api_tokens SET last_used_at = now() WHERE id = $1', [id]);
  }

  // Console sessions

  /**
   * Opens a session for the token if it is still usable (read again here, not from a cache), ending
   * at the absolute timeout or the token's expiry, whichever comes first; undefined if not usable.
   */
  async openSession(
    manager: EntityManager,
    session: { hash: Buffer; tokenId: string; absoluteTimeoutSeconds: number; address: string },
  ): Promise<{ id: string; expires_at: Date; last_seen_at: Date } | undefined> {
    const rows: Array<{ id: string; expires_at: Date; last_seen_at: Date }> = await manager.query(
      `INSERT INTO console_sessions (session_hash, token_id, expires_at, address)
       SELECT $1, t.id, LEAST(now() + make_interval(secs => $3), COALESCE(t.expires_at, 'infinity')), $4
         FROM api_tokens t WHERE t.id = $2 AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > now())
       RETURNING id, expires_at, last_seen_at`,
      [session.hash, session.tokenId, session.absoluteTimeoutSeconds, session.address],
    );
    return rows[0];
  }

  /**
   * The live session with this hash and its token, in one statement that checks the timeouts and
   * the token and (when `use`) moves the idle deadline; undefined when it is not live.
   */
  async touchLiveSession(hash: Buffer, idleTimeoutSeconds: number, use: boolean): Promise<LiveSessionRow | undefined> {
    const [rows]: [LiveSessionRow[], number] = await this.dataSource.query(
      `UPDATE console_sessions s SET last_seen_at = CASE WHEN $3 THEN now() ELSE s.last_seen_at END
         FROM api_tokens t
        WHERE s.session_hash = $1 AND t.id = s.token_id AND s.ended_at IS NULL
          AND s.expires_at > now() AND s.last_seen_at > now() - make_interval(secs => $2)
          AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > now())
       RETURNING s.id, s.expires_at, s.last_seen_at, t.id AS token_id, t.name, t.role, t.key_grants`,
      [hash, idleTimeoutSeconds, use],
    );
    return rows[0];
  }

  /** Whether the session is usable (timeouts, its token), without counting as use. */
  async isSessionOpen(sessionId: string, idleTimeoutSeconds: number): Promise<boolean> {
    const rows: unknown[] = await this.dataSource.query(
      `SELECT 1 FROM console_sessions s JOIN api_tokens t ON t.id = s.token_id
        WHERE s.id = $1 AND s.ended_at IS NULL AND s.expires_at > now() AND s.last_seen_at > now() - make_interval(secs => $2)
          AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > now())`,
      [sessionId, idleTimeoutSeconds],
    );
    return rows.length > 0;
  }

  /**
   * The session with this hash, locked (FOR UPDATE) until the caller's transaction ends, with
   * whether it has ended and why it is (or would be) dead.
   */
  async lockSessionWithEndReason(
    manager: EntityManager,
    hash: Buffer,
  ): Promise<{ id: string; reason: string; ended: boolean } | undefined> {
    const rows: Array<{ id: string; reason: string; ended: boolean }> = await manager.query(
      `SELECT s.id, s.ended_at IS NOT NULL AS ended,
              CASE WHEN s.ended_at IS NOT NULL THEN s.end_reason
                   WHEN t.revoked_at IS NOT NULL THEN 'token-revoked'
                   WHEN t.expires_at IS NOT NULL AND t.expires_at <= now() THEN 'token-expired'
                   WHEN s.expires_at <= now() THEN 'absolute-timeout'
                   ELSE 'idle-timeout' END AS reason
         FROM console_sessions s JOIN api_tokens t ON t.id = s.token_id
        WHERE s.session_hash = $1
        FOR UPDATE OF s`,
      [hash],
    );
    return rows[0];
  }

  /** Ends the open sessions `which` selects with `reason`; returns the ended ones. */
  async endSessions(
    manager: EntityManager,
    which: SessionSelector,
    reason: string,
  ): Promise<Array<{ id: string; token_id: string }>> {
    const [column, value] = 'sessionId' in which ? ['id', which.sessionId] : ['token_id', which.tokenId];
    const [rows]: [Array<{ id: string; token_id: string }>, number] = await manager.query(
      `UPDATE console_sessions SET ended_at = now(), end_reason = $2 WHERE ${column} = $1 AND ended_at IS NULL RETURNING id, token_id`,
      [value, reason],
    );
    return rows;
  }
}
