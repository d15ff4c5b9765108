import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as path from 'node:path';
import { consumerValidators, ratifyVerifierProblems } from './consumer-rules';
import { CrdValidator, objectMetaProblems } from './crd-schemas';
import { freePort, tempDir } from './server-process';

/**
 * A Kubernetes API double (no kube-apiserver can run here) serving over HTTPS, with a certificate
 * for 127.0.0.1 made by the openssl CLI, the few endpoints the kubernetes driver uses:
 *   GET   /api/v1/namespaces/{ns}/configmaps/{name}
 *   PATCH /api/v1/namespaces/{ns}/configmaps/{name}?fieldManager=…&force=…        (server-side apply)
 *   GET   /apis/config.ratify.deislabs.io/v1beta1/keymanagementproviders/{name}     (cluster-scoped)
 *   PATCH /apis/config.ratify.deislabs.io/v1beta1/keymanagementproviders/{name}?fieldManager=…
 *   GET / PATCH /apis/config.ratify.deislabs.io/v1beta1/verifiers/{name}                (cluster-scoped)
 *
 * Server-side apply, simplified but with the semantics the driver relies on: every leaf field
 * (arrays count as leaves) has a set of owning field managers. An apply that sets a field to a value
 * different from what another manager owns fails with 409 Conflict listing the fields — unless
 * `force=true`, which moves ownership to the applier. Same value → shared ownership. Fields the
 * applier owned before and no longer sends are removed unless someone else owns them.
 * `resourceVersion` changes only when the object does. Bearer-token auth; unknown namespace → 404;
 * Ratify CRD can be "not installed" (404 page not found, as a real API server answers).
 *
 * Like an API server, it validates the object an apply would store before storing it and answers
 * 422 Invalid: custom resources against their CRD from ../shared/schemas (test/support/crd-schemas.ts:
 * the OpenAPI schema, unknown fields included, and the CRD's CEL rules), ConfigMaps against the
 * core rules the driver can break (ObjectMeta, data keys, data and binaryData disjoint, 1 MiB).
 */
export interface KubeRef {
  apiVersion: string;
  plural: string;
  namespace?: string;
  name: string;
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
interface Field {
  value: Json;
  managers: Set<string>;
}
interface StoredObject {
  apiVersion: string;
  kind: string;
  fields: Map<string, Field>; // key: JSON of the path segments
  resourceVersion: number;
  uid: string;
}

export interface ApplyOutcome {
  status: number;
  body: Record<string, unknown>;
}

const IDENTITY_PATHS = new Set([
  JSON.stringify(['apiVersion']),
  JSON.stringify(['kind']),
  JSON.stringify(['metadata', 'name']),
  JSON.stringify(['metadata', 'namespace']),
]);

export class KubeApiDouble {
  readonly token = `kube-token-${Math.random().toString(36).slice(2)}`;
  readonly namespaces = new Set(['default', 'signet-system']);
  ratifyInstalled = true;
  /** Applies refused with 422 and why. */
  readonly rejected: Array<{ ref: KubeRef; problems: string[] }> = [];
  readonly requests: Array<{ method: string; path: string; query: Record<string, string>; contentType?: string }> = [];
  private readonly objects = new Map<string, StoredObject>();
  private nextResourceVersion = 1;

  private constructor(
    private readonly server: https.Server,
    readonly port: number,
    readonly caPem: string,
    private readonly dir: string,
  ) {}

