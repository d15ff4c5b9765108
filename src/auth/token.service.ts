import { Inject, Injectable, Logger } from '@nestjs/common';
import { createHash, hash as cryptoHash, randomBytes } from 'node:crypto';
import { DataSource, EntityManager } from 'typeorm';
import { AuditService } from '../audit/audit.service';
import { AuditActor } from '../audit/audit.types';
import { DomainError, ErrorCode } from '../common/errors';
import { SIGNET_CONFIG, SignetConfig } from '../config/config';
import { Principal, TokenPrincipal } from './principal';
import { endSessions } from './session-ending';
import { Role } from '../common/roles';
import { TokenRow, TokensRepository } from './tokens.repository';

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
    private readonly tokens: TokensRepository,
    private readonly audit: AuditService,
    @Inject(SIGNET_CONFIG) private readonly config: SignetConfig,
  ) {}

  /**
   * The principal for a bearer token, or 401 UNAUTHENTICATED. Synchronous on a cache hit (the
   * common case); a Promise when the database has to be asked.
   */
  authenticate(
    token: string | undefined,
    address: string,
    connection?: ConnectionTokenMemo,
  ): Principal | Promise<Principal> {
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

  async create(
    input: CreateTokenInput,
    actor: AuditActor | undefined,
    beforeCommit?: (token: string) => Promise<void>,
  ): Promise<TokenView & { token: string }> {
    const keys = this.grantsFor(input.role, input.keys);
    const token = TOKEN_PREFIX + randomBytes(32).toString('base64url');
    const expiresAt = input.expiresInDays === undefined ? null : new Date(Date.now() + input.expiresInDays * 86400_000);
    const view = await this.dataSource.transaction(async (manager) => {
      let row: TokenRow;
      try {
        row = await this.tokens.insert(manager, {
          name: input.name,
          role: input.role,
          keyGrants: keys,
          hash: createHash('sha256').update(token).digest(),
          expiresAt,
          rateLimitPerSecond: input.rateLimitPerSecond ?? null,
        });
      } catch (error) {
        if (driverCode(error) === '23505')
          throw new DomainError(ErrorCode.ALREADY_EXISTS, `a token named "${input.name}" already exists`);
        throw error;
      }
      const created = toView(row);
      await this.audit.record({
        type: 'token.created',
        actor,
        subject: created.id,
        data: {
          name: created.name,
          role: created.role,
          keys: created.keys,
          expiresAt: created.expiresAt,
          rateLimitPerSecond: created.rateLimitPerSecond,
        },
      });
      await beforeCommit?.(token);
      return created;
    });
    return { ...view, token };
  }

  async list(): Promise<TokenView[]> {
    return (await this.tokens.all()).map(toView);
  }

  async get(id: string): Promise<TokenView> {
    const row = UUID.test(id) ? await this.tokens.byId(id) : undefined;
    if (!row) throw tokenNotFound(id);
    return toView(row);
  }

  async update(id: string, patch: UpdateTokenInput, actor: AuditActor | undefined): Promise<TokenView> {
    if (patch.expiresInDays !== undefined && patch.expiresAt !== undefined) {
      throw new DomainError(ErrorCode.VALIDATION_ERROR, 'give expiresInDays or expiresAt, not both');
    }
    const changes: Record<string, unknown> = {};
    const view = await this.dataSource.transaction(async (manager) => {
      await this.tokens.lockTokenChanges(manager);
      const current = await this.lockToken(manager, id);
      if (current.revoked_at) throw new DomainError(ErrorCode.CONFLICT, `token ${id} is revoked; create a new one`);
      if (patch.keys !== undefined) changes.keys = this.grantsFor(current.role, patch.keys);
      if (patch.expiresInDays !== undefined)
        changes.expiresAt = new Date(Date.now() + patch.expiresInDays * 86400_000).toISOString();
      if (patch.expiresAt !== undefined) {
        if (patch.expiresAt !== null && Number.isNaN(Date.parse(patch.expiresAt)))
          throw new DomainError(ErrorCode.VALIDATION_ERROR, 'expiresAt must be an ISO 8601 date');
        changes.expiresAt = patch.expiresAt === null ? null : new Date(patch.expiresAt).toISOString();
      }
      if (patch.rateLimitPerSecond !== undefined) changes.rateLimitPerSecond = patch.rateLimitPerSecond;
      if (Object.keys(changes).length === 0)
        throw new DomainError(
          ErrorCode.VALIDATION_ERROR,
          'nothing to change: give keys, expiresInDays, expiresAt or rateLimitPerSecond',
        );
      const updated = toView(await this.tokens.update(manager, id, changes));
      const shortened =
        'expiresAt' in changes &&
        changes.expiresAt !== null &&
        (current.expires_at === null || Date.parse(changes.expiresAt as string) < current.expires_at.getTime());
      if (current.role === 'admin' && shortened)
        await this.assertAnAdminRemains(manager, 'this expiry would leave no usable admin token');
      await this.audit.record({ type: 'token.updated', actor, subject: id, data: { name: updated.name, changes } });
      return updated;
    });
    this.forget(id);
    return view;
  }

  /** Revokes a token (idempotent). The last usable admin token cannot be revoked. */
  async revoke(id: string, actor: AuditActor | undefined): Promise<TokenView> {
    const view = await this.dataSource.transaction(async (manager) => {
      await this.tokens.lockTokenChanges(manager);
      const current = await this.lockToken(manager, id);
      if (current.revoked_at) return toView(current);
      const revoked = toView(await this.tokens.revoke(manager, id));
      if (current.role === 'admin')
        await this.assertAnAdminRemains(
          manager,
          'this is the last usable admin token; create another admin token before revoking it',
        );
      await this.audit.record({
        type: 'token.revoked',
        actor,
        subject: id,
        data: { name: revoked.name, role: revoked.role },
      });
      // Sessions re-read their token on every request anyway; this records that they ended.
      await endSessions(manager, this.tokens, this.audit, { tokenId: id }, 'token-revoked', actor);
      return revoked;
    });
    this.forget(id);
    return view;
  }

  /**
   * After a change to an admin token, inside its transaction: at least one admin token must remain
   * unrevoked and valid for LAST_ADMIN_MIN_LIFETIME_MINUTES more, else the change is refused (409)
   * and rolled back. Expiry in the past, a near expiry and revocation all go through here.
   */
  private async assertAnAdminRemains(manager: EntityManager, message: string): Promise<void> {
    if ((await this.tokens.usableAdminCount(manager, LAST_ADMIN_MIN_LIFETIME_MINUTES)) === 0) {
      throw new DomainError(
        ErrorCode.CONFLICT,
        `${message} (an admin token must remain valid for at least ${LAST_ADMIN_MIN_LIFETIME_MINUTES} minutes)`,
        {
          reason: 'last-admin-token',
          minRemainingMinutes: LAST_ADMIN_MIN_LIFETIME_MINUTES,
        },
      );
    }
  }

  private async lockToken(manager: EntityManager, id: string): Promise<TokenRow> {
    const row = UUID.test(id) ? await this.tokens.lockToken(manager, id) : undefined;
    if (!row) throw tokenNotFound(id);
    return row;
  }

  /** Key grants mean something only for signers; admins use every key, other roles none. */
  private grantsFor(role: Role, keys: string[] | undefined): string[] {
    if (keys === undefined || keys.length === 0) return [];
    if (role !== 'signer')
      throw new DomainError(
        ErrorCode.VALIDATION_ERROR,
        `keys: grants apply to signer tokens only (this one is ${role})`,
      );
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
    const row = await this.tokens.byHash(Buffer.from(hash, 'hex'));
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
    this.tokens.recordUse(id).catch((error: Error) => {
      this.logger.debug(`could not record token use: ${error.message}`);
    });
  }

  /** Drops a token from this replica's cache so a change takes effect here at once. */
  private forget(id: string): void {
    for (const [hash, entry] of this.cache) if (entry.record?.id === id) this.cache.delete(hash);
  }
}

function toView(row: TokenRow): TokenView {
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
