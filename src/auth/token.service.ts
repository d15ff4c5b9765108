import { Inject, Injectable, Logger } from '@nestjs/common';
import { createHash, hash as cryptoHash, randomBytes } from 'node:crypto';
import { DataSource, EntityManager } from 'typeorm';
import { AuditService } from '../audit/audit.service';
import { AuditActor } from '../audit/audit.types';
import { DomainError, ErrorCode } from '../common/errors';
import { SIGNET_CONFIG, SignetConfig } from '../config/config';
import { ADVISORY_LOCKS } from '../database/advisory-lock';
import { Principal, TokenPrincipal } from './principal';
import { endSessions } from './session-ending';
import { Role } from '../common/roles';

export const TOKEN_PREFIX = 'sgt_';
/** sgt_ + 32 random bytes, base64url without padding. */
const TOKEN_FORMAT = /^sgt_[A-Za-z0-9_-]{43}$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const CACHE_LIMIT = 10_000;
const LAST_USED_GRANULARITY_MS = 60_000;
/**
 * An admin token counts as usable for the last-admin guard only if it stays valid at least this
 * long: an expiry a minute away locks everyone out as surely as one in the past.
 */
export const LAST_ADMIN_MIN_LIFETIME_MINUTES = 60;

export interface TokenView {
  id: string;
  name: string;
  role: Role;
  keys: string[];
  rateLimitPerSecond: number | null;
  expiresAt: string | null;
  revokedAt: string | null;
  createdAt: string;
  lastUsedAt: string | null;
  state: 'active' | 'expired' | 'revoked';
}

export interface CreateTokenInput {
  name: string;
  role: Role;
  keys?: string[];
  expiresInDays?: number;
  rateLimitPerSecond?: number;
}

export interface UpdateTokenInput {
  /** Replaces the signer's key grants. */
  keys?: string[];
  /** New expiry, counted from now. */
  expiresInDays?: number;
  /** New expiry as a date, or null for "never". */
  expiresAt?: string | null;
  rateLimitPerSecond?: number | null;
}

/**
 * The last bearer token seen on one client connection and its SHA-256, so a keep-alive client
 * sending the same token on every request is hashed once. It lives as long as the connection (the
 * request objects of that connection hold the same header text), never in a shared structure.
 */
export interface ConnectionTokenMemo {
  token: string;
  hash: string;
}

/** What authentication needs of a token row; cached for SIGNET_TOKEN_CACHE_SECONDS. */
interface TokenRecord {
  id: string;
  name: string;
  role: Role;
  keys: string[];
  rateLimitPerSecond: number | null;
  expiresAtMs: number | null;
  revoked: boolean;
}

interface Row {
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

const COLUMNS = 'id, name, role, key_grants, rate_limit_per_second, expires_at, revoked_at, created_at, last_used_at';

/**
 * API tokens: random, shown once, stored as SHA-256; expiring, revocable, with editable grants.
 * Every change is audited inside the change's transaction, so a change whose audit row cannot be
 * written does not happen. Verified tokens are kept in memory for SIGNET_TOKEN_CACHE_SECONDS so
 * the signing hot path does not query the database per request: a revocation is immediate on the
 * replica that made it and reaches the others within that time.
 */
@Injectable()
export class TokenService {
  private readonly logger = new Logger('Tokens');
  private readonly cache = new Map<string, { record: TokenRecord | null; fetchedMs: number }>();
  private readonly inflight = new Map<string, Promise<TokenRecord | null>>();
  private readonly lastUsedWritten = new Map<string, number>();
  private readonly rateLimits = new Map<string, number | null>();

  constructor(
    private readonly dataSource: DataSource,
    private readonly audit: AuditService,
    @Inject(SIGNET_CONFIG) private readonly config: SignetConfig,
  ) {}

