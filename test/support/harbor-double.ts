import * as http from 'node:http';
import { freePort } from './server-process';

/**
 * A Harbor double (no Harbor can run here): it serves the project-metadata part of Harbor's REST
 * API v2.0 and forwards everything else — the distribution API under /v2/ — to a real
 * docker-registry, so one endpoint behaves like a Harbor for the harbor driver.
 *
 * On /v2/ it applies Harbor's ContentTrust middleware (goharbor/harbor
 * src/server/middleware/contenttrust/contentrust.go, after v2.15.2; ../shared/schemas/README.md):
 * in a project whose metadata has `enable_content_trust` ("true": a Notation signature accessory
 * required) or `enable_content_trust_cosign` (a cosign one), GET/HEAD of an existing manifest
 * answers **412 PROJECTPOLICYVIOLATION** ("The image is not signed by notation.") unless
 *   - the artifact already has such a signature accessory (a manifest pushed into the repository
 *     whose `subject` is the artifact and whose artifactType/config is the Notation signature type;
 *     for cosign also a `sha256-<hex>.sig` tag); Harbor never verifies it, and neither does this;
 *   - the pull is a scanner's (an account with role `scanner`);
 *   - the token can push and the User-Agent contains `notation` or `cosign` (the signer bootstrap).
 * A missing manifest still answers 404. Accounts beyond the registry's own user are authenticated
 * here and forwarded with the registry's credentials, as Harbor's core talks to its registry.
 *
 * Modelled on Harbor's handler (src/server/v2.0/handler/project_metadata.go) and its DAO:
 *   GET    /api/v2.0/projects/{name}/metadatas/            → {"key":"value",…}
 *   POST   /api/v2.0/projects/{name}/metadatas/            one key; 409 when it already exists
 *   GET    /api/v2.0/projects/{name}/metadatas/{meta}      → {"meta":"value"} (or {})
 *   PUT    /api/v2.0/projects/{name}/metadatas/{meta}      one key; updates an existing row only —
 *                                                          on an absent key Harbor answers 200 and
 *                                                          changes nothing, and so does this double
 * Boolean keys (public, enable_content_trust, enable_content_trust_cosign, prevent_vul, auto_scan)
 * are normalised to "true"/"false"; unknown keys → 400. Basic auth; projects looked up by name
 * (the driver sends X-Is-Resource-Name: true).
 */
const BOOLEAN_KEYS = new Set([
  'public',
  'enable_content_trust',
  'enable_content_trust_cosign',
  'prevent_vul',
  'auto_scan',
]);
const NOTATION_SIGNATURE = 'application/vnd.cncf.notary.signature';
const COSIGN_SIGNATURE = 'application/vnd.dev.cosign.artifact.sig.v1+json';
const MANIFEST_TYPES =
  'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json';
type Accessory = 'signature.notation' | 'signature.cosign';

export interface HarborDoubleOptions {
  /** Base URL of the real registry serving /v2/. */
  upstream: string;
  /** The registry's own user: a robot that can push. */
  username: string;
  password: string;
  /** Project name → its metadata rows. */
  projects: Record<string, Record<string, string>>;
  /** More accounts: `pull` (read only) or `scanner` (Harbor's scanner pulls skip the policy check). */
  accounts?: Array<{ username: string; password: string; role: 'pull' | 'scanner' }>;
}

interface Caller {
  push: boolean;
  scanner: boolean;
  /** The Authorization header to send upstream. */
  upstreamAuthorization?: string;
}

export class HarborDouble {
  readonly projects: Map<string, Map<string, string>>;
  readonly apiRequests: Array<{ method: string; path: string; isResourceName?: string }> = [];
  /** When set, metadata calls answer this status (e.g. 503) without touching state. */
  failApiWith?: number;
  /** Manifest pulls refused by the content-trust check, e.g. `GET platform/truststore:current`. */
  readonly refusals: string[] = [];
  /** Every manifest GET/HEAD, refused or not, e.g. `GET signet/truststore:current`. */
  readonly manifestReads: string[] = [];
  /** `<repository>@<digest>` → signature accessories pushed for it. */
  private readonly accessories = new Map<string, Set<Accessory>>();

  private constructor(
    private readonly server: http.Server,
    readonly port: number,
    private readonly options: HarborDoubleOptions,
  ) {
    this.projects = new Map(
      Object.entries(options.projects).map(([name, meta]) => [name, new Map(Object.entries(meta))]),
    );
  }

