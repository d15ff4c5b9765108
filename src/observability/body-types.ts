import type { FastifyInstance, FastifyRequest } from 'fastify';
import { DomainError, ErrorCode } from '../common/errors';

/**
 * Routes whose bodies are not JSON (route templates as Fastify registers them). They answer any
 * other body in their own protocol (an OCSP malformedRequest, an RFC 3161 rejection); every other
 * route takes `application/json` only.
 */
export const BINARY_BODY_ROUTES: ReadonlySet<string> = new Set(['/ocsp/:ca', '/tsa']);

function isBinaryBodyRoute(request: FastifyRequest): boolean {
  return BINARY_BODY_ROUTES.has(request.routeOptions?.url ?? '');
}

function unsupportedMediaType(request: FastifyRequest): DomainError {
  const type = String(request.headers['content-type'] ?? '(none)')
    .split(';')[0]
    .trim()
    .slice(0, 100);
  return new DomainError(ErrorCode.UNSUPPORTED_MEDIA_TYPE, `this route takes application/json bodies, not ${type}`, {
    contentType: type,
  });
}

type Done = (error: Error | null, body?: unknown) => void;

/**
 * Bodies other than JSON are refused on JSON routes before they are read (415
 * UNSUPPORTED_MEDIA_TYPE). Nest's Fastify adapter would otherwise parse HTML forms and Fastify
 * plain text, and a body nobody validated as JSON (a form's `a=1&a=2` is an array) reached
 * handlers written for JSON. Call before app.init(), with Nest's own body parsers off.
 */
export function refuseNonJsonBodies(fastify: FastifyInstance): void {
  if (fastify.hasContentTypeParser('text/plain')) fastify.removeContentTypeParser('text/plain');
  // Any other type, or a body without one. Nothing is read: the stream is left to Node to discard.
  fastify.addContentTypeParser('*', (request: FastifyRequest, _payload: unknown, done: Done) => {
    if (isBinaryBodyRoute(request)) done(null, undefined);
    else done(unsupportedMediaType(request));
  });
}

/**
 * A binary body parser (parseAs buffer) that hands the body over only on `route`; another binary
 * route gets no body (its protocol's own error), a JSON route 415.
 */
export function binaryBodyFor(route: string): (request: FastifyRequest, body: Buffer, done: Done) => void {
  return (request, body, done) => {
    const url = request.routeOptions?.url;
    if (url === route) done(null, body);
    else if (isBinaryBodyRoute(request)) done(null, undefined);
    else done(unsupportedMediaType(request));
  };
}

/** JSON is UTF-8 (RFC 8259 §8.1): a charset parameter naming anything else is refused, not guessed. */
export function assertJsonCharset(request: FastifyRequest): void {
  const header = request.headers['content-type'];
  if (header === undefined || !header.includes(';') || isBinaryBodyRoute(request)) return;
  const charset = /;\s*charset\s*=\s*"?([^";\s]*)"?/i.exec(header)?.[1]?.toLowerCase();
  if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8') {
    throw new DomainError(ErrorCode.UNSUPPORTED_MEDIA_TYPE, 'JSON bodies must be UTF-8 (charset=utf-8 or no charset)', {
      charset: charset.slice(0, 40),
    });
  }
}