  /**
   * The principal for a bearer token, or 401 UNAUTHENTICATED. Synchronous on a cache hit (the
   * common case); a Promise when the database has to be asked.
   */
  authenticate(token: string | undefined, address: string, connection?: ConnectionTokenMemo): Principal | Promise<Principal> {
    if (!token) throw unauthenticated('a bearer token is required');
    let hash: string;
    if (connection !== undefined && connection.token === token) {
      hash = connection.hash;
    } else {
      if (!TOKEN_FORMAT.test(token)) throw unauthenticated('invalid token');
      // One-shot hash: this runs on every authenticated request (but once per keep-alive connection and token).
      hash = cryptoHash('sha256', token, 'hex');
      if (connection !== undefined) {
        connection.token = token;
        connection.hash = hash;
      }
    }
    const cached = this.cache.get(hash);
    if (cached && performance.now() - cached.fetchedMs < this.config.auth.tokenCacheSeconds * 1000) {
      return this.principalFor(cached.record, address);
    }
    return this.lookup(hash).then((record) => this.principalFor(record, address));
  }

  async create(input: CreateTokenInput, actor: AuditActor | undefined, beforeCommit?: (token: string) => Promise<void>): Promise<TokenView & { token: string }> {
    const keys = this.grantsFor(input.role, input.keys);
    const token = TOKEN_PREFIX + randomBytes(32).toString('base64url');
    const expiresAt = input.expiresInDays === undefined ? null : new Date(Date.now() + input.expiresInDays * 86400_000);
    const view = await this.dataSource.transaction(async (manager) => {
      let rows: Row[];
      try {
        rows = await manager.query(
          `INSERT INTO api_tokens (name, role, key_grants, token_hash, expires_at, rate_limit_per_second) VALUES ($1, $2, $3, $4, $5, $6) RETURNING ${COLUMNS}`,
          [input.name, input.role, keys, createHash('sha256').update(token).digest(), expiresAt, input.rateLimitPerSecond ?? null],
        );
      } catch (error) {
        if (driverCode(error) === '23505') throw new DomainError(ErrorCode.ALREADY_EXISTS, `a token named "${input.name}" already exists`);
        throw error;
      }
      const created = toView(rows[0]);
      await this.audit.record({
        type: 'token.created',
        actor,
        subject: created.id,
        data: { name: created.name, role: created.role, keys: created.keys, expiresAt: created.expiresAt, rateLimitPerSecond: created.rateLimitPerSecond },
      });
      await beforeCommit?.(token);
      return created;
    });
    return { ...view, token };
  }

  async list(): Promise<TokenView[]> {
    const rows: Row[] = await this.dataSource.query(`SELECT ${COLUMNS} FROM api_tokens ORDER BY created_at, name`);
    return rows.map(toView);
  }

  async get(id: string): Promise<TokenView> {
    const rows: Row[] = UUID.test(id) ? await this.dataSource.query(`SELECT ${COLUMNS} FROM api_tokens WHERE id = $1`, [id]) : [];
    if (!rows[0]) throw tokenNotFound(id);
    return toView(rows[0]);
  }

  async update(id: string, patch: UpdateTokenInput, actor: AuditActor | undefined): Promise<TokenView> {
    if (patch.expiresInDays !== undefined && patch.expiresAt !== undefined) {
      throw new DomainError(ErrorCode.VALIDATION_ERROR, 'give expiresInDays or expiresAt, not both');
    }
    const changes: Record<string, unknown> = {};
    const view = await this.dataSource.transaction(async (manager) => {
      await this.serialiseTokenChanges(manager);
      const current = await this.lockToken(manager, id);
      if (current.revoked_at) throw new DomainError(ErrorCode.CONFLICT, `token ${id} is revoked; create a new one`);
      if (patch.keys !== undefined) changes.keys = this.grantsFor(current.role, patch.keys);
      if (patch.expiresInDays !== undefined) changes.expiresAt = new Date(Date.now() + patch.expiresInDays * 86400_000).toISOString();
      if (patch.expiresAt !== undefined) {
        if (patch.expiresAt !== null && Number.isNaN(Date.parse(patch.expiresAt))) throw new DomainError(ErrorCode.VALIDATION_ERROR, 'expiresAt must be an ISO 8601 date');
        changes.expiresAt = patch.expiresAt === null ? null : new Date(patch.expiresAt).toISOString();
      }
      if (patch.rateLimitPerSecond !== undefined) changes.rateLimitPerSecond = patch.rateLimitPerSecond;
      if (Object.keys(changes).length === 0) throw new DomainError(ErrorCode.VALIDATION_ERROR, 'nothing to change: give keys, expiresInDays, expiresAt or rateLimitPerSecond');
      const rows: [Row[], number] = await manager.query(
        `UPDATE api_tokens SET
           key_grants = CASE WHEN $2 THEN $3::text[] ELSE key_grants END,
           expires_at = CASE WHEN $4 THEN $5::timestamptz ELSE expires_at END,
           rate_limit_per_second = CASE WHEN $6 THEN $7::integer ELSE rate_limit_per_second END
         WHERE id = $1 RETURNING ${COLUMNS}`,
        [id, 'keys' in changes, changes.keys ?? null, 'expiresAt' in changes, changes.expiresAt ?? null, 'rateLimitPerSecond' in changes, changes.rateLimitPerSecond ?? null],
      );
      const updated = toView(rows[0][0]);
      const shortened = 'expiresAt' in changes && changes.expiresAt !== null && (current.expires_at === null || Date.parse(changes.expiresAt as string) < current.expires_at.getTime());
      if (current.role === 'admin' && shortened) await this.assertAnAdminRemains(manager, 'this expiry would leave no usable admin token');
      await this.audit.record({ type: 'token.updated', actor, subject: id, data: { name: updated.name, changes } });
      return updated;
    });
    this.forget(id);
    return view;
  }

