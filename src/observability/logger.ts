import { LoggerService } from '@nestjs/common';
import pino, { Logger } from 'pino';

/**
 * Paths that may carry secrets anywhere in a log record. pino's redaction runs on the serialised
 * object, so a secret passed in a structured field is censored whatever logged it.
 */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["proxy-authorization"]',
  'res.headers["set-cookie"]',
  'headers.authorization',
  'authorization',
  'pin',
  'soPin',
  'password',
  'token',
  'secret',
  'credentials',
  '*.pin',
  '*.soPin',
  '*.password',
  '*.token',
  '*.secret',
  '*.credentials',
  '*.privateKey',
];

/** The request as request log lines show it (Fastify's own fields), its URL scrubbed. */
interface LoggedRequest {
  method?: string;
  url?: string;
  headers?: Record<string, string | string[] | undefined>;
  host?: string;
  ip?: string;
  socket?: { remotePort?: number };
}

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'signet' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      formatters: { level: (label) => ({ level: label }) },
      // Replaces Fastify's `req` serializer (Fastify merges the logger's own over its defaults):
      // the same fields, with secrets a client put into the URL scrubbed.
      serializers: {
        req: (req: LoggedRequest) => ({
          method: req.method,
          url: typeof req.url === 'string' ? scrubUrl(req.url) : req.url,
          version: req.headers?.['accept-version'],
          host: req.host,
          remoteAddress: req.ip,
          remotePort: req.socket?.remotePort,
        }),
      },
    },
    destination ?? pino.destination({ sync: false }),
  );
}

const BEARER = /\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+/gi;
const SIGNET_TOKEN = /\bsgt_[A-Za-z0-9_-]+/g;
/** A JWT or JWS (an OIDC ID token): a base64url JSON header, `{"` encoded as `eyJ`, then dot-separated parts. */
const JWT = /\beyJ[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]*){0,4}/g;
const PEM_PRIVATE_KEY = /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----/g;
const URL_PASSWORD = /(\/\/[^/:@\s]+:)[^@\s]+@/g;
/** Query parameters whose values are secrets whatever they look like (OAuth, OIDC and the obvious ones). */
export const SECRET_QUERY_PARAMETERS: ReadonlySet<string> = new Set([
  'token',
  'access_token',
  'id_token',
  'refresh_token',
  'code',
  'password',
  'secret',
  'client_secret',
  'api_key',
  'apikey',
]);
const SECRET_PARAMETER_IN_TEXT = new RegExp(`([?&;](?:${[...SECRET_QUERY_PARAMETERS].join('|')})=)[^&#;\\s"']*`, 'gi');

/** Scrubs secrets that may hide inside free-text messages (error messages from libraries, URLs). */
export function scrubText(text: string): string {
  return text
    .replace(SECRET_PARAMETER_IN_TEXT, '$1[redacted]')
    .replace(BEARER, '$1 [redacted]')
    .replace(SIGNET_TOKEN, 'sgt_[redacted]')
    .replace(JWT, '[redacted jwt]')
    .replace(PEM_PRIVATE_KEY, '[redacted private key]')
    .replace(URL_PASSWORD, '$1[redacted]@');
}

function decode(text: string): string {
  try {
    return decodeURIComponent(text.replace(/\+/g, ' '));
  } catch {
    return text;
  }
}

/**
 * A request URL fit for a log line. Tokens are only accepted in the Authorization header, but a
 * client may still put one in the URL (`?access_token=`): the values of secret-named parameters
 * (names compared percent-decoded and case-insensitively) are replaced, and token-shaped text
 * (`sgt_…`, JWTs) anywhere in the path or a value, percent-encoded or not, too.
 */
export function scrubUrl(url: string): string {
  const mark = url.indexOf('?');
  const path = mark === -1 ? url : url.slice(0, mark);
  const scrubbedPath = tokenShaped(decode(path)) ? scrubText(decode(path)) : scrubText(path);
  if (mark === -1) return scrubbedPath;
  const query = url
    .slice(mark + 1)
    .split('&')
    .map((pair) => {
      const equals = pair.indexOf('=');
      const name = equals === -1 ? pair : pair.slice(0, equals);
      const value = equals === -1 ? '' : pair.slice(equals + 1);
      if (SECRET_QUERY_PARAMETERS.has(decode(name).trim().toLowerCase())) return `${name}=[redacted]`;
      if (tokenShaped(decode(name)) || tokenShaped(decode(value))) return '[redacted]';
      return pair;
    })
    .join('&');
  return `${scrubbedPath}?${query}`;
}

function tokenShaped(text: string): boolean {
  SIGNET_TOKEN.lastIndex = 0;
  JWT.lastIndex = 0;
  const found = SIGNET_TOKEN.test(text) || JWT.test(text) || /\b(Bearer|Basic)\s+\S/i.test(text);
  SIGNET_TOKEN.lastIndex = 0;
  JWT.lastIndex = 0;
  return found;
}

/** Nest's logger interface over pino, so framework and app logs share one JSON stream. */
export class PinoNestLogger implements LoggerService {
  constructor(private readonly logger: Logger) {}

  log(message: unknown, context?: string): void {
    this.write('info', message, context);
  }
  error(message: unknown, trace?: string, context?: string): void {
    this.write('error', message, context, trace);
  }
  warn(message: unknown, context?: string): void {
    this.write('warn', message, context);
  }
  debug(message: unknown, context?: string): void {
    this.write('debug', message, context);
  }
  verbose(message: unknown, context?: string): void {
    this.write('trace', message, context);
  }
  fatal(message: unknown, context?: string): void {
    this.write('fatal', message, context);
  }

  private write(
    level: 'info' | 'error' | 'warn' | 'debug' | 'trace' | 'fatal',
    message: unknown,
    context?: string,
    trace?: string,
  ): void {
    if (message instanceof Error) {
      this.logger[level](
        {
          context,
          err: { type: message.name, message: scrubText(message.message), stack: scrubText(message.stack ?? '') },
        },
        scrubText(message.message),
      );
      return;
    }
    if (typeof message === 'object' && message !== null) {
      this.logger[level]({ context, ...(message as object) });
      return;
    }
    this.logger[level]({ context, ...(trace ? { trace: scrubText(trace) } : {}) }, scrubText(String(message)));
  }
}
