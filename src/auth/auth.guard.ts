import { CanActivate, ExecutionContext, Inject, Injectable, Logger, Optional, Type } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { DomainError, ErrorCode } from '../common/errors';
import { SIGNET_CONFIG, SignetConfig } from '../config/config';
import { PUBLIC_METADATA, ROLES_METADATA } from '../common/access.decorators';
import { ID_TOKEN_AUTHENTICATOR, IdTokenAuthenticator, isIdTokenShaped } from './id-token-authenticator';
import { Principal } from './principal';
import { RateLimiter } from './rate-limiter';
import { Role } from '../common/roles';
import { SessionService } from './session.service';
import { ConnectionTokenMemo, TokenService } from './token.service';

interface RouteAccess {
  controller: object;
  isPublic: true | ((config: SignetConfig) => boolean) | undefined;
  roles: Role[] | undefined;
}

/**
 * The one global guard (APP_GUARD). Order: public routes pass; otherwise 401 without a valid
 * token, 429 over the token's rate, 403 for a role the route does not list. A route that declares
 * neither @Public nor @Roles is refused to everyone (fail closed).
 */
@Injectable()
export class AuthGuard implements CanActivate {
  private readonly logger = new Logger('AuthGuard');
  private readonly warnedUndeclared = new Set<string>();
  private readonly accessByHandler = new WeakMap<object, RouteAccess>();

  constructor(
    private readonly reflector: Reflector,
    private readonly tokens: TokenService,
    private readonly limiter: RateLimiter,
    @Inject(SIGNET_CONFIG) private readonly config: SignetConfig,
    @Optional() @Inject(ID_TOKEN_AUTHENTICATOR) private readonly idTokens?: IdTokenAuthenticator,
    @Optional() private readonly sessions?: SessionService,
  ) {}

  canActivate(context: ExecutionContext): boolean | Promise<boolean> {
    if (context.getType() !== 'http') return true;
    const { isPublic, roles } = this.access(context);
    if (isPublic === true || (typeof isPublic === 'function' && isPublic(this.config))) return true;

    const http = context.switchToHttp();
    const admitted = this.admit(
      http.getRequest<FastifyRequest>(),
      http.getResponse<FastifyReply>(),
      roles,
      () => `${context.getClass().name}.${context.getHandler().name}`,
    );
    return admitted instanceof Promise ? admitted.then(() => true) : true;
  }

  /**
   * Everything canActivate checks on a non-public route, for a request Nest does not route
   * (src/signing/sign-fast-path.ts): 401 without a valid token (with the RFC 6750 challenge), 429
   * over the token's rate, 403 for a role not in `roles` (undefined: refused to everyone). Sets
   * request.signetPrincipal and returns the principal; synchronous on a token-cache hit. A bearer
   * value shaped like a JWS is an OIDC ID token (workload identity); `sgt_` tokens never take that
   * branch (one prefix test). Without an Authorization header, a console session cookie
   * authenticates as its token (same role, grants and rate limit); state-changing methods then need
   * the session's X-CSRF-Token (src/auth/session.service.ts).
   */
  admit(
    request: FastifyRequest,
    reply: FastifyReply,
    roles: Role[] | undefined,
    route: () => string,
  ): Principal | Promise<Principal> {
    let principal: Principal | Promise<Principal>;
    try {
      const token = bearerToken(request.headers.authorization);
      const session = token === undefined ? this.sessions?.secretOf(request) : undefined;
      principal =
        session !== undefined
          ? this.sessions!.authenticate(session, request)
          : token !== undefined && this.idTokens !== undefined && isIdTokenShaped(token)
            ? this.idTokens.authenticate(token, request.ip, connectionMemo(request))
            : this.tokens.authenticate(token, request.ip, connectionMemo(request));
    } catch (error) {
      throw this.challenge(reply, error);
    }
    if (principal instanceof Promise) {
      return principal.then(
        (resolved) => this.authorise(request, resolved, roles, route),
        (error) => Promise.reject(this.challenge(reply, error)),
      );
    }
    return this.authorise(request, principal, roles, route);
  }

  /** The @Roles of a handler (undefined when it declares none), as canActivate reads them. */
  rolesOf(controller: Type, handler: (...args: never[]) => unknown): Role[] | undefined {
    return this.reflector.getAllAndOverride<Role[] | undefined>(ROLES_METADATA, [handler, controller]);
  }

  /** A route's @Public / @Roles, read once per handler (metadata is fixed after bootstrap). */
  private access(context: ExecutionContext): RouteAccess {
    const handler = context.getHandler();
    const controller = context.getClass();
    const cached = this.accessByHandler.get(handler);
    if (cached && cached.controller === controller) return cached;
    const targets = [handler, controller];
    const access: RouteAccess = {
      controller,
      isPublic: this.reflector.getAllAndOverride<RouteAccess['isPublic']>(PUBLIC_METADATA, targets),
      roles: this.rolesOf(controller, handler as (...args: never[]) => unknown),
    };
    this.accessByHandler.set(handler, access);
    return access;
  }

  private authorise(
    request: FastifyRequest,
    principal: Principal,
    roles: Role[] | undefined,
    route: () => string,
  ): Principal {
    const retryAfterSeconds = this.limiter.take(principal.tokenId, this.tokens.rateLimitFor(principal.tokenId));
    if (retryAfterSeconds > 0) {
      throw new DomainError(ErrorCode.RATE_LIMITED, 'too many requests for this token; retry later', {
        retryAfterSeconds,
      });
    }
    if (!roles) {
      const name = route();
      if (!this.warnedUndeclared.has(name)) {
        this.warnedUndeclared.add(name);
        this.logger.error(`${name} declares neither @Roles nor @Public; refusing every caller`);
      }
      throw new DomainError(ErrorCode.FORBIDDEN, 'this route is not open to any role');
    }
    if (!roles.includes(principal.role)) {
      throw new DomainError(ErrorCode.FORBIDDEN, `the ${principal.role} role may not call this route`);
    }
    request.signetPrincipal = principal;
    return principal;
  }

  /** 401s carry the RFC 6750 challenge. */
  private challenge(reply: FastifyReply, error: unknown): unknown {
    if (error instanceof DomainError && error.code === ErrorCode.UNAUTHENTICATED)
      reply.header('www-authenticate', 'Bearer realm="signet"');
    return error;
  }
}

const memos = new WeakMap<object, ConnectionTokenMemo>();

/** The token memo of the request's connection (dropped with the socket). */
function connectionMemo(request: FastifyRequest): ConnectionTokenMemo | undefined {
  const socket = request.raw?.socket as object | undefined;
  if (!socket) return undefined;
  let memo = memos.get(socket);
  if (!memo) {
    memo = { token: '', hash: '' };
    memos.set(socket, memo);
  }
  return memo;
}

function bearerToken(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!match) throw new DomainError(ErrorCode.UNAUTHENTICATED, 'the Authorization header must be "Bearer <token>"');
  return match[1];
}