  /** Revokes a token (idempotent). The last usable admin token cannot be revoked. */
  async revoke(id: string, actor: AuditActor | undefined): Promise<TokenView> {
    const view = await this.dataSource.transaction(async (manager) => {
      await this.serialiseTokenChanges(manager);
      const current = await this.lockToken(manager, id);
      if (current.revoked_at) return toView(current);
      const rows: [Row[], number] = await manager.query(`UPDATE api_tokens SET revoked_at = now() WHERE id = $1 RETURNING ${COLUMNS}`, [id]);
      if (current.role === 'admin') await this.assertAnAdminRemains(manager, 'this is the last usable admin token; create another admin token before revoking it');
      const revoked = toView(rows[0][0]);
      await this.audit.record({ type: 'token.revoked', actor, subject: id, data: { name: revoked.name, role: revoked.role } });
      // Sessions re-read their token on every request anyway; this records that they ended.
      await endSessions(manager, this.audit, 'token_id = $1', [id], 'token-revoked', actor);
      return revoked;
    });
    this.forget(id);
    return view;
  }

  /**
   * Changes to existing tokens take one transaction-scoped lock, on every replica's database
   * connection alike: two changes that each leave another admin token (revoke A here, shorten B's
   * expiry there) cannot both pass the last-admin check on snapshots that do not see each other.
   * Token changes are rare; signing never takes it.
   */
  private async serialiseTokenChanges(manager: EntityManager): Promise<void> {
    await manager.query('SELECT pg_advisory_xact_lock($1::bigint)', [ADVISORY_LOCKS.tokenChanges.toString()]);
  }

  /**
   * After a change to an admin token, inside its transaction: at least one admin token must remain
   * unrevoked and valid for LAST_ADMIN_MIN_LIFETIME_MINUTES more, else the change is refused (409)
   * and rolled back. Expiry in the past, a near expiry and revocation all go through here.
   */
  private async assertAnAdminRemains(manager: EntityManager, message: string): Promise<void> {
    const [{ usable }]: Array<{ usable: number }> = await manager.query(
      `SELECT count(*)::int AS usable FROM api_tokens
        WHERE role = 'admin' AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now() + make_interval(mins => $1))`,
      [LAST_ADMIN_MIN_LIFETIME_MINUTES],
    );
    if (usable === 0) {
      throw new DomainError(ErrorCode.CONFLICT, `${message} (an admin token must remain valid for at least ${LAST_ADMIN_MIN_LIFETIME_MINUTES} minutes)`, {
        reason: 'last-admin-token',
        minRemainingMinutes: LAST_ADMIN_MIN_LIFETIME_MINUTES,
      });
    }
  }

  private async lockToken(manager: EntityManager, id: string): Promise<Row> {
    const rows: Row[] = UUID.test(id) ? await manager.query(`SELECT ${COLUMNS} FROM api_tokens WHERE id = $1 FOR UPDATE`, [id]) : [];
    if (!rows[0]) throw tokenNotFound(id);
    return rows[0];
  }

