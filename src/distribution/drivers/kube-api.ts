import { HttpAnswer, OutboundHttp } from './outbound-http';

/**
 * The little of the Kubernetes API the kubernetes driver needs: server-side apply and get. An
 * interface so `@kubernetes/client-node` could stand behind it later; today it is plain HTTP
 * (`HttpKubeApi`), because client-node 2.x does not load on Node 20 (undici 8), brings 68 packages
 * for three endpoints, opens a TLS connection per request and bypasses the outbound policy
 * (measured: docs/operations.md, "Node.js versions").
 */
export interface KubeObjectRef {
  /** `v1` (core) or `group/version`. */
  apiVersion: string;
  /** Lower-case plural resource name: `configmaps`, `keymanagementproviders`. */
  plural: string;
  /** Absent for cluster-scoped resources. */
  namespace?: string;
  name: string;
}

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    resourceVersion?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    [key: string]: unknown;
  };
  [key: string]: unknown;
}

export interface ApplyOptions {
  fieldManager: string;
  /** Take ownership of fields other managers hold instead of failing with 409. */
  force: boolean;
}

export interface KubeApi {
  apply(ref: KubeObjectRef, object: KubeObject, options: ApplyOptions, signal: AbortSignal): Promise<KubeObject>;
  get(ref: KubeObjectRef, signal: AbortSignal): Promise<KubeObject | undefined>;
  close(): Promise<void>;
}

const MAX_OBJECT_BYTES = 4 * 1024 * 1024;

export class HttpKubeApi implements KubeApi {
  constructor(
    private readonly http: OutboundHttp,
    private readonly server: URL,
    private readonly token?: string,
  ) {}

  async apply(ref: KubeObjectRef, object: KubeObject, options: ApplyOptions, signal: AbortSignal): Promise<KubeObject> {
    const url = this.url(ref);
    url.searchParams.set('fieldManager', options.fieldManager);
    if (options.force) url.searchParams.set('force', 'true');
    // JSON is valid YAML, so it can go out as an apply patch as it is.
    const answer = await this.send(
      'PATCH',
      url,
      `apply ${describeRef(ref)}`,
      signal,
      Buffer.from(JSON.stringify(object)),
      'application/apply-patch+yaml',
    );
    if (answer.status !== 200 && answer.status !== 201) throw this.failure(answer, ref, `apply ${describeRef(ref)}`);
    return this.parseObject(answer, `apply ${describeRef(ref)}`);
  }

  async get(ref: KubeObjectRef, signal: AbortSignal): Promise<KubeObject | undefined> {
    const answer = await this.send('GET', this.url(ref), `get ${describeRef(ref)}`, signal);
    if (
      answer.status === 404 &&
      statusOf(answer)?.reason === 'NotFound' &&
      statusOf(answer)?.details?.name === ref.name
    )
      return undefined;
    if (answer.status !== 200) throw this.failure(answer, ref, `get ${describeRef(ref)}`);
    return this.parseObject(answer, `get ${describeRef(ref)}`);
  }

  async close(): Promise<void> {
    await this.http.close();
  }

  private url(ref: KubeObjectRef): URL {
    const base = ref.apiVersion.includes('/') ? `/apis/${ref.apiVersion}` : `/api/${ref.apiVersion}`;
    const scope = ref.namespace ? `/namespaces/${encodeURIComponent(ref.namespace)}` : '';
    return new URL(
      `${this.server.pathname.replace(/\/$/, '')}${base}${scope}/${ref.plural}/${encodeURIComponent(ref.name)}`,
      this.server,
    );
  }

  private send(
    method: string,
    url: URL,
    operation: string,
    signal: AbortSignal,
    body?: Buffer,
    contentType?: string,
  ): Promise<HttpAnswer> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (contentType) headers['content-type'] = contentType;
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    // The API server does not redirect these calls; a redirect would carry the token elsewhere.
    return this.http.send({ method, url, headers, body, operation, maxResponseBytes: MAX_OBJECT_BYTES }, signal);
  }

  private parseObject(answer: HttpAnswer, operation: string): KubeObject {
    try {
      const parsed = JSON.parse(answer.body.toString('utf8')) as KubeObject;
      if (
        typeof parsed === 'object' &&
        parsed !== null &&
        typeof parsed.metadata === 'object' &&
        parsed.metadata !== null
      )
        return parsed;
    } catch {
      // fall through
    }
    throw this.http.error('protocol', 'API server answer is not a Kubernetes object', operation, {
      status: answer.status,
    });
  }

  private failure(answer: HttpAnswer, ref: KubeObjectRef, operation: string) {
    const status = statusOf(answer);
    const reason = status?.reason;
    const message = sanitize(status?.message);
    const extra: Record<string, unknown> = { status: answer.status, ...(reason ? { reason } : {}) };
    const where = describeRef(ref);
    switch (true) {
      case answer.status === 401:
        return this.http.error('auth', `API server rejected the credentials`, operation, extra);
      case answer.status === 403:
        return this.http.error('auth', `not allowed to ${operation}${message ? `: ${message}` : ''}`, operation, extra);
      case answer.status === 404:
        // a missing namespace, or a missing CRD (Ratify not installed): not fixed by retrying
        return this.http.error('not-found', `${where}: ${message || 'not found'}`, operation, extra);
      case answer.status === 409: {
        const conflicts = (status?.details?.causes ?? [])
          .filter((cause) => cause?.reason === 'FieldManagerConflict' || cause?.field)
          .map((cause) => ({
            field: sanitize(cause.field),
            manager: /conflict with "([^"]{1,128})"/.exec(cause.message ?? '')?.[1],
          }))
          .slice(0, 20);
        return this.http.error('conflict', `${where}: ${message || 'conflict'}`, operation, { ...extra, conflicts });
      }
      case answer.status === 429 || answer.status >= 500:
        return this.http.error(
          'server',
          `API server answered ${answer.status}${message ? `: ${message}` : ''}`,
          operation,
          extra,
        );
      case answer.status >= 400:
        return this.http.error(
          'rejected',
          `${where}: ${message || `API server answered ${answer.status}`}`,
          operation,
          extra,
        );
      default:
        return this.http.error('protocol', `API server answered ${answer.status}`, operation, extra);
    }
  }
}

interface KubeStatus {
  kind?: string;
  reason?: string;
  message?: string;
  details?: { name?: string; causes?: Array<{ reason?: string; message?: string; field?: string }> };
}

function statusOf(answer: HttpAnswer): KubeStatus | undefined {
  try {
    const parsed = JSON.parse(answer.body.toString('utf8')) as KubeStatus;
    return parsed?.kind === 'Status' ? parsed : undefined;
  } catch {
    return undefined;
  }
}

function sanitize(text: string | undefined): string {
  return (text ?? '').replace(/\p{Cc}+/gu, ' ').slice(0, 300);
}

export function describeRef(ref: KubeObjectRef): string {
  const kind = ref.plural.replace(/s$/, '');
  return ref.namespace ? `${kind} ${ref.namespace}/${ref.name}` : `${kind} ${ref.name}`;
}
