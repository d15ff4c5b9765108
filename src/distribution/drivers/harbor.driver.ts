import { BasicCredentials, PushResult, TargetState, TrustTarget, TruststoreBundle } from './trust-target';
import { describeUrl, HttpAnswer, OutboundHttp } from './outbound-http';
import { OciRegistryDriver } from './oci-registry.driver';

/**
 * Harbor: the OCI push into `<harbor>/<project>/<repository>` (Harbor speaks the distribution API,
 * with bearer tokens from `/service/token`), then — when asked — the project's content-trust
 * metadata through Harbor's REST API v2.0:
 *
 *   GET  /api/v2.0/projects/{name}/metadatas/             → {"enable_content_trust":"true", …}
 *   POST /api/v2.0/projects/{name}/metadatas/             {"enable_content_trust":"true"}  (key absent)
 *   PUT  /api/v2.0/projects/{name}/metadatas/{meta_name}  {"enable_content_trust":"true"}  (key present)
 *
 * with `X-Is-Resource-Name: true` so a numeric project name is not taken for an id. Harbor's PUT
 * updates existing rows only — on a key the project does not have yet it answers 200 and changes
 * nothing — so the driver reads first, POSTs absent keys, PUTs present ones and reads again to verify.
 * Basic auth (user or robot account `robot$project+name`); the REST API does not challenge.
 *
 * Content trust is enforced on the projects named in `contentTrust.projects`, never on the project
 * holding the truststore artifact: Harbor's ContentTrust middleware answers 412
 * PROJECTPOLICYVIOLATION to manifest GET/HEAD of an artifact without a signature accessory in an
 * enforcing project, so the (unsigned) truststore would be unreadable — by this driver's read-back
 * and by every consumer pulling it — and the target would never converge again. The factory refuses
 * such a definition (docs/consumers.md, "Harbor").
 */
export const HARBOR_CONTENT_TRUST_KEYS = {
  notation: 'enable_content_trust',
  cosign: 'enable_content_trust_cosign',
} as const;
const MAX_METADATA_BYTES = 64 * 1024;

export interface HarborDriverConfig {
  endpoint: URL;
  project: string;
  repository: string;
  credentials?: BasicCredentials;
  /** `projects`: where the metadata is enforced (default: `project`, allowed only when nothing is switched on). */
  contentTrust?: { notation?: boolean; cosign?: boolean; projects?: string[] };
  http: OutboundHttp;
  now?: () => Date;
}

export class HarborDriver implements TrustTarget {
  readonly kind = 'harbor' as const;
  readonly description: string;
  private readonly oci: OciRegistryDriver;

  constructor(private readonly config: HarborDriverConfig) {
    this.description = config.http.target;
    this.oci = new OciRegistryDriver({
      endpoint: config.endpoint,
      repository: `${config.project}/${config.repository}`,
      credentials: config.credentials,
      http: config.http,
      kind: 'harbor',
      now: config.now,
    });
  }

  /** The projects whose content-trust metadata this target manages. */
  get contentTrustProjects(): string[] {
    return this.config.contentTrust?.projects ?? [this.config.project];
  }

  async push(bundle: TruststoreBundle, signal: AbortSignal): Promise<PushResult> {
    const result = await this.oci.push(bundle, signal);
    const desired = this.desiredMetadata();
    if (Object.keys(desired).length === 0) return result;
    const projectMetadata: Record<string, Record<string, string>> = {};
    for (const project of this.contentTrustProjects)
      projectMetadata[project] = await this.ensureMetadata(project, desired, signal);
    return { ...result, details: { ...result.details, projectMetadata } };
  }

  /** The OCI read-back; without the digest when a project's content-trust metadata has drifted, so the reconciler pushes again. */
  async readBack(signal: AbortSignal): Promise<TargetState> {
    const state = await this.oci.readBack(signal);
    const desired = this.desiredMetadata();
    if (Object.keys(desired).length === 0) return state;
    const projectMetadata: Record<string, Record<string, string>> = {};
    const drift: string[] = [];
    for (const project of this.contentTrustProjects) {
      const actual = await this.getMetadata(project, signal);
      projectMetadata[project] = pick(actual, Object.keys(desired));
      for (const [key, value] of Object.entries(desired)) if (actual[key] !== value) drift.push(`${project}: ${key}`);
    }
    if (drift.length === 0) return { ...state, details: { ...state.details, projectMetadata } };
    return {
      ...(state.version !== undefined ? { version: state.version } : {}),
      details: { ...state.details, heldDigest: state.digest, projectMetadataDrift: drift },
    };
  }

  async close(): Promise<void> {
    await this.oci.close();
  }