  /** Key grants mean something only for signers; admins use every key, other roles none. */
  private grantsFor(role: Role, keys: string[] | undefined): string[] {
    if (keys === undefined || keys.length === 0) return [];
    if (role !== 'signer') throw new DomainError(ErrorCode.VALIDATION_ERROR, `keys: grants apply to signer tokens only (this one is ${role})`);
    return [...new Set(keys)].sort();
  }

  /** The token's own rate limit, when it has one (known once the token was authenticated here). */
  rateLimitFor(tokenId: string): number | null {
    return this.rateLimits.get(tokenId) ?? null;
  }

  private principalFor(record: TokenRecord | null, address: string): Principal {
    if (!record) throw unauthenticated('invalid token');
    if (record.revoked) throw unauthenticated('the token was revoked');
    if (record.expiresAtMs !== null && record.expiresAtMs <= Date.now()) throw unauthenticated('the token has expired');
    return new TokenPrincipal(record.id, record.name, record.role, record.keys, address);
  }

  private lookup(hash: string): Promise<TokenRecord | null> {
    // Concurrent first requests with one token share one query.
    let pending = this.inflight.get(hash);
    if (!pending) {
      pending = this.fetch(hash).finally(() => this.inflight.delete(hash));
      this.inflight.set(hash, pending);
    }
    return pending;
  }

  private async fetch(hash: string): Promise<TokenRecord | null> {
    const rows: Row[] = await this.dataSource.query(`SELECT ${COLUMNS} FROM api_tokens WHERE token_hash = $1`, [Buffer.from(hash, 'hex')]);
    const row = rows[0];
    const record: TokenRecord | null = row
      ? {
          id: row.id,
          name: row.name,
          role: row.role,
          keys: row.key_grants,
          rateLimitPerSecond: row.rate_limit_per_second,
          expiresAtMs: row.expires_at?.getTime() ?? null,
          revoked: row.revoked_at !== null,
        }
      : null;
    if (this.config.auth.tokenCacheSeconds > 0) {
      if (this.cache.size >= CACHE_LIMIT) this.cache.delete(this.cache.keys().next().value as string);
      this.cache.set(hash, { record, fetchedMs: performance.now() });
    }
    if (record) this.rateLimits.set(record.id, record.rateLimitPerSecond);
    if (record && !record.revoked) this.touch(record.id, row!.last_used_at);
    return record;
  }

  /** Records use coarsely and off the request path; a failure here must not fail the request. */
  private touch(id: string, lastUsedAt: Date | null): void {
    const now = Date.now();
    const written = Math.max(lastUsedAt?.getTime() ?? 0, this.lastUsedWritten.get(id) ?? 0);
    if (now - written < LAST_USED_GRANULARITY_MS) return;
    this.lastUsedWritten.set(id, now);
    this.dataSource.query('UPDATE api_tokens SET last_used_at = now() WHERE id = $1', [id]).catch((error: Error) => {
      this.logger.debug(`could not record token use: ${error.message}`);
    });
  }

  /** Drops a token from this replica's cache so a change takes effect here at once. */
  private forget(id: string): void {
    for (const [hash, entry] of this.cache) if (entry.record?.id === id) this.cache.delete(hash);
  }
}

function toView(row: Row): TokenView {
  const expired = row.expires_at !== null && row.expires_at.getTime() <= Date.now();
  return {
    id: row.id,
    name: row.name,
    role: row.role,
    keys: row.key_grants,
    rateLimitPerSecond: row.rate_limit_per_second,
    expiresAt: row.expires_at?.toISOString() ?? null,
    revokedAt: row.revoked_at?.toISOString() ?? null,
    createdAt: row.created_at.toISOString(),
    lastUsedAt: row.last_used_at?.toISOString() ?? null,
    state: row.revoked_at ? 'revoked' : expired ? 'expired' : 'active',
  };
}

function unauthenticated(message: string): DomainError {
  return new DomainError(ErrorCode.UNAUTHENTICATED, message);
}

function tokenNotFound(id: string): DomainError {
  return new DomainError(ErrorCode.NOT_FOUND, `no token with id ${id}`);
}

function driverCode(error: unknown): string | undefined {
  const e = error as { code?: string; driverError?: { code?: string } };
  return e.driverError?.code ?? e.code;
}
