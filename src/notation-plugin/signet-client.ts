import * as http from 'node:http';
import * as https from 'node:https';
import { SignetConnection } from './plugin-config';
import { PluginError, PluginErrorCode } from './protocol';

/** Signet's answers are small (a key description, a signature and a short chain); anything larger is not Signet. */
const MAX_RESPONSE_BYTES = 4 * 1024 * 1024;

export interface SignetResponse {
  status: number;
  body: unknown;
}

/**
 * The two Signet calls the plugin makes, over node:http(s) so a private CA (`ca_file`) needs no
 * extra dependency. Redirects are not followed: a redirect could carry the bearer token elsewhere.
 */
export class SignetClient {
  constructor(
    private readonly connection: SignetConnection,
    private readonly userAgent: string,
  ) {}

  /** `GET /v1/keys/{name}`. */
  getKey(keyName: string, operation: string): Promise<SignetResponse> {
    return this.send('GET', `/v1/keys/${encodeURIComponent(keyName)}`, undefined, operation, keyName);
  }

  /** `POST /v1/keys/{name}/sign` in payload mode. */
  sign(keyName: string, body: Record<string, unknown>, operation: string): Promise<SignetResponse> {
    return this.send('POST', `/v1/keys/${encodeURIComponent(keyName)}/sign`, body, operation, keyName);
  }

  private send(
    method: 'GET' | 'POST',
    route: string,
    body: unknown,
    operation: string,
    keyName: string,
  ): Promise<SignetResponse> {
    const { baseUrl, token, ca, timeoutMs } = this.connection;
    const url = new URL(baseUrl.pathname.replace(/\/+$/, '') + route, baseUrl);
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const headers: http.OutgoingHttpHeaders = {
      authorization: `Bearer ${token}`,
      accept: 'application/json',
      'user-agent': this.userAgent,
    };
    if (payload) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = payload.length;
    }
    const where = `Signet at ${baseUrl.origin}`;

    return new Promise<SignetResponse>((resolve, reject) => {
      let settled = false;
      const finish = (error: PluginError | undefined, result?: SignetResponse) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (error) reject(error);
        else resolve(result!);
      };
      const options: https.RequestOptions = { method, headers, agent: false };
      if (ca) options.ca = ca;
      const request = (url.protocol === 'https:' ? https : http).request(url, options, (response) => {
        const chunks: Buffer[] = [];
        let size = 0;
        response.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_RESPONSE_BYTES) {
            request.destroy();
            finish(
              new PluginError(
                'ERROR',
                `${operation}: ${where} sent more than ${MAX_RESPONSE_BYTES} bytes; not a Signet answer`,
              ),
            );
            return;
          }
          chunks.push(chunk);
        });
        response.on('error', (error) => finish(transportError(error, operation, where)));
        response.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown;
          try {
            parsed = text === '' ? undefined : JSON.parse(text);
          } catch {
            parsed = undefined;
          }
          const status = response.statusCode ?? 0;
          if (status >= 200 && status < 300) {
            if (parsed === undefined)
              finish(new PluginError('ERROR', `${operation}: ${where} answered ${status} without a JSON body`));
            else finish(undefined, { status, body: parsed });
          } else {
            finish(
              httpError(status, parsed, response.headers['retry-after'], operation, where, {
                keyName,
                tokenSource: this.connection.tokenSource,
              }),
            );
          }
        });
      });
      const timer = setTimeout(() => {
        request.destroy();
        finish(
          new PluginError('TIMEOUT', `${operation}: ${where} did not answer within ${timeoutMs} ms`, {
            timeoutMs: String(timeoutMs),
          }),
        );
      }, timeoutMs);
      request.on('error', (error) => finish(transportError(error, operation, where)));
      request.end(payload);
    });
  }
}

function transportError(error: Error, operation: string, where: string): PluginError {
  const code = (error as NodeJS.ErrnoException).code ?? '';
  if (code === 'ETIMEDOUT')
    return new PluginError('TIMEOUT', `${operation}: connecting to ${where} timed out (${code})`);
  if (/CERT|SSL|TLS|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)/.test(code)) {
    return new PluginError(
      'ERROR',
      `${operation}: TLS verification of ${where} failed (${code}: ${error.message}); if Signet uses a private CA, set ca_file to its certificate`,
    );
  }
  return new PluginError('ERROR', `${operation}: cannot reach ${where} (${code || error.message})`);
}

/**
 * HTTP status → plugin error code. 404 means "not found or not granted to this token" (API.md), so
 * it is ACCESS_DENIED rather than the spec's "key not found" VALIDATION_ERROR: Signet does not say which.
 */
export function errorCodeForStatus(status: number): PluginErrorCode {
  switch (status) {
    case 401:
    case 403:
    case 404:
      return 'ACCESS_DENIED';
    case 400:
    case 409:
    case 413:
    case 422:
      return 'VALIDATION_ERROR';
    case 429:
      return 'THROTTLED';
    case 504:
      return 'TIMEOUT';
    default:
      return 'ERROR';
  }
}

/**
 * What a user does about the statuses that mean "this token, this key": Notation prints only the
 * message, so it says which token setting was used and that a 404 may be a missing grant.
 */
function accessHint(status: number, context: { keyName: string; tokenSource?: string }): string {
  const token = context.tokenSource ? `the token from ${context.tokenSource}` : 'the token';
  switch (status) {
    case 401:
      return ` (${token} was refused: it is unknown, expired or revoked; put a current Signet signer token there)`;
    case 403:
      return ` (${token} may not sign: a signer token granted the key is needed)`;
    case 404:
      return ` (no key '${context.keyName}' that ${token} may use: either it does not exist or the token is not granted it; a Signet admin grants keys with PATCH /v1/tokens/{id})`;
    default:
      return '';
  }
}

function httpError(
  status: number,
  body: unknown,
  retryAfter: string | undefined,
  operation: string,
  where: string,
  context: { keyName: string; tokenSource?: string },
): PluginError {
  const signetError = (body as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
  const signetCode = typeof signetError?.code === 'string' ? signetError.code : undefined;
  const signetMessage = typeof signetError?.message === 'string' ? clip(signetError.message) : undefined;
  const metadata: Record<string, string> = { httpStatus: String(status) };
  if (signetCode) metadata.signetErrorCode = signetCode;
  if (status === 429 && retryAfter) metadata.retryAfter = retryAfter;
  const detail = [signetCode, signetMessage].filter(Boolean).join(': ') || 'no error detail';
  const hint =
    status === 429 && retryAfter
      ? ` (retry after ${/^\d+$/.test(retryAfter) ? `${retryAfter} s` : retryAfter})`
      : accessHint(status, context);
  return new PluginError(
    errorCodeForStatus(status),
    `${operation}: ${where} answered HTTP ${status}: ${detail}${hint}`,
    metadata,
  );
}

function clip(text: string): string {
  const oneLine = text.replace(/\s+/g, ' ').trim();
  return oneLine.length > 500 ? `${oneLine.slice(0, 500)}…` : oneLine;
}