  private desiredMetadata(): Record<string, string> {
    const desired: Record<string, string> = {};
    const trust = this.config.contentTrust ?? {};
    if (trust.notation !== undefined) desired[HARBOR_CONTENT_TRUST_KEYS.notation] = String(trust.notation);
    if (trust.cosign !== undefined) desired[HARBOR_CONTENT_TRUST_KEYS.cosign] = String(trust.cosign);
    return desired;
  }

  private async ensureMetadata(
    project: string,
    desired: Record<string, string>,
    signal: AbortSignal,
  ): Promise<Record<string, string>> {
    const actual = await this.getMetadata(project, signal);
    for (const [key, value] of Object.entries(desired)) {
      if (actual[key] === value) continue;
      if (key in actual) {
        await this.write(project, 'PUT', `metadatas/${key}`, { [key]: value }, signal);
      } else {
        const added = await this.write(project, 'POST', 'metadatas/', { [key]: value }, signal, [409]);
        // 409: someone added it meanwhile; now it exists, so PUT works
        if (added.status === 409) await this.write(project, 'PUT', `metadatas/${key}`, { [key]: value }, signal);
      }
    }
    const after = await this.getMetadata(project, signal);
    const wrong = Object.entries(desired)
      .filter(([key, value]) => after[key] !== value)
      .map(([key]) => key);
    if (wrong.length)
      throw this.config.http.error(
        'protocol',
        `project ${project}: metadata ${wrong.join(', ')} did not take the written value`,
        'project metadata',
        { project, keys: wrong },
      );
    return pick(after, Object.keys(desired));
  }

  private async getMetadata(project: string, signal: AbortSignal): Promise<Record<string, string>> {
    const answer = await this.api(project, 'GET', 'metadatas/', undefined, signal);
    if (answer.status !== 200) throw this.failure(project, answer, 'GET project metadata');
    let parsed: unknown;
    try {
      parsed = JSON.parse(answer.body.toString('utf8'));
    } catch {
      throw this.config.http.error('protocol', 'project metadata is not JSON', 'GET project metadata', {
        status: answer.status,
      });
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw this.config.http.error('protocol', 'project metadata is not an object', 'GET project metadata', {
        status: answer.status,
      });
    }
    return Object.fromEntries(
      Object.entries(parsed as Record<string, unknown>).filter(
        (entry): entry is [string, string] => typeof entry[1] === 'string',
      ),
    );
  }

  private async write(
    project: string,
    method: 'PUT' | 'POST',
    suffix: string,
    body: Record<string, string>,
    signal: AbortSignal,
    tolerated: number[] = [],
  ): Promise<HttpAnswer> {
    const answer = await this.api(project, method, suffix, Buffer.from(JSON.stringify(body)), signal);
    if (answer.status !== 200 && answer.status !== 201 && !tolerated.includes(answer.status))
      throw this.failure(project, answer, `${method} project metadata`);
    return answer;
  }

  private api(
    project: string,
    method: string,
    suffix: string,
    body: Buffer | undefined,
    signal: AbortSignal,
  ): Promise<HttpAnswer> {
    const url = new URL(`/api/v2.0/projects/${encodeURIComponent(project)}/${suffix}`, this.config.endpoint);
    const headers: Record<string, string> = { accept: 'application/json', 'x-is-resource-name': 'true' };
    if (body) headers['content-type'] = 'application/json';
    if (this.config.credentials) {
      const { username, password } = this.config.credentials;
      headers.authorization = `Basic ${Buffer.from(`${username}:${password}`, 'utf8').toString('base64')}`;
    }
    // Harbor's API does not redirect; a redirect here would carry credentials elsewhere, so none are followed.
    return this.config.http.send(
      { method, url, headers, body, operation: 'project metadata', maxResponseBytes: MAX_METADATA_BYTES },
      signal,
    );
  }

  private failure(project: string, answer: HttpAnswer, operation: string) {
    const where = describeUrl(answer.url);
    const extra = { status: answer.status };
    if (answer.status === 401)
      return this.config.http.error('auth', `Harbor rejected the credentials for ${where}`, operation, extra);
    if (answer.status === 403)
      return this.config.http.error('auth', `Harbor denied ${operation} on ${where}`, operation, extra);
    if (answer.status === 404)
      return this.config.http.error('not-found', `Harbor project '${project}' not found`, operation, extra);
    if (answer.status === 429 || answer.status >= 500)
      return this.config.http.error('server', `Harbor answered ${answer.status} for ${where}`, operation, extra);
    if (answer.status >= 400)
      return this.config.http.error('rejected', `Harbor answered ${answer.status} for ${where}`, operation, extra);
    return this.config.http.error('protocol', `Harbor answered ${answer.status} for ${where}`, operation, extra);
  }
}

function pick(record: Record<string, string>, keys: string[]): Record<string, string> {
  return Object.fromEntries(keys.filter((k) => k in record).map((k) => [k, record[k]]));
}
