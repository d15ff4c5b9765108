import { Body, Controller, Delete, Get, HttpCode, Post, Req, Res } from '@nestjs/common';
import { ApiCookieAuth, ApiHeader, ApiTags } from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { DomainError, ErrorCode } from '../common/errors';
import { Public, Roles } from '../common/access.decorators';
import { CreateSessionDto } from './dto/create-session.dto';
import { Principal } from './principal';
import {
  clearedSessionCookie,
  CONSOLE_ROLES,
  SESSION_COOKIE,
  sessionCookie,
  SessionPrincipal,
  SessionService,
  SessionView,
} from './session.service';

/** Security console sign-in (README "Security console"): a token for a cookie, once. */
@ApiTags('sessions')
@Controller('v1/sessions')
export class SessionController {
  constructor(private readonly sessions: SessionService) {}

  /** Exchanges an API token for a session cookie; the body carries the CSRF token for later writes. */
  @Post()
  @Public()
  @HttpCode(201)
  async create(
    @Body() body: CreateSessionDto,
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<SessionView> {
    const { secret, view } = await this.sessions.create(body.token, request);
    void reply.header('set-cookie', sessionCookie(request, secret)).header('cache-control', 'no-store');
    return view;
  }

  /** The session the cookie names (after a page reload: role, deadlines and the CSRF token again). */
  @Get('current')
  @Roles(...CONSOLE_ROLES)
  @ApiCookieAuth(SESSION_COOKIE)
  current(@Principal() principal: Principal, @Res({ passthrough: true }) reply: FastifyReply): SessionView {
    void reply.header('cache-control', 'no-store');
    return sessionOf(principal).view;
  }

  /** Signs out: the session ends on every replica at once and the cookie is cleared. */
  @Delete()
  @HttpCode(204)
  @Roles(...CONSOLE_ROLES)
  @ApiCookieAuth(SESSION_COOKIE)
  @ApiHeader({ name: 'X-CSRF-Token', required: true, description: 'The csrfToken of the session' })
  async end(
    @Principal() principal: Principal,
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<void> {
    await this.sessions.end(sessionOf(principal));
    void reply.header('set-cookie', clearedSessionCookie(request));
  }
}

/** Bearer requests have no session to show or end. */
function sessionOf(principal: Principal): SessionPrincipal {
  if (principal instanceof SessionPrincipal) return principal;
  throw new DomainError(
    ErrorCode.NOT_FOUND,
    'no console session: this request was authenticated by a bearer token, not a session cookie',
  );
}
