import type { FastifyInstance, FastifyRequest } from 'fastify';
import { DomainError, ErrorCode } from '../common/errors';
import { assertJsonCharset } from './body-types';

/** No request body Signet accepts nests deeper than a few levels; this leaves ample room. */
export const MAX_JSON_DEPTH = 64;

/**
 * Whether JSON text nests arrays/objects deeper than `max`, by a scan that needs no recursion (a
 * body nested thousands deep would otherwise overflow the stack of the recursive steps after
 * parsing — class-transformer, class-validator — and end as a 500).
 */
export function jsonDepthExceeds(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x7b || c === 0x5b) {
      if (++depth > max) return true;
    } else if (c === 0x7d || c === 0x5d) {
      depth--;
    }
  }
  return false;
}

/**
 * Fastify's own JSON parser (prototype-poisoning checks included) behind a nesting-depth check:
 * too deep → 400 VALIDATION_ERROR before anything walks the value. For Nest's useBodyParser.
 */
export function depthLimitedJsonParser(fastify: FastifyInstance, maxDepth = MAX_JSON_DEPTH) {
  const parse = fastify.getDefaultJsonParser('error', 'error');
  return (request: FastifyRequest, body: Buffer, done: (error: Error | null, value?: unknown) => void): void => {
    try {
      assertJsonCharset(request);
    } catch (error) {
      done(error as Error);
      return;
    }
    const text = body.toString('utf8');
    if (jsonDepthExceeds(text, maxDepth)) {
      done(new DomainError(ErrorCode.VALIDATION_ERROR, `JSON body nested deeper than ${maxDepth} levels`));
      return;
    }
    parse(request, text, done);
  };
}
