import * as http from 'node:http';
import { freePort } from './server-process';

/**
 * A Harbor double (no Harbor can run here): it serves the project-metadata part of Harbor's REST
 * API v2.0 and forwards everything else — the distribution API under /v2/ — to a real
 * docker-registry, so one endpoint behaves like a Harbor for the harbor driver.
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
const BOOLEAN_KEYS = new Set(['public', 'enable_content_trust', 'enable_content_trust_cosign', 'prevent_vul', 'auto_scan']);

export interface HarborDoubleOptions {
  /** Base URL of the real registry serving /v2/. */
  upstream: string;
  username: string;
  password: string;
  /** Project name → its metadata rows. */
  projects: Record<string, Record<string, string>>;
}

export class HarborDouble {
  readonly projects: Map<string, Map<string, string>>;
  readonly apiRequests: Array<{ method: string; path: string; isResourceName?: string }> = [];
  /** When set, metadata calls answer this status (e.g. 503) without touching state. */
  failApiWith?: number;

  private constructor(
    private readonly server: http.Server,
    readonly port: number,
    private readonly options: HarborDoubleOptions,
  ) {
    this.projects = new Map(Object.entries(options.projects).map(([name, meta]) => [name, new Map(Object.entries(meta))]));
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
    if ((req.url ?? '').startsWith('/api/')) {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => this.api(req, Buffer.concat(chunks), res));
      return;
    }
    this.forward(req, res);
  }

  /** Passes the request to the registry unchanged, Host included, so the registry's Location URLs point back here. */
  private forward(req: http.IncomingMessage, res: http.ServerResponse): void {
    const upstream = new URL(req.url ?? '/', this.options.upstream);
    const proxied = http.request(upstream, { method: req.method, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.rawHeaders);
      answer.pipe(res);
    });
    proxied.on('error', () => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
    req.pipe(proxied);
  }

  private api(req: http.IncomingMessage, body: Buffer, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', this.url);
    this.apiRequests.push({ method: req.method ?? '', path: url.pathname, isResourceName: req.headers['x-is-resource-name'] as string | undefined });
    const send = (status: number, payload?: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' }).end(payload === undefined ? '' : JSON.stringify(payload));
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
    return Buffer.from(header.slice(6), 'base64').toString('utf8') === `${this.options.username}:${this.options.password}`;
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
