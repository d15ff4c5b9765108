import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

const COMMON: ReadonlyArray<readonly [string, string]> = Object.entries({
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-resource-policy': 'same-origin',
  'permissions-policy': 'interest-cohort=()',
});
/** The API serves data, never pages; only the Swagger UI at /docs needs scripts and styles. */
const API_CSP = "default-src 'none'; frame-ancestors 'none'";
/** The security console: its own bundles only, nothing inline, nothing from another origin. */
const CONSOLE_CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";
const DOCS_CSP =
  "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'";

/** Security headers on every response (errors and 404s included). */
export function registerSecurityHeaders(fastify: FastifyInstance, options: { tls: boolean }): void {
  fastify.addHook(
    'onSend',
    (request: FastifyRequest, reply: FastifyReply, payload: unknown, done: (error: null, payload: unknown) => void) => {
      for (const [name, value] of COMMON) reply.header(name, value);
      reply.header('content-security-policy', cspFor(request.url));
      if (options.tls) reply.header('strict-transport-security', 'max-age=31536000');
      // Authenticated answers (a token or a console session cookie) are never cached by intermediaries.
      if ((request.headers.authorization || request.signetPrincipal) && !reply.hasHeader('cache-control'))
        reply.header('cache-control', 'no-store');
      done(null, payload);
    },
  );
}

function cspFor(url: string): string {
  if (url.startsWith('/docs')) return DOCS_CSP;
  if (url === '/console' || url.startsWith('/console/') || url.startsWith('/console?')) return CONSOLE_CSP;
  return API_CSP;
}
