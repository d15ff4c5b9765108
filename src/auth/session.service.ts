import { Inject, Injectable } from '@nestjs/common';
import { hash as cryptoHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { DataSource } from 'typeorm';
import { AuditService } from '../audit/audit.service';
import { DomainError, ErrorCode } from '../common/errors';
import { SIGNET_CONFIG, SignetConfig } from '../config/config';
import { ClientRateLimiter } from '../observability/client-rate-limiter';
import { endSessions } from './session-ending';
import { Principal, TokenPrincipal } from './principal';
import { Role } from '../common/roles';
import { TokenService } from './token.service';
import { TokensRepository } from './tokens.repository';

/** Cookie names: under TLS the `__Host-` prefix makes browsers refuse it without Secure, with a Domain, or off Path=/. */
export const SESSION_COOKIE = 'signet_session';
export const SESSION_COOKIE_TLS = '__Host-signet_session';
export const CSRF_HEADER = 'x-csrf-token';
/** The console is for the people who read and act on the security state; signers are pipelines. */
export const CONSOLE_ROLES: readonly Role[] = ['admin', 'security-officer', 'auditor'];
/** 32 random bytes, base64url without padding. */
const SESSION_SECRET_FORMAT = /^[A-Za-z0-9_-]{43}$/;
const SAFE_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS']);

/** What POST /v1/sessions and GET /v1/sessions/current answer. */
export interface SessionView {
  role: Role;
  tokenName: string;
  /** Send it as X-CSRF-Token on every POST, PUT, PATCH and DELETE made with the cookie. */
  csrfToken: string;
  /** Absolute end (sign-in + SIGNET_SESSION_ABSOLUTE_TIMEOUT_SECONDS, never after the token's expiry). */
  expiresAt: string;
  /** End if unused until then; every authenticated request moves it. */
  idleExpiresAt: string;
}

/** The console's live fleet stream (GET /v1/distribution/events): its reconnects do not count as use. */
const EVENT_STREAM_PATH = '/v1/distribution/events';

/** The caller of a request authenticated by a session cookie: exactly its token's role and grants. */
export class SessionPrincipal extends TokenPrincipal {
  constructor(
    tokenId: string,
    tokenName: string,
    role: Role,
    keys: readonly string[],
    address: string,
    readonly sessionId: string,
    readonly view: SessionView,
  ) {
    super(tokenId, tokenName, role, keys, address);
  }
}

/**
 * Console sessions: an API token exchanged once for an HttpOnly cookie holding a random secret.
 * PostgreSQL keeps only its SHA-256, and every request re-reads the session joined with its token
 * (no cache), so a revoked or expired token ends its sessions on every replica at once. The CSRF
 * token is derived from the secret, so it is stored nowhere and a page that lost it (a reload)
 * gets it again from GET /v1/sessions/current.
 */
@Injectable()
export class SessionService {
  constructor(
    private readonly dataSource: DataSource,
    private readonly repository: TokensRepository,
    private readonly audit: AuditService,
    private readonly tokens: TokenService,
    private readonly limiter: ClientRateLimiter,
    @Inject(SIGNET_CONFIG) private readonly config: SignetConfig,
  ) {}

  /**
   * Exchanges an API token for a session: 401 for a bad token (as a bearer request would get), 403
   * for a signer token, 429 past SIGNET_SESSION_SIGNINS_PER_MINUTE attempts from one address.
   */
  async create(token: string, request: FastifyRequest): Promise<{ secret: string; view: SessionView }> {
    const perMinute = this.config.session.signInsPerMinute;
    const retryAfterSeconds = this.limiter.take(`signin|${request.ip}`, undefined, {
      perSecond: perMinute / 60,
      burst: perMinute,
    });
    if (retryAfterSeconds > 0)
      throw new DomainError(ErrorCode.RATE_LIMITED, 'too many sign-in attempts from this address; retry later', {
        retryAfterSeconds,
      });
    const principal = await this.tokens.authenticate(token, request.ip);
    if (!CONSOLE_ROLES.includes(principal.role)) {
      throw new DomainError(
        ErrorCode.FORBIDDEN,
        `the console is for ${CONSOLE_ROLES.join(', ')} tokens; a ${principal.role} token gets no session`,
      );
    }
    const secret = randomBytes(32).toString('base64url');
    const view = await this.dataSource.transaction(async (manager) => {
      // The token is read again here (not from the token cache): a token revoked a moment ago on another replica gets no session.
      const session = await this.repository.openSession(manager, {
        hash: secretHash(secret),
        tokenId: principal.tokenId,
        absoluteTimeoutSeconds: this.config.session.absoluteTimeoutSeconds,
        address: request.ip,
      });
      if (!session) throw new DomainError(ErrorCode.UNAUTHENTICATED, 'invalid token');
      const created = this.viewOf(principal.role, principal.tokenName, secret, session);
      await this.audit.record({
        type: 'session.created',
        actor: principal.auditActor,
        subject: session.id,
        data: {
          tokenId: principal.tokenId,
          tokenName: principal.tokenName,
          role: principal.role,
          expiresAt: created.expiresAt,
        },
      });
      return created;
    });
    return { secret, view };
  }

  /** The session secret the request's cookie carries (only the `__Host-` cookie over HTTPS), if any. */
  secretOf(request: FastifyRequest): string | undefined {
    const header = request.headers.cookie;
    if (!header) return undefined;
    const name = isHttps(request) ? SESSION_COOKIE_TLS : SESSION_COOKIE;
    for (const part of header.split(';')) {
      const at = part.indexOf('=');
      if (at > 0 && part.slice(0, at).trim() === name) return part.slice(at + 1).trim();
    }
    return undefined;
  }

  /**
   * The principal of a cookie-authenticated request. A state-changing method needs X-CSRF-Token
   * equal to the session's (403 CSRF_TOKEN_INVALID, checked before the database is asked, so a
   * forged request does not even keep the session alive). Then one statement checks the session,
   * its timeouts and its token, and moves the idle deadline; a session found dead is ended and
   * audited with the reason, and the caller gets 401.
   */
  async authenticate(secret: string, request: FastifyRequest): Promise<Principal> {
    if (!SESSION_SECRET_FORMAT.test(secret)) throw unauthenticated('invalid session');
    // SameSite=Strict is per site, not per origin: a page on a sibling subdomain still gets the
    // cookie sent, reads included (an NDJSON audit read, say). Browsers say where a request came
    // from in Sec-Fetch-Site; the console's own calls are same-origin, a typed URL is none.
    const site = request.headers['sec-fetch-site'];
    if (site !== undefined && site !== 'same-origin' && site !== 'none') {
      throw new DomainError(
        ErrorCode.CSRF_TOKEN_INVALID,
        `the session cookie is accepted only on same-origin requests (Sec-Fetch-Site: ${String(site).slice(0, 20)})`,
      );
    }
    if (!SAFE_METHODS.has(request.method) && !csrfMatches(request.headers[CSRF_HEADER], secret)) {
      throw new DomainError(
        ErrorCode.CSRF_TOKEN_INVALID,
        `a request made with the session cookie must carry the session's CSRF token in ${CSRF_HEADER}`,
      );
    }
    const hash = secretHash(secret);
    // An event stream (re)connecting is the page keeping itself live, not someone using it: it
    // must not hold an unattended console open past the idle timeout.
    const use = !(request.method === 'GET' && request.url.split('?', 1)[0] === EVENT_STREAM_PATH);
    const row = await this.repository.touchLiveSession(hash, this.config.session.idleTimeoutSeconds, use);
    if (!row) throw unauthenticated(await this.endDead(hash));
    if (!CONSOLE_ROLES.includes(row.role)) throw unauthenticated('invalid session');
    const view = this.viewOf(row.role, row.name, secret, row);
    return new SessionPrincipal(row.token_id, row.name, row.role, row.key_grants, request.ip, row.id, view);
  }

  /** Whether the session is still usable (timeouts, its token), without counting as use: for long-lived streams. */
  isOpen(sessionId: string): Promise<boolean> {
    return this.repository.isSessionOpen(sessionId, this.config.session.idleTimeoutSeconds);
  }

  /** Signs out: the session ends at once everywhere. */
  async end(principal: SessionPrincipal): Promise<void> {
    await this.dataSource.transaction(async (manager) => {
      await endSessions(
        manager,
        this.repository,
        this.audit,
        { sessionId: principal.sessionId },
        'signed-out',
        principal.auditActor,
      );
    });
  }

  /** Why a session the live check refused is dead; ends it (once, audited) when it still looked open. */
  private async endDead(hash: Buffer): Promise<string> {
    return this.dataSource.transaction(async (manager) => {
      const dead = await this.repository.lockSessionWithEndReason(manager, hash);
      if (!dead) return 'invalid session';
      // Already ended (signed out, its token revoked, or a timeout seen before): say why, again.
      if (dead.ended) return `the session ended (${dead.reason})`;
      await endSessions(manager, this.repository, this.audit, { sessionId: dead.id }, dead.reason);
      return `the session ended (${dead.reason})`;
    });
  }

  private viewOf(
    role: Role,
    tokenName: string,
    secret: string,
    row: { expires_at: Date; last_seen_at: Date },
  ): SessionView {
    const idleEnd = row.last_seen_at.getTime() + this.config.session.idleTimeoutSeconds * 1000;
    return {
      role,
      tokenName,
      csrfToken: csrfTokenFor(secret),
      expiresAt: row.expires_at.toISOString(),
      idleExpiresAt: new Date(Math.min(idleEnd, row.expires_at.getTime())).toISOString(),
    };
  }
}

/** The Set-Cookie value for a new session (HttpOnly, SameSite=Strict, Path=/; Secure and `__Host-` over HTTPS). */
export function sessionCookie(request: FastifyRequest, secret: string): string {
  const https = isHttps(request);
  return `${https ? SESSION_COOKIE_TLS : SESSION_COOKIE}=${secret}; Path=/; HttpOnly; SameSite=Strict${https ? '; Secure' : ''}`;
}

/** The Set-Cookie value that makes the browser drop the session cookie. */
export function clearedSessionCookie(request: FastifyRequest): string {
  const https = isHttps(request);
  return `${https ? SESSION_COOKIE_TLS : SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0${https ? '; Secure' : ''}`;
}

/** TLS on this listener, or a trusted proxy (SIGNET_TRUST_PROXY) saying the client used https. */
function isHttps(request: FastifyRequest): boolean {
  return request.protocol === 'https';
}

function secretHash(secret: string): Buffer {
  return cryptoHash('sha256', secret, 'buffer');
}

/** Derived, domain-separated from the stored hash: knowing it tells nothing about the secret. */
function csrfTokenFor(secret: string): string {
  return cryptoHash('sha256', `signet-csrf\0${secret}`, 'base64url');
}

function csrfMatches(header: string | string[] | undefined, secret: string): boolean {
  if (typeof header !== 'string' || header.length === 0 || header.length > 100) return false;
  // Equal-length digests: the comparison takes the same time whatever the header holds.
  return timingSafeEqual(cryptoHash('sha256', header, 'buffer'), cryptoHash('sha256', csrfTokenFor(secret), 'buffer'));
}

function unauthenticated(message: string): DomainError {
  return new DomainError(ErrorCode.UNAUTHENTICATED, message);
}
