import * as fs from 'node:fs';
import * as path from 'node:path';
import { ADMIN_TOKEN_FILE } from '../../src/auth/admin-token.bootstrap';
import type { DistributionStatus, TargetStatus } from '../../src/distribution/distribution-status.service';
import { sleep, skopeo, TestRegistry } from '../support/registry';
import { tempDir } from '../support/server-process';
import type { TestApp } from '../support/test-app';

/** Distribution settings for tests on loopback registries: quick rounds and short backoff. */
export const FAST_DISTRIBUTION_ENV = {
  SIGNET_DISTRIBUTION_ALLOW_LOOPBACK: 'true',
  SIGNET_DISTRIBUTION_BACKOFF_BASE_MS: '200',
  SIGNET_DISTRIBUTION_BACKOFF_MAX_MS: '1000',
  SIGNET_DISTRIBUTION_INTERVAL_SECONDS: '2',
};

/** HTTP calls against the in-process app with the first-start admin token (or another). */
export function apiClient(t: TestApp) {
  const admin = fs.readFileSync(path.join(t.config.dataDir, ADMIN_TOKEN_FILE), 'utf8').trim();
  /** `token: null` calls without credentials. */
  const call = (
    method: 'GET' | 'POST' | 'PATCH' | 'DELETE',
    url: string,
    payload?: unknown,
    token: string | null = admin,
  ) =>
    t.app.inject({
      method,
      url,
      payload: payload as object,
      headers: token ? { authorization: `Bearer ${token}` } : {},
    });
  const ok = async (method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, payload?: unknown, expected?: number) => {
    const response = await call(method, url, payload);
    if (expected !== undefined ? response.statusCode !== expected : response.statusCode >= 300) {
      throw new Error(`${method} ${url} → ${response.statusCode}: ${response.body}`);
    }
    return response;
  };
  return {
    admin,
    call,
    ok,
    status: async (): Promise<DistributionStatus> => (await ok('GET', '/v1/distribution')).json(),
  };
}

export function targetsOf(status: DistributionStatus): Array<TargetStatus & { region: string }> {
  return status.regions.flatMap((region) => region.targets.map((target) => ({ ...target, region: region.name })));
}

/** Polls (every 100 ms, bounded) until `check` returns a value; the bound only fails a stuck test. */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined | false>,
  timeoutMs = 60_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await sleep(100);
  }
}

/** Waits until every named target (`region/target`, or all) holds the truststore's current version. */
export async function waitConverged(
  status: () => Promise<DistributionStatus>,
  names?: string[],
  timeoutMs = 60_000,
): Promise<DistributionStatus> {
  return waitFor(
    `convergence of ${names?.join(', ') ?? 'every target'}`,
    async () => {
      const current = await status();
      const targets = targetsOf(current).filter((t) => !names || names.includes(`${t.region}/${t.name}`));
      if (targets.length === 0) return false;
      return targets.every((t) => t.state === 'converged') ? current : false;
    },
    timeoutMs,
  );
}

export interface PulledArtifact {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the manifest is read loosely
  manifest: Record<string, any>;
  manifestRaw: Buffer;
  /** Layer content by title. */
  layers: Map<string, Buffer>;
}

/** Reads `repository:reference` back with skopeo (an independent client): raw manifest, then every blob via an OCI layout copy. */
export async function pullWithSkopeo(
  registry: TestRegistry,
  repository: string,
  reference = 'current',
): Promise<PulledArtifact> {
  const ref = `docker://${registry.host}/${repository}:${reference}`;
  const raw = await skopeo(['inspect', '--raw', '--tls-verify=false', ...registry.skopeoCreds(), ref]);
  if (raw.code !== 0) throw new Error(`skopeo inspect ${ref}: ${raw.stderr}`);
  const layout = tempDir('skopeo-layout-');
  try {
    const copy = await skopeo([
      'copy',
      '--src-tls-verify=false',
      ...(registry.auth === 'none' ? [] : ['--src-creds', `${registry.username}:${registry.password}`]),
      ref,
      `oci:${layout}:x`,
    ]);
    if (copy.code !== 0) throw new Error(`skopeo copy ${ref}: ${copy.stderr}`);
    const blob = (digest: string) =>
      fs.readFileSync(path.join(layout, 'blobs', 'sha256', digest.slice('sha256:'.length)));
    const manifest = JSON.parse(raw.stdout.toString('utf8'));
    const layers = new Map<string, Buffer>();
    for (const layer of manifest.layers as Array<{ digest: string; annotations: Record<string, string> }>) {
      layers.set(layer.annotations['org.opencontainers.image.title'], blob(layer.digest));
    }
    return { manifest, manifestRaw: raw.stdout, layers };
  } finally {
    fs.rmSync(layout, { recursive: true, force: true });
  }
}
