import { ArgumentsHost, Catch, ExceptionFilter, HttpException, HttpStatus, Logger } from '@nestjs/common';
import { isDatabaseUnavailable } from '../common/database-errors';
import { DomainError, ErrorCode, httpStatusFor } from '../common/errors';
import { scrubText } from './logger';
import { withDomainCode } from './pki-errors';

export interface ErrorBody {
  error: { code: string; message: string; details?: Record<string, unknown> };
}

interface Mapped {
  status: number;
  body: ErrorBody;
  headers?: Record<string, string>;
}

const STATUS_CODES: Record<number, ErrorCode> = {
  400: ErrorCode.VALIDATION_ERROR,
  401: ErrorCode.UNAUTHENTICATED,
  403: ErrorCode.FORBIDDEN,
  404: ErrorCode.NOT_FOUND,
  409: ErrorCode.CONFLICT,
  413: ErrorCode.PAYLOAD_TOO_LARGE,
  415: ErrorCode.UNSUPPORTED_MEDIA_TYPE,
  429: ErrorCode.RATE_LIMITED,
  503: ErrorCode.SERVICE_UNAVAILABLE,
};

/** PostgreSQL data exceptions caused by a value the client sent (character_not_in_repertoire, untranslatable_character, invalid_text_representation, numeric_value_out_of_range). */
const INPUT_DATA_EXCEPTIONS = new Set(['22021', '22P05', '22P02', '22003']);

/**
 * Maps anything thrown — domain errors, Nest HTTP exceptions, Fastify's own errors (body too
 * large, bad JSON, wrong content type), database outages — to API.md's error shape. Used both as
 * Nest's global filter and as Fastify's error and not-found handlers, so no error escapes it.
 */
export function mapError(thrown: unknown, logger?: Logger): Mapped {
  const error = withDomainCode(thrown);
  if (error instanceof DomainError) {
    const status = httpStatusFor(error.code);
    return {
      status,
      body: {
        error: { code: error.code, message: error.message, ...(error.details ? { details: error.details } : {}) },
      },
      headers: retryAfter(error.details),
    };
  }
  if (error instanceof HttpException) {
    const status = error.getStatus();
    const response = error.getResponse();
    if (
      status === HttpStatus.NOT_FOUND &&
      typeof response === 'object' &&
      /^Cannot (GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS) /.test(String((response as { message?: unknown }).message))
    ) {
      return { status, body: { error: { code: ErrorCode.ROUTE_NOT_FOUND, message: 'no such route' } } };
    }
    if (
      status === HttpStatus.BAD_REQUEST &&
      typeof response === 'object' &&
      Array.isArray((response as { message?: unknown }).message)
    ) {
      const problems = (response as { message: string[] }).message;
      return {
        status,
        body: {
          error: { code: ErrorCode.VALIDATION_ERROR, message: problems[0] ?? 'invalid request', details: { problems } },
        },
      };
    }
    const message =
      typeof response === 'string' ? response : String((response as { message?: unknown }).message ?? error.message);
    return {
      status,
      body: {
        error: { code: STATUS_CODES[status] ?? (status >= 500 ? ErrorCode.INTERNAL : ErrorCode.BAD_REQUEST), message },
      },
    };
  }
  const fastify = error as { statusCode?: number; code?: string; message?: string };
  if (
    typeof fastify.code === 'string' &&
    fastify.code.startsWith('FST_') &&
    typeof fastify.statusCode === 'number' &&
    fastify.statusCode < 500
  ) {
    const status = fastify.statusCode;
    const message =
      fastify.code === 'FST_ERR_CTP_BODY_TOO_LARGE'
        ? 'request body is larger than the configured limit'
        : fastify.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE'
          ? 'unsupported content type'
          : // These two echo the whole path; a very long one would come back in full.
            fastify.code === 'FST_ERR_BAD_URL'
            ? 'the request path is not valid percent-encoded UTF-8'
            : fastify.code === 'FST_ERR_MAX_PARAM_LENGTH'
              ? 'a path parameter is longer than the router accepts'
              : (fastify.message ?? 'invalid request');
    return { status, body: { error: { code: STATUS_CODES[status] ?? ErrorCode.BAD_REQUEST, message } } };
  }
  // A unique violation that slipped past a service's own check (two requests racing).
  const driverCode = (error as { code?: string; driverError?: { code?: string } }).driverError?.code ?? fastify.code;
  if (driverCode === '23505') {
    return {
      status: 409,
      body: { error: { code: ErrorCode.ALREADY_EXISTS, message: 'a resource with that identity already exists' } },
    };
  }
  // PostgreSQL refused a value from the request (a NUL character, bytes that are not UTF-8, a
  // malformed uuid, a number out of range): the input is at fault, and the driver's text stays here.
  if (typeof driverCode === 'string' && INPUT_DATA_EXCEPTIONS.has(driverCode)) {
    return {
      status: 400,
      body: {
        error: {
          code: ErrorCode.VALIDATION_ERROR,
          message:
            'a value in the request cannot be stored or compared (e.g. it contains a NUL character or is out of range)',
        },
      },
    };
  }
  if (isDatabaseUnavailable(error)) {
    return {
      status: 503,
      body: { error: { code: ErrorCode.DATABASE_UNAVAILABLE, message: 'the database is unavailable; retry later' } },
      headers: { 'retry-after': '1' },
    };
  }
  if (fastify.statusCode && fastify.statusCode >= 400 && fastify.statusCode < 500) {
    return {
      status: fastify.statusCode,
      body: {
        error: {
          code: STATUS_CODES[fastify.statusCode] ?? ErrorCode.BAD_REQUEST,
          message: fastify.message ?? 'invalid request',
        },
      },
    };
  }
  logger?.error(`unhandled error: ${scrubText(String((error as Error)?.stack ?? error))}`);
  return { status: 500, body: { error: { code: ErrorCode.INTERNAL, message: 'internal error' } } };
}

function retryAfter(details?: Record<string, unknown>): Record<string, string> | undefined {
  const seconds = details?.retryAfterSeconds;
  return typeof seconds === 'number' ? { 'retry-after': String(Math.max(1, Math.ceil(seconds))) } : undefined;
}

@Catch()
export class HttpExceptionFilter implements ExceptionFilter {
  private readonly logger = new Logger('HttpExceptionFilter');

  catch(exception: unknown, host: ArgumentsHost): void {
    const reply = host.switchToHttp().getResponse();
    const { status, body, headers } = mapError(exception, this.logger);
    if (headers) reply.headers(headers);
    reply.status(status).type('application/json; charset=utf-8').send(body);
  }
}