  static async start(options: HarborDoubleOptions): Promise<HarborDouble> {
    const port = await freePort();
    const server = http.createServer();
    const double = new HarborDouble(server, port, options);
    server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => double.handle(req, res));
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    return double;
  }

  get host(): string {
    return `127.0.0.1:${this.port}`;
  }

  get url(): string {
    return `http://${this.host}`;
  }

  metadata(project: string): Record<string, string> {
    return Object.fromEntries(this.projects.get(project) ?? []);
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      if ((req.url ?? '').startsWith('/api/')) return this.api(req, body, res);
      this.registry(req, body, res).catch(() => {
        if (!res.headersSent) res.writeHead(502);
        res.end();
      });
    });
  }

  /** The distribution API: the content-trust check on manifest pulls, accessories noted on manifest pushes, the rest passed on. */
  private async registry(req: http.IncomingMessage, body: Buffer, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.url);
    const caller = this.caller(req.headers.authorization);
    if (caller === 'unauthorized')
      return this.registryError(res, 401, 'UNAUTHORIZED', 'unauthorized to access repository');
    const manifest = /^\/v2\/(.+)\/manifests\/([^/]+)$/.exec(url.pathname);
    const method = req.method ?? 'GET';
    if (caller && !caller.push && !['GET', 'HEAD'].includes(method))
      return this.registryError(res, 403, 'DENIED', 'requested access to the resource is denied');
    const { 'transfer-encoding': _chunked, ...passed } = req.headers; // the body is passed on whole
    const headers = {
      ...passed,
      ...(caller?.upstreamAuthorization ? { authorization: caller.upstreamAuthorization } : {}),
    };

    if (manifest && (method === 'GET' || method === 'HEAD') && caller) {
      const [, repository, reference] = manifest;
      this.manifestReads.push(`${method} ${repository}:${decodeURIComponent(reference)}`);
      const refusal = await this.contentTrustRefusal(
        repository,
        decodeURIComponent(reference),
        caller,
        String(req.headers['user-agent'] ?? ''),
        headers,
      );
      if (refusal) {
        this.refusals.push(`${method} ${repository}:${decodeURIComponent(reference)}`);
        return this.registryError(res, 412, 'PROJECTPOLICYVIOLATION', refusal, method === 'HEAD');
      }
    }
    const answer = await this.upstream(method, url.pathname + url.search, headers, body);
    if (manifest && method === 'PUT' && answer.status === 201)
      this.noteAccessory(manifest[1], decodeURIComponent(manifest[2]), body);
    res.writeHead(answer.status, answer.rawHeaders);
    res.end(method === 'HEAD' ? undefined : answer.body);
  }

  /** Harbor's reason to refuse this pull, or undefined (contentrust.go's order: cosign, then notation). */
  private async contentTrustRefusal(
    repository: string,
    reference: string,
    caller: Caller,
    userAgent: string,
    headers: http.IncomingHttpHeaders,
  ): Promise<string | undefined> {
    const metadata = this.projects.get(repository.split('/')[0]);
    const required: Array<[Accessory, string]> = [];
    if (metadata?.get('enable_content_trust_cosign') === 'true')
      required.push(['signature.cosign', 'The image is not signed by cosign.']);
    if (metadata?.get('enable_content_trust') === 'true')
      required.push(['signature.notation', 'The image is not signed by notation.']);
    if (!required.length) return undefined;
    let digest = /^sha256:[0-9a-f]{64}$/.test(reference) ? reference : undefined;
    if (!digest) {
      const head = await this.upstream(
        'HEAD',
        `/v2/${repository}/manifests/${encodeURIComponent(reference)}`,
        { authorization: headers.authorization, accept: MANIFEST_TYPES },
        Buffer.alloc(0),
      );
      if (head.status !== 200) return undefined; // missing: the registry's own 404 (Harbor's artifact lookup fails the same way)
      digest = String(head.headers['docker-content-digest']);
    }
    if (caller.scanner) return undefined;
    if (caller.push && /notation|cosign/i.test(userAgent)) return undefined; // the signer's bootstrap pull
    const held = this.accessories.get(`${repository}@${digest}`) ?? new Set<Accessory>();
    return required.find(([type]) => !held.has(type))?.[1];
  }

  private noteAccessory(repository: string, reference: string, body: Buffer): void {
    const note = (digest: string, type: Accessory) => {
      const key = `${repository}@${digest}`;
      if (!this.accessories.has(key)) this.accessories.set(key, new Set());
      this.accessories.get(key)!.add(type);
    };
    const cosignTag = /^sha256-([0-9a-f]{64})\.sig$/.exec(reference);
    if (cosignTag) note(`sha256:${cosignTag[1]}`, 'signature.cosign');
    try {
      const parsed = JSON.parse(body.toString('utf8')) as {
        subject?: { digest?: string };
        artifactType?: string;
        config?: { mediaType?: string };
      };
      const type = parsed.artifactType ?? parsed.config?.mediaType;
      if (typeof parsed.subject?.digest !== 'string') return;
      if (type === NOTATION_SIGNATURE) note(parsed.subject.digest, 'signature.notation');
      if (type === COSIGN_SIGNATURE) note(parsed.subject.digest, 'signature.cosign');
    } catch {
      // not JSON: not an accessory
    }
  }

  /** Who is calling: the registry's own user (push), a double-side account, nobody (the registry challenges), or a wrong password. */
  private caller(header: string | undefined): Caller | undefined | 'unauthorized' {
    if (!header?.startsWith('Basic ')) return undefined;
    const decoded = Buffer.from(header.slice(6), 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    const [username, password] = [decoded.slice(0, colon), decoded.slice(colon + 1)];
    if (username === this.options.username)
      return password === this.options.password ? { push: true, scanner: false } : 'unauthorized';
    const account = this.options.accounts?.find((a) => a.username === username);
    if (!account || account.password !== password) return 'unauthorized';
    const upstreamAuthorization = `Basic ${Buffer.from(`${this.options.username}:${this.options.password}`, 'utf8').toString('base64')}`;
    return { push: false, scanner: account.role === 'scanner', upstreamAuthorization };
  }

  private registryError(
    res: http.ServerResponse,
    status: number,
    code: string,
    message: string,
    headOnly = false,
  ): void {
    res.writeHead(status, { 'content-type': 'application/json', 'docker-distribution-api-version': 'registry/2.0' });
    res.end(headOnly ? undefined : JSON.stringify({ errors: [{ code, message }] }));
  }

  /** One exchange with the registry, Host included, so its Location URLs point back here. */
  private upstream(
    method: string,
    pathAndQuery: string,
    headers: http.IncomingHttpHeaders,
    body: Buffer,
  ): Promise<{ status: number; headers: http.IncomingHttpHeaders; rawHeaders: string[]; body: Buffer }> {
    return new Promise((resolve, reject) => {
      const proxied = http.request(
        new URL(pathAndQuery, this.options.upstream),
        { method, headers: { ...headers, 'content-length': String(body.length) } },
        (answer) => {
          const chunks: Buffer[] = [];
          answer.on('data', (chunk: Buffer) => chunks.push(chunk));
          answer.on('end', () =>
            resolve({
              status: answer.statusCode ?? 502,
              headers: answer.headers,
              rawHeaders: answer.rawHeaders,
              body: Buffer.concat(chunks),
            }),
          );
          answer.on('error', reject);
        },
      );
      proxied.on('error', reject);
      proxied.end(body);
    });
  }

  private api(req: http.IncomingMessage, body: Buffer, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', this.url);
    this.apiRequests.push({
      method: req.method ?? '',
      path: url.pathname,
      isResourceName: req.headers['x-is-resource-name'] as string | undefined,
    });
    const send = (status: number, payload?: unknown) => {
      res
        .writeHead(status, { 'content-type': 'application/json' })
        .end(payload === undefined ? '' : JSON.stringify(payload));
    };
    const error = (status: number, code: string, message: string) => send(status, { errors: [{ code, message }] });
    if (this.failApiWith) return error(this.failApiWith, 'INTERNAL_SERVER_ERROR', 'injected failure');
    if (!this.authorized(req.headers.authorization)) return error(401, 'UNAUTHORIZED', 'unauthorized');

    const match = /^\/api\/v2\.0\/projects\/([^/]+)\/metadatas\/([^/]*)$/.exec(url.pathname);
    if (!match) return error(404, 'NOT_FOUND', 'no such API');
    const project = this.projects.get(decodeURIComponent(match[1]));
    if (!project) return error(404, 'NOT_FOUND', `project ${decodeURIComponent(match[1])} not found`);
    const metaName = decodeURIComponent(match[2]);

    let payload: Record<string, unknown> = {};
    if (req.method === 'POST' || req.method === 'PUT') {
      try {
        payload = JSON.parse(body.toString('utf8') || '{}') as Record<string, unknown>;
      } catch {
        return error(400, 'BAD_REQUEST', 'invalid JSON');
      }
    }

    switch (`${req.method} ${metaName ? 'one' : 'all'}`) {
      case 'GET all':
        return send(200, Object.fromEntries(project));
      case 'GET one':
        return send(200, project.has(metaName) ? { [metaName]: project.get(metaName) } : {});
      case 'POST all': {
        const validated = validate(payload);
        if (typeof validated === 'string') return error(400, 'BAD_REQUEST', validated);
        if (project.has(validated[0])) return error(409, 'CONFLICT', `metadata ${validated[0]} already exists`);
        project.set(validated[0], validated[1]);
        return send(200);
      }
      case 'PUT one': {
        const validated = validate({ [metaName]: payload[metaName] });
        if (typeof validated === 'string') return error(400, 'BAD_REQUEST', validated);
        if (project.has(metaName)) project.set(metaName, validated[1]); // Harbor: UPDATE … WHERE name=? — absent rows stay absent
        return send(200);
      }
      case 'DELETE one':
        project.delete(metaName);
        return send(200);
      default:
        return error(405, 'METHOD_NOT_ALLOWED', 'method not allowed');
    }
  }

  private authorized(header: string | undefined): boolean {
    if (!header?.startsWith('Basic ')) return false;
    return (
      Buffer.from(header.slice(6), 'base64').toString('utf8') === `${this.options.username}:${this.options.password}`
    );
  }
}

function validate(metadata: Record<string, unknown>): [string, string] | string {
  const entries = Object.entries(metadata);
  if (entries.length !== 1) return 'only allow one key/value pair';
  const [key, value] = entries[0];
  if (!BOOLEAN_KEYS.has(key)) return `invalid key: ${key}`;
  const text = String(value).toLowerCase();
  if (text !== 'true' && text !== 'false' && text !== '1' && text !== '0') return `invalid value: ${String(value)}`;
  return [key, text === 'true' || text === '1' ? 'true' : 'false'];
}
