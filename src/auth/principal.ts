import { createParamDecorator, ExecutionContext } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { DomainError, ErrorCode } from '../common/errors';
import type { AuditActor } from '../audit/audit.types';
import { Role } from '../common/roles';

/** The authenticated caller of a request: who (token id and name), what role, which keys. */
export interface Principal {
  readonly tokenId: string;
  readonly tokenName: string;
  readonly role: Role;
  /** Key names granted to a signer (admins may use every key; other roles none). */
  readonly keys: readonly string[];
  /** Client address as Fastify sees it. */
  readonly address: string;
  /** True when this caller may sign with / read the key `name`. */
  canUseKey(name: string): boolean;
  /** Throws 404 NOT_FOUND, the same error as for a key that does not exist, unless canUseKey(name). */
  assertCanUseKey(name: string): void;
  /** The actor to pass to AuditService.record. */
  readonly auditActor: AuditActor;
  /**
   * The actor of a use of key `name`, when it says more than auditActor (a workload identity names
   * the rule that granted that key and the claims the rule matched).
   */
  auditActorFor?(name: string): AuditActor;
}

/**
 * The 404 for a key that does not exist or is not visible to the caller. Key-scoped modules use
 * this for both cases so the answers cannot be told apart.
 */
export function keyNotFound(name: string): DomainError {
  return new DomainError(ErrorCode.NOT_FOUND, `no key named '${name}'`);
}

export class TokenPrincipal implements Principal {
  private readonly keySet: ReadonlySet<string>;

  constructor(
    readonly tokenId: string,
    readonly tokenName: string,
    readonly role: Role,
    readonly keys: readonly string[],
    readonly address: string,
  ) {
    this.keySet = new Set(keys);
  }

  canUseKey(name: string): boolean {
    return this.role === 'admin' || (this.role === 'signer' && this.keySet.has(name));
  }

  assertCanUseKey(name: string): void {
    if (!this.canUseKey(name)) throw keyNotFound(name);
  }

  get auditActor(): AuditActor {
    return { tokenId: this.tokenId, tokenName: this.tokenName, role: this.role, address: this.address };
  }
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by AuthGuard on every non-public route. */
    signetPrincipal?: Principal;
  }
}

/**
 * `@Principal() principal: Principal` in a handler: the caller AuthGuard authenticated. On a
 * @Public route it is undefined.
 */
export const Principal = createParamDecorator((_data: unknown, context: ExecutionContext): Principal | undefined => {
  return context.switchToHttp().getRequest<FastifyRequest>().signetPrincipal;
});
