import * as dns from 'node:dns';
import * as http from 'node:http';
import * as https from 'node:https';
import { isIP, LookupFunction } from 'node:net';
import { rootCertificates } from 'node:tls';
import { OutboundPolicy } from '../outbound-policy';
import { TargetError, TargetErrorKind } from './target-error';

/**
 * The one HTTP client distribution drivers use: node:http/https rather than the global fetch,
 * because fetch takes no per-target CA, client certificate or DNS hook without the separate
 * `undici` package. Each exchange is one hop, checked against the outbound policy (URL and resolved
 * address), bounded in time by its own timeout plus the caller's signal, and bounded in size.
 * Redirects are never followed implicitly; `sendFollowingRedirects` does it hop by hop.
 */
export interface HttpExchange {
  method: string;
  url: URL;
  headers?: Record<string, string>;
  body?: Buffer;
  /** Larger answers fail with kind `protocol`. Default 1 MiB. */
  maxResponseBytes?: number;
  /** Names the step in errors: `HEAD blob`, `PUT manifest`, `token`. */
  operation: string;
}

export interface HttpAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** Every value of a repeated header, in order (WWW-Authenticate may come once per scheme). */
  headerValues(name: string): string[];
  body: Buffer;
  url: URL;
}

export interface OutboundHttpOptions {
  policy: OutboundPolicy;
  /** `kind endpoint/where`, used in error messages and details. */
  target: string;
  requestTimeoutMs: number;
  tls?: { caPem?: string; insecure?: boolean; certPem?: string; keyPem?: string };
  /** Name resolution; default the system resolver (dns.lookup). Tests put a name in front of an address no resolver here returns. */
  resolve?: (hostname: string, options: dns.LookupOptions) => Promise<dns.LookupAddress[]>;
}

const DEFAULT_MAX_RESPONSE_BYTES = 1024 * 1024;
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
const TLS_ERROR_CODES = new Set([
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'CERT_SIGNATURE_FAILURE',
  'CERT_REVOKED',
  'CERT_UNTRUSTED',
  'EPROTO',
  'ERR_SSL_WRONG_VERSION_NUMBER',
  'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA',
]);
const FORBIDDEN_ADDRESS = 'ESIGNET_FORBIDDEN_ADDRESS';

export class OutboundHttp {
  private readonly httpAgent: http.Agent;
  private readonly httpsAgent: https.Agent;
  private readonly lookup: LookupFunction;

  constructor(private readonly options: OutboundHttpOptions) {
    this.httpAgent = new http.Agent({ keepAlive: true, maxSockets: 4 });
    const tls = options.tls ?? {};
    this.httpsAgent = new https.Agent({
      keepAlive: true,
      maxSockets: 4,
      // `ca` replaces the default roots; a private CA is added to them, not swapped in.
      ...(tls.caPem ? { ca: [...rootCertificates, tls.caPem] } : {}),
      rejectUnauthorized: !tls.insecure,
      ...(tls.certPem && tls.keyPem ? { cert: tls.certPem, key: tls.keyPem } : {}),
    });
    this.lookup = guardedLookup(
      options.policy,
      options.resolve ?? ((hostname, lookupOptions) => dns.promises.lookup(hostname, { ...lookupOptions, all: true })),
    );
  }

  get target(): string {
    return this.options.target;
  }

  error(kind: TargetErrorKind, message: string, operation: string, extra: Record<string, unknown> = {}): TargetError {
    return new TargetError(kind, `${this.options.target}: ${operation}: ${message}`, {
      target: this.options.target,
      operation,
      ...extra,
    });
  }

  /** Throws `forbidden-host` unless the policy allows `url`. */
  checkUrl(url: URL, operation: string): void {
    const refusal = this.options.policy.refusal(url);
    if (refusal)
      throw this.error('forbidden-host', `refusing to connect to ${describeUrl(url)}: ${refusal}`, operation, {
        host: url.host,
      });
  }

  /** One request, one answer; 3xx answers are returned as they are. */
  async send(exchange: HttpExchange, signal: AbortSignal): Promise<HttpAnswer> {
    this.checkUrl(exchange.url, exchange.operation);
    const literal = exchange.url.hostname.replace(/^\[|\]$/g, '');
    if (isIP(literal) !== 0 && !this.options.policy.allowsAddress(literal, literal)) {
      throw this.error(
        'forbidden-host',
        `refusing to connect to ${describeUrl(exchange.url)}: address not allowed`,
        exchange.operation,
        { host: exchange.url.host },
      );
    }
    const timeout = AbortSignal.timeout(this.options.requestTimeoutMs);
    const combined = AbortSignal.any([signal, timeout]);
    try {
      return await this.exchange(exchange, combined);
    } catch (error) {
      if (error instanceof TargetError) throw error;
      throw this.translate(error, exchange, signal, timeout);
    }
  }

