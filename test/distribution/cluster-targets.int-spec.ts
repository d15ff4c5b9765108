import { X509Certificate } from 'node:crypto';
import { DEV_ROOT_CA } from '../../src/ca/dev-hierarchy.bootstrap';
import { DistributionStatusService } from '../../src/distribution/distribution-status.service';
import { query } from '../support/database';
import { HarborDouble } from '../support/harbor-double';
import { KubeApiDouble, KubeRef } from '../support/kube-api-double';
import { skopeo, TestRegistry } from '../support/registry';
import { startTestApp, TestApp } from '../support/test-app';
import { apiClient, targetsOf, waitConverged, waitFor } from './distribution-helpers';

/**
 * Kubernetes and Harbor targets declared through the API and reconciled by the app. Both remote
 * ends are DOUBLES (no kube-apiserver or Harbor can run here): test/support/kube-api-double.ts
 * serves server-side apply over HTTPS; test/support/harbor-double.ts serves Harbor's
 * project-metadata API in front of a real docker-registry.
 */
describe('distribution to Kubernetes and Harbor targets (API doubles)', () => {
  let t: TestApp;
  let api: ReturnType<typeof apiClient>;
  let kube: KubeApiDouble;
  let registry: TestRegistry;
  let harbor: HarborDouble;
  const configMap: KubeRef = {
    apiVersion: 'v1',
    plural: 'configmaps',
    namespace: 'signet-system',
    name: 'signet-truststore',
  };
  const provider: KubeRef = {
    apiVersion: 'config.ratify.deislabs.io/v1beta1',
    plural: 'keymanagementproviders',
    name: 'signet-roots',
  };

  beforeAll(async () => {
    kube = await KubeApiDouble.start();
    registry = await TestRegistry.start({ auth: 'htpasswd', username: 'robot$platform+signet' });
    harbor = await HarborDouble.start({
      upstream: registry.url,
      username: registry.username,
      password: registry.password,
      projects: { signet: { public: 'false' }, platform: { public: 'false' } },
    });
    t = await startTestApp({
      SIGNET_AUDIT_CHECKPOINT_INTERVAL_SECONDS: '0',
      SIGNET_DISTRIBUTION_ALLOW_LOOPBACK: 'true',
      SIGNET_DISTRIBUTION_BACKOFF_BASE_MS: '200',
      SIGNET_DISTRIBUTION_BACKOFF_MAX_MS: '1000',
      SIGNET_DISTRIBUTION_INTERVAL_SECONDS: '2',
    });
    api = apiClient(t);
    await api.ok('POST', '/v1/truststores', { name: 'clusters', cas: [DEV_ROOT_CA] });
    await api.ok('POST', '/v1/regions', { name: 'edge' });
  }, 120_000);

  afterAll(async () => {
    await t?.close();
    await kube?.close();
    await harbor?.close();
    await registry?.dispose();
  });

  it('kubernetes: the ConfigMap holds every layer, the Ratify providers the roots and TSA roots, the Verifier both; the token never shows', async () => {
    const created = await api.ok(
      'POST',
      '/v1/regions/edge/targets',
      {
        name: 'cluster',
        kind: 'kubernetes',
        endpoint: kube.url,
        namespace: 'signet-system',
        truststore: 'clusters',
        tls: { caPem: kube.caPem },
        credentials: { token: kube.token },
        ratify: { keyManagementProviderName: 'signet-roots', verifier: true },
      },
      201,
    );
    expect(created.body).not.toContain(kube.token);
    await waitConverged(api.status, ['edge/cluster']);

    const truststore = (await api.ok('GET', '/v1/truststores/clusters')).json();
    const cm = kube.get(configMap) as {
      data: Record<string, string>;
      binaryData: Record<string, string>;
      metadata: { annotations: Record<string, string> };
    };
    expect(cm.metadata.annotations).toMatchObject({
      'signet.io/truststore-digest': truststore.digest,
      'signet.io/truststore-version': String(truststore.version),
    });
    expect(Object.keys(cm.data).sort()).toEqual([
      'kyverno-image-validating-policy.yaml',
      'kyverno-notary-attestor.yaml',
      'ratify-kmp.yaml',
      'roots.pem',
      'trust-manager-bundle.yaml',
      'truststore.pem',
    ]);
    expect(Object.keys(cm.binaryData).sort()).toEqual(['notation-truststore.tar', 'truststore.p12']);
    expect(cm.data['truststore.pem']).toBe((await api.ok('GET', '/v1/truststores/clusters/bundle?format=pem')).body);
    const kmp = kube.get(provider) as { spec: { type: string; parameters: { contentType: string; value: string } } };
    expect(kmp.spec).toMatchObject({ type: 'inline', parameters: { contentType: 'certificate' } });
    expect([...kmp.spec.parameters.value.matchAll(/-----BEGIN ([A-Z0-9 ]+)-----/g)].map((m) => m[1])).toEqual([
      'CERTIFICATE',
    ]);
    expect(new X509Certificate(kmp.spec.parameters.value).fingerprint256.replace(/:/g, '').toLowerCase()).toBe(
      truststore.roots[0].sha256,
    );
    expect(t.logs.join('')).not.toContain(kube.token);
    // with ratify.verifier, the TSA roots' provider and the Notation Verifier listing both
    const verifier = kube.get({ apiVersion: provider.apiVersion, plural: 'verifiers', name: 'signet-roots' }) as {
      spec: {
        parameters: {
          verificationCertStores: unknown;
          trustPolicyDoc: { trustPolicies: Array<{ trustStores: string[] }> };
        };
      };
    };
    expect(verifier.spec.parameters.verificationCertStores).toEqual({
      ca: { clusters: ['signet-roots'] },
      tsa: { clusters: ['signet-roots-tsa'] },
    });
    expect(verifier.spec.parameters.trustPolicyDoc.trustPolicies[0].trustStores).toEqual([
      'ca:clusters',
      'tsa:clusters',
    ]);
    const tsa = kube.get({
      apiVersion: provider.apiVersion,
      plural: 'keymanagementproviders',
      name: 'signet-roots-tsa',
    }) as { spec: { parameters: { value: string } } };
    expect(new X509Certificate(tsa.spec.parameters.value).fingerprint256.replace(/:/g, '').toLowerCase()).toBe(
      truststore.tsaRoots[0].sha256,
    );
    // the double validated every apply (Ratify's CRD and Verifier shape, core ConfigMap rules) and refused none
    expect(kube.rejected).toEqual([]);
  });

  it('kubernetes: another field manager owning the ConfigMap data blocks the target (conflict, not retried fast); forceConflicts takes it over', async () => {
    // A person edits the ConfigMap with kubectl (another field manager), data and digest annotation.
    const edited = kube.apply(
      configMap,
      {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: {
          name: 'signet-truststore',
          namespace: 'signet-system',
          annotations: { 'signet.io/truststore-digest': `sha256:${'0'.repeat(64)}` },
        },
        data: { 'truststore.pem': 'edited by hand' },
      },
      'kubectl',
      true,
    );
    expect(edited.status).toBe(200);
    await api.ok('POST', '/v1/distribution/sync');
    const blocked = await waitFor('the cluster target to report the conflict', async () => {
      const target = targetsOf(await api.status()).find((x) => x.name === 'cluster')!;
      return target.state === 'blocked' ? target : false;
    });
    expect(blocked.lastError).toMatchObject({ kind: 'conflict' });
    // The record follows what the read-back found: the ConfigMap and the Ratify provider no longer agree on a digest.
    expect(blocked.delivered).toBeNull();
    // A failed re-check waits out its backoff like any other failure (no tight retry loop).
    await new Promise((r) => setTimeout(r, 500));
    const after = targetsOf(await api.status()).find((x) => x.name === 'cluster')!;
    expect(after.attempts).toBeLessThanOrEqual(2);
    await api.ok('PATCH', '/v1/regions/edge/targets/cluster', { forceConflicts: true });
    await waitConverged(api.status, ['edge/cluster']);
    expect((kube.get(configMap) as { data: Record<string, string> }).data['truststore.pem']).toContain(
      'BEGIN CERTIFICATE',
    );
  });

  it('harbor: content trust switched on in the truststore’s own project is refused (Harbor would answer 412 to its read-back and its consumers)', async () => {
    const refused = await api.call('POST', '/v1/regions/edge/targets', {
      name: 'harbor-self',
      kind: 'harbor',
      endpoint: harbor.url,
      repository: 'platform/truststore',
      truststore: 'clusters',
      credentials: { username: registry.username, password: registry.password },
      contentTrust: { notation: true },
    });
    expect(refused.statusCode).toBe(400);
    expect(refused.json().error).toMatchObject({
      code: 'VALIDATION_ERROR',
      details: { field: 'contentTrust.projects' },
    });
    expect(refused.json().error.message).toMatch(/412/);
  });

  it('harbor: the artifact lands in <project>/<repository> and the consumers’ project content-trust metadata is enforced', async () => {
    await api.ok(
      'POST',
      '/v1/regions/edge/targets',
      {
        name: 'harbor',
        kind: 'harbor',
        endpoint: harbor.url,
        repository: 'signet/truststore',
        truststore: 'clusters',
        credentials: { username: registry.username, password: registry.password },
        contentTrust: { notation: true, projects: ['platform'] },
        formats: ['pem', 'notation', 'roots'],
      },
      201,
    );
    await waitConverged(api.status, ['edge/harbor']);
    expect(harbor.metadata('platform')).toMatchObject({ enable_content_trust: 'true' });
    expect(harbor.metadata('signet')).toEqual({ public: 'false' });
    const raw = await skopeo([
      'inspect',
      '--raw',
      '--tls-verify=false',
      ...registry.skopeoCreds(),
      `docker://${registry.host}/signet/truststore:current`,
    ]);
    expect(raw.code).toBe(0);
    const manifest = JSON.parse(raw.stdout.toString('utf8'));
    expect(
      manifest.layers.map(
        (l: { annotations: Record<string, string> }) => l.annotations['org.opencontainers.image.title'],
      ),
    ).toEqual(['truststore.pem', 'notation-truststore.tar', 'roots.pem']);
  });

  it('harbor: with enforcement on, the target stays converged across a second round (its read-back is never refused)', async () => {
    const before = targetsOf(await api.status()).find((x) => x.name === 'harbor')!;
    expect(before.delivered?.verifiedAt).toBeTruthy();
    const reads = harbor.manifestReads.length;
    await api.ok('POST', '/v1/distribution/sync');
    // The round is over once the target records a new verification (or a failure).
    const target = await waitFor('the harbor target’s second round', async () => {
      const found = targetsOf(await api.status()).find((x) => x.name === 'harbor')!;
      return found.lastError ||
        (found.delivered?.verifiedAt && found.delivered.verifiedAt !== before.delivered!.verifiedAt)
        ? found
        : false;
    });
    expect(harbor.manifestReads.slice(reads)).toContain('GET signet/truststore:current');
    expect(target).toMatchObject({ state: 'converged', lastError: null });
    expect(harbor.refusals).toEqual([]);
    // Pulled through the Harbor double (its content-trust check on the way), as consumers pull it.
    const pulled = await skopeo([
      'inspect',
      '--raw',
      '--tls-verify=false',
      ...registry.skopeoCreds(),
      `docker://${harbor.host}/signet/truststore:current`,
    ]);
    expect(pulled.code).toBe(0);
  });

  it('harbor: metadata changed behind our back is drift; a sync restores it', async () => {
    harbor.projects.get('platform')!.set('enable_content_trust', 'false');
    await api.ok('POST', '/v1/distribution/sync');
    await waitFor(
      'the harbor metadata to be restored',
      async () => harbor.metadata('platform').enable_content_trust === 'true',
    );
    await waitConverged(api.status, ['edge/harbor']);
  });

  it('harbor: a target stored with content trust on its own project (before the rule) is blocked, naming the 412, not retried', async () => {
    await api.ok(
      'POST',
      '/v1/regions/edge/targets',
      {
        name: 'harbor-legacy',
        kind: 'harbor',
        endpoint: harbor.url,
        repository: 'legacy/truststore',
        truststore: 'clusters',
        credentials: { username: registry.username, password: registry.password },
        formats: ['pem'],
      },
      201,
    );
    await waitConverged(api.status, ['edge/harbor-legacy']);
    // what an older release let through: enforcement on the project holding the truststore
    await query(
      t.database.url,
      `UPDATE distribution_targets SET settings = jsonb_set(settings, '{contentTrust}', '{"notation": true}'), config_revision = config_revision + 1 WHERE name = 'harbor-legacy'`,
    );
    await api.ok('POST', '/v1/distribution/sync');
    const blocked = await waitFor('the legacy target to be blocked', async () => {
      const target = targetsOf(await api.status()).find((x) => x.name === 'harbor-legacy')!;
      return target.state === 'blocked' ? target : false;
    });
    expect(blocked.lastError).toMatchObject({
      kind: 'validation_error',
      message: expect.stringMatching(/contentTrust\.projects.*412/),
    });
    expect(harbor.metadata('legacy')).toEqual({});
    await api.ok('DELETE', '/v1/regions/edge/targets/harbor-legacy');
  });

  it('signet status lines name what is converged and what is behind', async () => {
    const lines = await t.app.get(DistributionStatusService).statusLines();
    expect(lines[0]).toBe('distribution: 2/2 targets converged');
    expect(lines[1]).toMatch(/^distribution: truststore clusters v\d+ sha256:[0-9a-f]{12}… converged /);
  });
});
