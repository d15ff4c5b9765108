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

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'signet' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      formatters: { level: (label) => ({ level: label }) },
    },
    destination ?? pino.destination({ sync: false }),
  );
}

const BEARER = /\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+/gi;
const SIGNET_TOKEN = /\bsgt_[A-Za-z0-9_-]+/g;
const PEM_PRIVATE_KEY = /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----/g;
const URL_PASSWORD = /(\/\/[^/:@\s]+:)[^@\s]+@/g;

/** Scrubs secrets that may hide inside free-text messages (error messages from libraries). */
export function scrubText(text: string): string {
  return text
    .replace(BEARER, '$1 [redacted]')
    .replace(SIGNET_TOKEN, 'sgt_[redacted]')
    .replace(PEM_PRIVATE_KEY, '[redacted private key]')
    .replace(URL_PASSWORD, '$1[redacted]@');
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

  private write(level: 'info' | 'error' | 'warn' | 'debug' | 'trace' | 'fatal', message: unknown, context?: string, trace?: string): void {
    if (message instanceof Error) {
      this.logger[level]({ context, err: { type: message.name, message: scrubText(message.message), stack: scrubText(message.stack ?? '') } }, scrubText(message.message));
      return;
    }
    if (typeof message === 'object' && message !== null) {
      this.logger[level]({ context, ...(message as object) });
      return;
    }
    this.logger[level]({ context, ...(trace ? { trace: scrubText(trace) } : {}) }, scrubText(String(message)));
  }
}