  /**
   * Follows up to `maxHops` redirects, each checked against the policy. Credentials
   * (`Authorization`) travel only while the origin stays the same: blob stores and token realms on
   * other hosts never see them.
   */
  async sendFollowingRedirects(exchange: HttpExchange, signal: AbortSignal, maxHops = 5): Promise<HttpAnswer> {
    let current = exchange;
    for (let hop = 0; ; hop++) {
      const answer = await this.send(current, signal);
      const location = answer.headers.location;
      if (!REDIRECT_STATUSES.has(answer.status) || !location) return answer;
      if (hop >= maxHops) throw this.error('protocol', `more than ${maxHops} redirects`, exchange.operation);
      let next: URL;
      try {
        next = new URL(location, current.url);
      } catch {
        throw this.error('protocol', 'redirect with an invalid Location', exchange.operation, {
          status: answer.status,
        });
      }
      this.checkUrl(next, `${exchange.operation} (redirect)`);
      const headers = { ...(current.headers ?? {}) };
      if (next.origin !== current.url.origin) deleteHeader(headers, 'authorization');
      const method = answer.status === 303 ? 'GET' : current.method;
      current = {
        ...current,
        url: next,
        method,
        headers,
        body: method === 'GET' || method === 'HEAD' ? undefined : current.body,
      };
    }
  }

  async close(): Promise<void> {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }

  private exchange(exchange: HttpExchange, signal: AbortSignal): Promise<HttpAnswer> {
    const { url, method, body } = exchange;
    const maxBytes = exchange.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
    const isHttps = url.protocol === 'https:';
    const headers: Record<string, string> = { ...(exchange.headers ?? {}) };
    if (body !== undefined) headers['content-length'] = String(body.length);
    return new Promise<HttpAnswer>((resolve, reject) => {
      const request = (isHttps ? https : http).request(
        url,
        { method, headers, agent: isHttps ? this.httpsAgent : this.httpAgent, signal, lookup: this.lookup },
        (response) => {
          const declared = Number(response.headers['content-length'] ?? NaN);
          if (Number.isFinite(declared) && declared > maxBytes && method !== 'HEAD') {
            response.destroy();
            reject(
              this.error('protocol', `answer larger than ${maxBytes} bytes`, exchange.operation, {
                status: response.statusCode,
              }),
            );
            return;
          }
          const chunks: Buffer[] = [];
          let size = 0;
          response.on('data', (chunk: Buffer) => {
            size += chunk.length;
            if (size > maxBytes) {
              response.destroy();
              reject(
                this.error('protocol', `answer larger than ${maxBytes} bytes`, exchange.operation, {
                  status: response.statusCode,
                }),
              );
              return;
            }
            chunks.push(chunk);
          });
          response.on('error', reject);
          response.on('end', () => {
            const raw = response.rawHeaders;
            resolve({
              status: response.statusCode ?? 0,
              headers: response.headers,
              headerValues: (name: string) => {
                const wanted = name.toLowerCase();
                const values: string[] = [];
                for (let i = 0; i + 1 < raw.length; i += 2)
                  if (raw[i].toLowerCase() === wanted) values.push(raw[i + 1]);
                return values;
              },
              body: Buffer.concat(chunks),
              url,
            });
          });
        },
      );
      request.on('error', reject);
      request.end(body);
    });
  }

  private translate(
    error: unknown,
    exchange: HttpExchange,
    callerSignal: AbortSignal,
    timeout: AbortSignal,
  ): TargetError {
    const where = `${exchange.method} ${describeUrl(exchange.url)}`;
    if (callerSignal.aborted) return this.error('cancelled', `${where} cancelled`, exchange.operation);
    if (timeout.aborted)
      return this.error(
        'timeout',
        `${where} got no complete answer within ${this.options.requestTimeoutMs} ms`,
        exchange.operation,
        { timeoutMs: this.options.requestTimeoutMs },
      );
    const code = (error as { code?: string }).code ?? '';
    if (code === FORBIDDEN_ADDRESS)
      return this.error('forbidden-host', `${where}: resolved address is not allowed`, exchange.operation, {
        host: exchange.url.host,
      });
    if (TLS_ERROR_CODES.has(code) || code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_')) {
      return this.error('tls', `${where}: TLS failure (${code})`, exchange.operation, { code });
    }
    return this.error(
      'unreachable',
      `${where}: ${code || (error as Error).message || 'connection failed'}`,
      exchange.operation,
      { code: code || undefined },
    );
  }
}

/** `host/path` — no scheme, query or fragment, which may carry upload state or tokens. */
export function describeUrl(url: URL): string {
  return `${url.host}${url.pathname}`;
}

function deleteHeader(headers: Record<string, string>, name: string): void {
  for (const key of Object.keys(headers)) if (key.toLowerCase() === name) delete headers[key];
}

/**
 * dns.lookup, refusing addresses the policy forbids (a public name resolving to 127.0.0.1 or
 * 169.254.169.254): the connection goes only to an address that was checked, so a name that
 * changes its answer between checks (DNS rebinding) gains nothing.
 */
function guardedLookup(policy: OutboundPolicy, resolve: NonNullable<OutboundHttpOptions['resolve']>): LookupFunction {
  return ((hostname: string, options: dns.LookupOptions, callback: (...args: unknown[]) => void) => {
    resolve(hostname, options).then(
      (list) => {
        const allowed = list.filter((entry) => policy.allowsAddress(hostname, entry.address));
        if (allowed.length === 0) {
          const refused = Object.assign(new Error(`address of ${hostname} is not allowed`), {
            code: FORBIDDEN_ADDRESS,
          });
          return callback(refused);
        }
        if (options.all) return callback(null, allowed);
        return callback(null, allowed[0].address, allowed[0].family);
      },
      (error: unknown) => callback(error),
    );
  }) as LookupFunction;
}