  static async start(): Promise<KubeApiDouble> {
    const dir = tempDir('kube-api-double-');
    const keyPath = path.join(dir, 'server.key');
    const certPath = path.join(dir, 'server.crt');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-keyout',
        keyPath,
        '-out',
        certPath,
        '-days',
        '2',
        '-subj',
        '/CN=kube-api-double',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
        '-addext',
        'basicConstraints=critical,CA:TRUE',
      ],
      { stdio: 'ignore' },
    );
    const certPem = fs.readFileSync(certPath, 'utf8');
    const port = await freePort();
    const server = https.createServer({ key: fs.readFileSync(keyPath), cert: certPem });
    const double = new KubeApiDouble(server, port, certPem, dir);
    server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => double.handle(req, res));
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    return double;
  }

  get url(): string {
    return `https://127.0.0.1:${this.port}`;
  }

  /** A self-contained kubeconfig for this server (JSON, or YAML as kubectl writes it). */
  kubeconfig(format: 'json' | 'yaml' = 'json', overrides: { token?: string; caPem?: string } = {}): string {
    const ca = Buffer.from(overrides.caPem ?? this.caPem).toString('base64');
    const token = overrides.token ?? this.token;
    if (format === 'yaml') {
      return [
        'apiVersion: v1',
        'kind: Config',
        'clusters:',
        '- cluster:',
        `    certificate-authority-data: ${ca}`,
        `    server: ${this.url}`,
        '  name: double',
        'contexts:',
        '- context:',
        '    cluster: double',
        '    namespace: signet-system',
        '    user: signet',
        '  name: signet@double',
        'current-context: signet@double',
        'preferences: {}',
        'users:',
        '- name: signet',
        '  user:',
        `    token: ${token}`,
        '',
      ].join('\n');
    }
    return JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'double', cluster: { server: this.url, 'certificate-authority-data': ca } }],
      contexts: [{ name: 'signet@double', context: { cluster: 'double', user: 'signet', namespace: 'signet-system' } }],
      'current-context': 'signet@double',
      users: [{ name: 'signet', user: { token } }],
    });
  }

  /** The stored object as the API would return it, or undefined. */
  get(ref: KubeRef): Record<string, unknown> | undefined {
    const stored = this.objects.get(refKey(ref));
    return stored ? this.render(ref, stored) : undefined;
  }

  /** Who owns which fields, e.g. `{ signet: ['data.truststore.pem', …] }`. */
  owners(ref: KubeRef): Record<string, string[]> {
    const stored = this.objects.get(refKey(ref));
    const result: Record<string, string[]> = {};
    for (const [key, field] of stored?.fields ?? []) {
      for (const manager of field.managers) (result[manager] ??= []).push((JSON.parse(key) as string[]).join('.'));
    }
    return result;
  }

  /** Server-side apply as field manager `manager` — what the HTTP PATCH does; tests use it to play `kubectl`. */
  apply(ref: KubeRef, body: Record<string, unknown>, manager: string, force = false): ApplyOutcome {
    if (body.apiVersion !== ref.apiVersion || typeof body.kind !== 'string')
      return status(400, 'BadRequest', 'apiVersion and kind must match the URL');
    const metadata = (body.metadata ?? {}) as Record<string, unknown>;
    if (metadata.name !== ref.name) return status(400, 'BadRequest', 'metadata.name must match the URL');
    if (ref.namespace !== undefined && metadata.namespace !== undefined && metadata.namespace !== ref.namespace)
      return status(400, 'BadRequest', 'the namespace of the object does not match the namespace on the request');

    const key = refKey(ref);
    const existing = this.objects.get(key);
    const applied = new Map<string, Json>();
    flatten(body as Json, [], applied);
    for (const identity of IDENTITY_PATHS) applied.delete(identity);

    const conflicts: Array<{ field: string; manager: string }> = [];
    for (const [path, value] of applied) {
      const field = existing?.fields.get(path);
      if (!field || deepEqual(field.value, value)) continue;
      for (const owner of field.managers)
        if (owner !== manager)
          conflicts.push({ field: `.${(JSON.parse(path) as string[]).join('.')}`, manager: owner });
    }
    if (conflicts.length && !force) {
      const managers = [...new Set(conflicts.map((c) => c.manager))];
      return status(
        409,
        'Conflict',
        `Apply failed with ${conflicts.length} conflict${conflicts.length > 1 ? 's' : ''}: ${managers.map((m) => `conflict with "${m}"`).join(', ')}`,
        {
          causes: conflicts.map((c) => ({
            reason: 'FieldManagerConflict',
            message: `conflict with "${c.manager}"`,
            field: c.field,
          })),
        },
      );
    }

    const stored: StoredObject = existing ?? {
      apiVersion: ref.apiVersion,
      kind: body.kind,
      fields: new Map(),
      resourceVersion: 0,
      uid: `uid-${Math.random().toString(36).slice(2)}`,
    };
    // What the apply would store, validated before anything changes.
    const merged = new Map([...stored.fields].map(([path, field]) => [path, field.value]));
    for (const [path, field] of stored.fields)
      if (!applied.has(path) && field.managers.size === 1 && field.managers.has(manager)) merged.delete(path);
    for (const [path, value] of applied) merged.set(path, value);
    const candidate: Record<string, unknown> = { apiVersion: ref.apiVersion, kind: body.kind };
    for (const [path, value] of merged) setPath(candidate, JSON.parse(path) as string[], value);
    candidate.metadata = {
      ...((candidate.metadata as Record<string, unknown>) ?? {}),
      name: ref.name,
      ...(ref.namespace ? { namespace: ref.namespace } : {}),
    };
    const providers = [...this.objects.keys()]
      .filter((k) => k.startsWith('config.ratify.deislabs.io/v1beta1|keymanagementproviders|'))
      .map((k) => k.split('|')[3]);
    const invalid = validationProblems(ref, candidate, providers);
    if (invalid.length) {
      this.rejected.push({ ref, problems: invalid });
      return status(422, 'Invalid', `${String(body.kind)} "${ref.name}" is invalid: ${invalid.join('; ')}`, {
        name: ref.name,
        kind: body.kind,
        causes: invalid.map((message) => ({ reason: 'FieldValueInvalid', message })),
      });
    }
    let changed = !existing;
    for (const [path, value] of applied) {
      const field = stored.fields.get(path);
      if (!field) {
        stored.fields.set(path, { value, managers: new Set([manager]) });
        changed = true;
      } else if (!deepEqual(field.value, value)) {
        field.value = value;
        field.managers = new Set([manager]); // force (or no other owner): the applier takes it over
        changed = true;
      } else {
        field.managers.add(manager);
      }
    }
    for (const [path, field] of [...stored.fields]) {
      if (applied.has(path) || !field.managers.has(manager)) continue;
      field.managers.delete(manager);
      if (field.managers.size === 0) {
        stored.fields.delete(path);
        changed = true;
      }
    }
    if (changed) stored.resourceVersion = this.nextResourceVersion++;
    this.objects.set(key, stored);
    return { status: existing ? 200 : 201, body: this.render(ref, stored) };
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) =>
      this.server.close(() => {
        fs.rmSync(this.dir, { recursive: true, force: true });
        resolve();
      }),
    );
  }

  private render(ref: KubeRef, stored: StoredObject): Record<string, unknown> {
    const object: Record<string, unknown> = {};
    for (const [key, field] of stored.fields) setPath(object, JSON.parse(key) as string[], field.value);
    const metadata = (object.metadata ?? {}) as Record<string, unknown>;
    const managedFields = [...new Set([...stored.fields.values()].flatMap((f) => [...f.managers]))]
      .sort()
      .map((manager) => ({
        manager,
        operation: 'Apply',
        apiVersion: stored.apiVersion,
        fieldsType: 'FieldsV1',
        fieldsV1: fieldsV1(
          [...stored.fields].filter(([, f]) => f.managers.has(manager)).map(([k]) => JSON.parse(k) as string[]),
        ),
      }));
    return {
      apiVersion: stored.apiVersion,
      kind: stored.kind,
      ...object,
      metadata: {
        ...metadata,
        name: ref.name,
        ...(ref.namespace ? { namespace: ref.namespace } : {}),
        uid: stored.uid,
        resourceVersion: String(stored.resourceVersion),
        managedFields,
      },
    };
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', this.url);
      const query = Object.fromEntries(url.searchParams);
      this.requests.push({
        method: req.method ?? '',
        path: url.pathname,
        query,
        contentType: req.headers['content-type'],
      });
      const reply = (outcome: ApplyOutcome) =>
        res.writeHead(outcome.status, { 'content-type': 'application/json' }).end(JSON.stringify(outcome.body));
      if (req.headers.authorization !== `Bearer ${this.token}`)
        return reply(status(401, 'Unauthorized', 'Unauthorized'));

      const ref = parsePath(url.pathname);
      if (!ref) return res.writeHead(404, { 'content-type': 'text/plain' }).end('404 page not found');
      if ((ref.plural === 'keymanagementproviders' || ref.plural === 'verifiers') && !this.ratifyInstalled)
        return res.writeHead(404, { 'content-type': 'text/plain' }).end('404 page not found');
      const notFound = () =>
        reply(status(404, 'NotFound', `${ref.plural} "${ref.name}" not found`, { name: ref.name, kind: ref.plural }));

      if (req.method === 'GET') {
        const object = this.get(ref);
        return object ? reply({ status: 200, body: object }) : notFound();
      }
      if (req.method === 'PATCH') {
        if (req.headers['content-type'] !== 'application/apply-patch+yaml')
          return reply(status(415, 'UnsupportedMediaType', 'the body of the request was in an unknown format'));
        if (!query.fieldManager)
          return reply(
            status(
              422,
              'Invalid',
              'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch',
            ),
          );
        if (ref.namespace !== undefined && !this.namespaces.has(ref.namespace))
          return reply(
            status(404, 'NotFound', `namespaces "${ref.namespace}" not found`, {
              name: ref.namespace,
              kind: 'namespaces',
            }),
          );
        let body: Record<string, unknown>;
        try {
          body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>; // the driver sends JSON, which is YAML
        } catch {
          return reply(status(400, 'BadRequest', 'error decoding YAML'));
        }
        return reply(this.apply(ref, body, query.fieldManager, query.force === 'true'));
      }
      return reply(status(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource'));
    });
  }
}

