import { BasicCredentials } from './trust-target';
import { Blob, OCI_MANIFEST_MEDIA_TYPE, sha256Digest } from './oci-artifact';
import { describeUrl, HttpAnswer, HttpExchange, OutboundHttp } from './outbound-http';
import { RegistryAuthenticator } from './registry-auth';

/**
 * The few OCI Distribution API calls a truststore push needs, on one repository: blob HEAD,
 * monolithic blob upload (POST then PUT), manifest GET and PUT. Authentication (basic or bearer
 * challenge) is transparent; every failure becomes a typed TargetError.
 */
const MAX_MANIFEST_BYTES = 4 * 1024 * 1024; // distribution's own manifest size limit
const MAX_ERROR_BODY_BYTES = 64 * 1024;

export interface FetchedManifest {
  bytes: Buffer;
  digest: string;
  mediaType: string;
}

export class OciRegistryClient {
  readonly auth: RegistryAuthenticator;

  constructor(
    private readonly http: OutboundHttp,
    private readonly endpoint: URL,
    readonly repository: string,
    credentials?: BasicCredentials,
  ) {
    this.auth = new RegistryAuthenticator(http, credentials);
  }

  get pullScopes(): string[] {
    return [`repository:${this.repository}:pull`];
  }

  get pushScopes(): string[] {
    return [`repository:${this.repository}:pull,push`];
  }

  async blobExists(digest: string, scopes: string[], signal: AbortSignal): Promise<boolean> {
    const answer = await this.request(
      { method: 'HEAD', url: this.url(`blobs/${digest}`), operation: 'HEAD blob' },
      scopes,
      signal,
    );
    if (answer.status === 200) return true;
    if (answer.status === 404) return false;
    throw this.failure(answer, 'HEAD blob');
  }

  async uploadBlob(blob: Blob, scopes: string[], signal: AbortSignal): Promise<void> {
    const started = await this.request(
      {
        method: 'POST',
        url: this.url('blobs/uploads/'),
        body: Buffer.alloc(0),
        operation: 'start upload',
        maxResponseBytes: MAX_ERROR_BODY_BYTES,
      },
      scopes,
      signal,
    );
    if (started.status !== 202) throw this.failure(started, 'start upload');
    const location = started.headers.location;
    if (!location)
      throw this.http.error('protocol', 'upload started without a Location', 'start upload', {
        status: started.status,
      });
    let uploadUrl: URL;
    try {
      uploadUrl = new URL(location, this.endpoint);
    } catch {
      throw this.http.error('protocol', 'upload Location is not a URL', 'start upload', { status: started.status });
    }
    uploadUrl.searchParams.set('digest', blob.digest);
    const finished = await this.request(
      {
        method: 'PUT',
        url: uploadUrl,
        headers: { 'content-type': 'application/octet-stream' },
        body: blob.content,
        operation: 'upload blob',
        maxResponseBytes: MAX_ERROR_BODY_BYTES,
      },
      scopes,
      signal,
    );
    if (finished.status !== 201) throw this.failure(finished, 'upload blob');
    const reported = finished.headers['docker-content-digest'];
    if (typeof reported === 'string' && reported !== blob.digest) {
      throw this.http.error('protocol', `registry stored blob ${reported}, expected ${blob.digest}`, 'upload blob', {
        status: finished.status,
      });
    }
  }

  /** The manifest a tag or digest names, or `undefined` when the registry has none (404). */
  async getManifest(reference: string, scopes: string[], signal: AbortSignal): Promise<FetchedManifest | undefined> {
    const answer = await this.request(
      // distribution 2.8 only serves an OCI manifest when Accept names the OCI type
      {
        method: 'GET',
        url: this.url(`manifests/${reference}`),
        headers: { accept: OCI_MANIFEST_MEDIA_TYPE },
        operation: 'GET manifest',
        maxResponseBytes: MAX_MANIFEST_BYTES,
      },
      scopes,
      signal,
    );
    if (answer.status === 404) return undefined;
    if (answer.status !== 200) throw this.failure(answer, 'GET manifest');
    const digest = sha256Digest(answer.body);
    const reported = answer.headers['docker-content-digest'];
    if (typeof reported === 'string' && reported.startsWith('sha256:') && reported !== digest) {
      throw this.http.error(
        'protocol',
        `manifest bytes hash to ${digest} but the registry says ${reported}`,
        'GET manifest',
        { status: answer.status },
      );
    }
    const mediaType = String(answer.headers['content-type'] ?? '')
      .split(';')[0]
      .trim();
    return { bytes: answer.body, digest, mediaType };
  }

