import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify';
import type { AuthGuard } from '../auth/auth.guard';
import type { Principal } from '../auth/principal';
import { checkIdempotencyHeader } from './sign-request';
import { SigningController } from './signing.controller';
import type { SigningService } from './signing.service';

/** The route as Nest registers it on Fastify. */
export const SIGN_ROUTE = '/v1/keys/:name/sign';

const installed = new WeakSet<FastifyInstance>();

/**
 * `POST /v1/keys/{name}/sign` served by a Fastify handler that calls the same parts Nest's route
 * would, without Nest's per-request pipeline (execution context, guard and pipe consumers, param
 * factories, response controller): about a tenth of the event loop's work per signature
 * (docs/signing-performance.md). Nest still declares the route (SigningController: OpenAPI, the
 * route registry); when Fastify registers it, its handler is replaced by this one. What the
 * request goes through stays the same:
 * - an empty key name is a route not found, as in Nest's wrapper of routes with parameters;
 * - AuthGuard.admit with the roles SigningController.sign declares (@Roles): 401, 429, 403;
 * - the principal's key grant: 404 for a key the caller may not use;
 * - an `Idempotency-Key` header must equal the body's idempotencyKey (400 otherwise);
 * - SigningService.sign;
 * - errors go to Fastify's error handler, which Nest set to the global HttpExceptionFilter.
 * Call before app.init().
 */
export function installSignFastPath(
  fastify: FastifyInstance,
  resolve: () => { guard: AuthGuard; signing: SigningService },
): void {
  fastify.addHook('onRoute', (route: RouteOptions) => {
    if (route.url !== SIGN_ROUTE || route.method !== 'POST') return;
    let deps: { guard: AuthGuard; signing: SigningService; roles: ReturnType<AuthGuard['rolesOf']> } | undefined;
    const describe = () => `${SigningController.name}.${SigningController.prototype.sign.name}`;
    route.handler = async function signFastPath(
      request: FastifyRequest,
      reply: FastifyReply,
    ): Promise<string | FastifyReply> {
      const name = (request.params as { name: string }).name;
      // As Nest's own wrapper of a route with parameters: an empty one is no match.
      if (name === '') {
        reply.callNotFound();
        return reply;
      }
      if (!deps) {
        const { guard, signing } = resolve();
        deps = { guard, signing, roles: guard.rolesOf(SigningController, SigningController.prototype.sign) };
      }
      const admitted = deps.guard.admit(request, reply, deps.roles, describe);
      const principal: Principal = admitted instanceof Promise ? await admitted : admitted;
      principal.assertCanUseKey(name);
      checkIdempotencyHeader(request.headers['idempotency-key'], request.body);
      const json = await deps.signing.sign(name, request.body, principal);
      reply.code(200).header('content-type', 'application/json; charset=utf-8');
      return json;
    };
    installed.add(fastify);
  });
}

/** Whether the sign route of `fastify` is served by the fast path (tests check it is). */
export function signFastPathInstalled(fastify: FastifyInstance): boolean {
  return installed.has(fastify);
}