/** The validator of each custom resource the double serves (their CRDs in ../shared/schemas). */
function crdFor(ref: KubeRef): CrdValidator | undefined {
  if (ref.apiVersion === 'config.ratify.deislabs.io/v1beta1' && ref.plural === 'keymanagementproviders')
    return consumerValidators().keyManagementProvider;
  return undefined;
}

const CONFIGMAP_KEY = /^[-._a-zA-Z0-9]+$/;

function validationProblems(ref: KubeRef, object: Record<string, unknown>, providers: string[]): string[] {
  const crd = crdFor(ref);
  if (crd) return crd.problems(object);
  // No Verifier CRD in ../shared/schemas: Ratify v1.4.0's shape (test/support/consumer-rules.ts), and the providers it lists must exist.
  if (ref.plural === 'verifiers')
    return [...objectMetaProblems(object, 'Cluster'), ...ratifyVerifierProblems(object, providers)];
  if (ref.apiVersion === 'v1' && ref.plural === 'configmaps') {
    const problems = objectMetaProblems(object, 'Namespaced');
    const data = (object.data ?? {}) as Record<string, unknown>;
    const binaryData = (object.binaryData ?? {}) as Record<string, unknown>;
    let size = 0;
    for (const [key, value] of Object.entries(data)) {
      if (!CONFIGMAP_KEY.test(key) || key.length > 253)
        problems.push(`data[${key}]: a valid config key must consist of alphanumeric characters, '-', '_' or '.'`);
      if (typeof value !== 'string') problems.push(`data[${key}]: must be a string`);
      else size += Buffer.byteLength(value);
    }
    for (const [key, value] of Object.entries(binaryData)) {
      if (!CONFIGMAP_KEY.test(key) || key.length > 253)
        problems.push(
          `binaryData[${key}]: a valid config key must consist of alphanumeric characters, '-', '_' or '.'`,
        );
      if (key in data) problems.push(`binaryData[${key}]: duplicate of key present in data`);
      if (typeof value !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(value))
        problems.push(`binaryData[${key}]: must be base64`);
      else size += Buffer.from(value, 'base64').length;
    }
    if (size > 1024 * 1024) problems.push('[]: Too long: must have at most 1048576 bytes');
    for (const key of Object.keys(object))
      if (!['apiVersion', 'kind', 'metadata', 'data', 'binaryData', 'immutable'].includes(key))
        problems.push(`${key}: unknown field`);
    return problems;
  }
  return [];
}