  async putManifest(reference: string, bytes: Buffer, scopes: string[], signal: AbortSignal): Promise<string> {
    const answer = await this.request(
      {
        method: 'PUT',
        url: this.url(`manifests/${reference}`),
        headers: { 'content-type': OCI_MANIFEST_MEDIA_TYPE },
        body: bytes,
        operation: `PUT manifest ${reference}`,
        maxResponseBytes: MAX_ERROR_BODY_BYTES,
      },
      scopes,
      signal,
    );
    if (answer.status !== 201) throw this.failure(answer, `PUT manifest ${reference}`);
    const digest = sha256Digest(bytes);
    const reported = answer.headers['docker-content-digest'];
    if (typeof reported === 'string' && reported !== digest) {
      throw this.http.error(
        'protocol',
        `registry stored manifest ${reported}, expected ${digest}`,
        `PUT manifest ${reference}`,
        { status: answer.status },
      );
    }
    return digest;
  }

  private url(suffix: string): URL {
    return new URL(`/v2/${this.repository}/${suffix}`, this.endpoint);
  }

  /** Sends with whatever credentials earlier challenges called for; on a 401 learns the challenge and retries once. */
  private async request(exchange: HttpExchange, scopes: string[], signal: AbortSignal): Promise<HttpAnswer> {
    for (let attempt = 0; ; attempt++) {
      // registry credentials go to the registry's own origin only, never to a blob store it redirects to
      const authorization =
        exchange.url.origin === this.endpoint.origin ? await this.auth.authorization(scopes, signal) : undefined;
      const headers = { ...(exchange.headers ?? {}), ...(authorization ? { authorization } : {}) };
      const answer = await this.http.sendFollowingRedirects({ ...exchange, headers }, signal);
      if (answer.status !== 401) return answer;
      if (attempt > 0 || exchange.url.origin !== this.endpoint.origin) {
        throw this.http.error(
          'auth',
          `registry rejected the ${authorization?.startsWith('Bearer ') ? 'token' : 'credentials'}`,
          exchange.operation,
          { status: 401 },
        );
      }
      await this.auth.onUnauthorized(answer, scopes, authorization, exchange.operation, signal);
    }
  }

  /** A typed error for an unexpected answer, quoting the registry's error codes (never its whole body). */
  private failure(answer: HttpAnswer, operation: string) {
    const codes = registryErrorCodes(answer.body);
    const suffix = codes.length ? ` (${codes.join(', ')})` : '';
    const where = describeUrl(answer.url);
    const extra = { status: answer.status, ...(codes.length ? { registryErrors: codes } : {}) };
    if (answer.status === 403)
      return this.http.error('auth', `registry denied access to ${where}${suffix}`, operation, extra);
    if (answer.status === 429 || answer.status >= 500)
      return this.http.error('server', `registry answered ${answer.status} for ${where}${suffix}`, operation, extra);
    if (answer.status === 404)
      return this.http.error('not-found', `registry answered 404 for ${where}${suffix}`, operation, extra);
    if (answer.status >= 400)
      return this.http.error('rejected', `registry answered ${answer.status} for ${where}${suffix}`, operation, extra);
    return this.http.error('protocol', `registry answered ${answer.status} for ${where}`, operation, extra);
  }
}

/** `{"errors":[{"code":"MANIFEST_BLOB_UNKNOWN",…}]}` → `['MANIFEST_BLOB_UNKNOWN']`; anything else → `[]`. */
export function registryErrorCodes(body: Buffer): string[] {
  try {
    const parsed = JSON.parse(body.toString('utf8')) as { errors?: Array<{ code?: unknown }> };
    if (!Array.isArray(parsed.errors)) return [];
    return parsed.errors
      .map((e) => e?.code)
      .filter((code): code is string => typeof code === 'string' && /^[A-Z0-9_]{1,64}$/.test(code))
      .slice(0, 5);
  } catch {
    return [];
  }
}