function parsePath(pathname: string): KubeRef | undefined {
  const core = /^\/api\/v1\/namespaces\/([^/]+)\/configmaps\/([^/]+)$/.exec(pathname);
  if (core)
    return {
      apiVersion: 'v1',
      plural: 'configmaps',
      namespace: decodeURIComponent(core[1]),
      name: decodeURIComponent(core[2]),
    };
  const ratify = /^\/apis\/config\.ratify\.deislabs\.io\/v1beta1\/(keymanagementproviders|verifiers)\/([^/]+)$/.exec(
    pathname,
  );
  if (ratify)
    return { apiVersion: 'config.ratify.deislabs.io/v1beta1', plural: ratify[1], name: decodeURIComponent(ratify[2]) };
  return undefined;
}

function refKey(ref: KubeRef): string {
  return `${ref.apiVersion}|${ref.plural}|${ref.namespace ?? ''}|${ref.name}`;
}

function status(code: number, reason: string, message: string, details?: Record<string, unknown>): ApplyOutcome {
  return {
    status: code,
    body: {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message,
      reason,
      ...(details ? { details } : {}),
      code,
    },
  };
}

function flatten(value: Json, path: string[], out: Map<string, Json>): void {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    for (const [key, child] of Object.entries(value)) flatten(child, [...path, key], out);
    return;
  }
  out.set(JSON.stringify(path), value);
}

function setPath(target: Record<string, unknown>, path: string[], value: Json): void {
  let node = target;
  for (const segment of path.slice(0, -1)) node = (node[segment] ??= {}) as Record<string, unknown>;
  node[path[path.length - 1]] = value;
}

function fieldsV1(paths: string[][]): Record<string, unknown> {
  const root: Record<string, unknown> = {};
  for (const path of paths) {
    let node = root;
    for (const segment of path) node = (node[`f:${segment}`] ??= {}) as Record<string, unknown>;
  }
  return root;
}

function deepEqual(a: Json, b: Json): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
