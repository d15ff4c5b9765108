import { KubernetesDriver, K8S_ANNOTATION_DIGEST } from '../../src/distribution/drivers/kubernetes.driver';
import { createTrustTarget } from '../../src/distribution/drivers/trust-target.factory';
import { TargetError } from '../../src/distribution/drivers/target-error';
import { KubernetesTargetOptions, TruststoreBundle } from '../../src/distribution/drivers/trust-target';
import { renderLayer } from '../../src/truststore/bundle-formats';
import { TruststoreContent } from '../../src/truststore/truststore-content';
import { KubeApiDouble, KubeRef } from '../support/kube-api-double';
import { dummyBundle, noAbort } from './bundle-fixtures';

/**
 * The kubernetes driver against a Kubernetes API double (no kube-apiserver can run here) that
 * implements server-side apply with field managers and conflicts, over real HTTPS with a CA the
 * kubeconfig carries.
 */
describe(`${KubernetesDriver.name} (Kubernetes API double)`, () => {
  let api: KubeApiDouble;
  const drivers: KubernetesDriver[] = [];
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

  function driver(overrides: Partial<KubernetesTargetOptions> = {}): KubernetesDriver {
    const made = createTrustTarget({
      kind: 'kubernetes',
      endpoint: api.url,
      namespace: 'signet-system',
      credentials: { kubeconfig: api.kubeconfig('json') },
      ratify: { keyManagementProviderName: 'signet-roots' },
      allowedHosts: [],
      allowLoopback: true, // the API server double runs on 127.0.0.1
      requestTimeoutMs: 20_000,
      ...overrides,
    }) as KubernetesDriver;
    drivers.push(made);
    return made;
  }

  beforeAll(async () => {
    api = await KubeApiDouble.start();
  });

  afterAll(async () => {
    await Promise.all(drivers.map((d) => d.close()));
    await api?.close();
  });

  let v1: TruststoreBundle;

  it('apply creates the ConfigMap (text in data, the tar in binaryData) and the Ratify KeyManagementProvider', async () => {
    v1 = await dummyBundle(1);
    const result = await driver().push(v1, noAbort());
    expect(result.deliveredDigest).toBe(v1.digest);
    expect(result.details!.locations).toEqual([
      'configmap signet-system/signet-truststore',
      'keymanagementprovider signet-roots',
    ]);

    const cm = api.get(configMap)! as {
      data: Record<string, string>;
      binaryData: Record<string, string>;
      metadata: Record<string, unknown>;
    };
    expect(cm.data).toEqual({
      'truststore.pem': v1.layers[0].content.toString('utf8'),
      'ratify-kmp.yaml': v1.layers[2].content.toString('utf8'),
    });
    expect(Buffer.from(cm.binaryData['notation-truststore.tar'], 'base64').equals(v1.layers[1].content)).toBe(true);
    expect(cm.metadata).toMatchObject({
      labels: { 'app.kubernetes.io/managed-by': 'signet' },
      annotations: { 'signet.io/truststore-digest': v1.digest, 'signet.io/truststore-version': '1' },
    });

    const kmp = api.get(provider)! as { spec: { type: string; parameters: { contentType: string; value: string } } };
    expect(kmp.spec.type).toBe('inline');
    expect(kmp.spec.parameters.contentType).toBe('certificate');
    // CERTIFICATE blocks only, nothing after the last one
    expect(kmp.spec.parameters.value).toBe(v1.layers[0].content.toString('utf8').trimEnd());
    expect(
      api.requests
        .filter((r) => r.method === 'PATCH')
        .every(
          (r) =>
            r.query.fieldManager === 'signet' &&
            r.query.force === undefined &&
            r.contentType === 'application/apply-patch+yaml',
        ),
    ).toBe(true);
  });

  it('re-apply of the same bundle is idempotent: nothing changes, read-back reports it', async () => {
    const before = (api.get(configMap)!.metadata as { resourceVersion: string }).resourceVersion;
    const target = driver();
    await expect(target.push(v1, noAbort())).resolves.toMatchObject({ deliveredDigest: v1.digest });
    expect((api.get(configMap)!.metadata as { resourceVersion: string }).resourceVersion).toBe(before);
    await expect(target.readBack(noAbort())).resolves.toMatchObject({ digest: v1.digest, version: 1 });
  });

  it('a field owned by another manager is a typed conflict, and stays theirs, unless forced', async () => {
    const edited = api.apply(
      configMap,
      {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: configMap.name, namespace: configMap.namespace },
        data: { 'truststore.pem': 'edited by hand\n' },
      },
      'kubectl',
      true,
    );
    expect(edited.status).toBe(200);

    const v2 = await dummyBundle(2);
    const error = await driver()
      .push(v2, noAbort())
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TargetError);
    expect(error).toMatchObject({ kind: 'conflict', retryable: false });
    expect((error as TargetError).details).toMatchObject({
      conflicts: [{ field: '.data.truststore.pem', manager: 'kubectl' }],
    });
    expect((api.get(configMap)!.data as Record<string, string>)['truststore.pem']).toBe('edited by hand\n');

    const forced = await driver({ forceConflicts: true }).push(v2, noAbort());
    expect(forced.deliveredDigest).toBe(v2.digest);
    expect((api.get(configMap)!.data as Record<string, string>)['truststore.pem']).toBe(
      v2.layers[0].content.toString('utf8'),
    );
    expect(api.owners(configMap).kubectl ?? []).not.toContain('data.truststore.pem');
    expect(api.requests.filter((r) => r.method === 'PATCH').at(-1)!.query.force).toBe('true');
  });

  it('read-back reports no digest while the KeyManagementProvider lags behind the ConfigMap', async () => {
    api.apply(
      provider,
      {
        apiVersion: provider.apiVersion,
        kind: 'KeyManagementProvider',
        metadata: { name: provider.name, annotations: { [K8S_ANNOTATION_DIGEST]: `sha256:${'0'.repeat(64)}` } },
      },
      'someone-else',
      true,
    );
    const state = await driver().readBack(noAbort());
    expect(state.digest).toBeUndefined();
    expect(state).toMatchObject({ version: 2, details: { keyManagementProviderDigest: `sha256:${'0'.repeat(64)}` } });
  });

  it('works with a YAML kubeconfig and with a plain bearer token plus CA', async () => {
    const v3 = await dummyBundle(3);
    await expect(
      driver({ credentials: { kubeconfig: api.kubeconfig('yaml') }, forceConflicts: true }).push(v3, noAbort()),
    ).resolves.toMatchObject({ deliveredDigest: v3.digest });
    await expect(
      driver({ credentials: { token: api.token }, tls: { caPem: api.caPem } }).readBack(noAbort()),
    ).resolves.toMatchObject({ digest: v3.digest, version: 3 });
  });

  it('a late push of an older version does not overwrite the newer one', async () => {
    await expect(driver({ forceConflicts: true }).push(v1, noAbort())).rejects.toMatchObject({
      kind: 'conflict',
      retryable: false,
      targetDetails: { heldVersion: 3 },
    });
    expect(
      (api.get(configMap)!.metadata as { annotations: Record<string, string> }).annotations[
        'signet.io/truststore-version'
      ],
    ).toBe('3');
  });

  it('a wrong token is a typed auth error; an untrusted server certificate a typed TLS error', async () => {
    await expect(
      driver({ credentials: { kubeconfig: api.kubeconfig('json', { token: 'wrong' }) } }).readBack(noAbort()),
    ).rejects.toMatchObject({ kind: 'auth', retryable: false });
    await expect(driver({ credentials: { token: api.token } }).readBack(noAbort())).rejects.toMatchObject({
      kind: 'tls',
      retryable: false,
    });
  });

  it('a missing namespace or a cluster without Ratify is a typed not-found error', async () => {
    await expect(
      driver({ namespace: 'nowhere', ratify: undefined }).push(await dummyBundle(4), noAbort()),
    ).rejects.toMatchObject({ kind: 'not-found', retryable: false });
    api.ratifyInstalled = false;
    try {
      await expect(
        driver({ configMapName: 'other-truststore', forceConflicts: true }).push(await dummyBundle(4), noAbort()),
      ).rejects.toMatchObject({ kind: 'not-found' });
    } finally {
      api.ratifyInstalled = true;
    }
  });

  it('refuses a bundle larger than a ConfigMap holds before sending anything', async () => {
    const big = await dummyBundle(5);
    big.layers.push({
      mediaType: 'application/octet-stream',
      title: 'padding.bin',
      content: Buffer.alloc(1024 * 1024),
    });
    const sent = api.requests.length;
    await expect(driver().push(big, noAbort())).rejects.toMatchObject({ kind: 'rejected', retryable: false });
    expect(api.requests.length).toBe(sent);
  });

  it('everything the driver applied passed the validation the double runs: the Ratify CRD for the provider, core rules for the ConfigMap', async () => {
    expect(api.rejected).toEqual([]);
    // the double does refuse what the API server would: a field the CRD does not know, a bad ConfigMap key
    const typo = api.apply(
      provider,
      {
        apiVersion: provider.apiVersion,
        kind: 'KeyManagementProvider',
        metadata: { name: provider.name },
        spec: { type: 'inline', paramters: { value: 'x' } },
      },
      'kubectl',
      true,
    );
    expect(typo.status).toBe(422);
    expect(JSON.stringify(typo.body)).toContain('(paramters)');
    const badKey = api.apply(
      configMap,
      {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: configMap.name, namespace: configMap.namespace },
        data: { 'no/slash': 'x' },
      },
      'kubectl',
      true,
    );
    expect(badKey.status).toBe(422);
    const held = (await driver().readBack(noAbort())).digest;
    expect(held).toBeDefined(); // nothing was stored by the refused applies
  });

  describe('with ratify.verifier: the TSA-roots provider and the Notation Verifier from the ratify layer', () => {
    const fakeCert = (label: string) => ({
      ca: label,
      generation: `${label}-g1`,
      sha256: '0'.repeat(64),
      subject: `CN=${label}`,
      notBefore: '2026-01-01T00:00:00.000Z',
      notAfter: '2036-01-01T00:00:00.000Z',
      der: Buffer.from(`certificate ${label}`).toString('base64'),
    });
    const content: TruststoreContent = {
      format: 'signet-truststore/1',
      name: 'production',
      trustPolicy: { registryScopes: ['*'], level: 'strict' },
      roots: [fakeCert('root')],
      tsaRoots: [fakeCert('tsa-root')],
      crls: [],
      trustedIdentities: ['x509.subject: C=DE, ST=Berlin, O=Signet Test, CN=release'],
    };
    const ref = (plural: string, name: string): KubeRef => ({
      apiVersion: 'config.ratify.deislabs.io/v1beta1',
      plural,
      name,
    });
    const withRatifyLayer = async (version: number, of: TruststoreContent = content) => {
      const bundle = await dummyBundle(version);
      const rendered = await renderLayer('ratify', of); // Signet's real rendering: two providers and the Verifier
      return {
        ...bundle,
        layers: bundle.layers.map((l) => (l.title === 'ratify-kmp.yaml' ? { ...l, content: rendered } : l)),
      };
    };
    const verifierDriver = () =>
      driver({
        configMapName: 'verified-truststore',
        ratify: {
          keyManagementProviderName: 'signet-verify',
          pemLayerTitle: 'truststore.pem',
          verifierLayerTitle: 'ratify-kmp.yaml',
        },
      });

    it('applies roots provider, TSA provider and a Verifier listing exactly those, each validated by the double', async () => {
      const bundle = await withRatifyLayer(1);
      const rejectedBefore = api.rejected.length;
      const result = await verifierDriver().push(bundle, noAbort());
      expect(result.details!.locations).toEqual([
        'configmap signet-system/verified-truststore',
        'keymanagementprovider signet-verify',
        'keymanagementprovider signet-verify-tsa',
        'verifier signet-verify',
      ]);
      expect(api.rejected.slice(rejectedBefore)).toEqual([]);
      const verifier = api.get(ref('verifiers', 'signet-verify')) as {
        spec: {
          name: string;
          parameters: {
            verificationCertStores: unknown;
            trustPolicyDoc: { trustPolicies: Array<Record<string, unknown>> };
          };
        };
        metadata: { annotations: Record<string, string> };
      };
      expect(verifier.spec.name).toBe('notation');
      expect(verifier.spec.parameters.verificationCertStores).toEqual({
        ca: { production: ['signet-verify'] },
        tsa: { production: ['signet-verify-tsa'] },
      });
      expect(verifier.spec.parameters.trustPolicyDoc.trustPolicies[0]).toMatchObject({
        trustStores: ['ca:production', 'tsa:production'],
        trustedIdentities: content.trustedIdentities,
      });
      expect(verifier.metadata.annotations['signet.io/truststore-digest']).toBe(bundle.digest);
      const tsa = api.get(ref('keymanagementproviders', 'signet-verify-tsa')) as {
        spec: { parameters: { value: string } };
      };
      expect(tsa.spec.parameters.value).toContain(content.tsaRoots[0].der);
      await expect(verifierDriver().readBack(noAbort())).resolves.toMatchObject({ digest: bundle.digest });
    });

    it('read-back reports no digest while the Verifier lags; a Verifier naming a provider that does not exist is refused by the double', async () => {
      api.apply(
        ref('verifiers', 'signet-verify'),
        {
          apiVersion: 'config.ratify.deislabs.io/v1beta1',
          kind: 'Verifier',
          metadata: { name: 'signet-verify', annotations: { [K8S_ANNOTATION_DIGEST]: `sha256:${'1'.repeat(64)}` } },
        },
        'kubectl',
        true,
      );
      const state = await verifierDriver().readBack(noAbort());
      expect(state.digest).toBeUndefined();
      expect(state.details).toMatchObject({ verifierDigest: `sha256:${'1'.repeat(64)}` });
      const dangling = api.apply(
        ref('verifiers', 'other'),
        {
          apiVersion: 'config.ratify.deislabs.io/v1beta1',
          kind: 'Verifier',
          metadata: { name: 'other' },
          spec: {
            name: 'notation',
            artifactTypes: 'application/vnd.cncf.notary.signature',
            parameters: {
              verificationCertStores: { ca: { s: ['nowhere'] } },
              trustPolicyDoc: { version: '1.0', trustPolicies: [{ name: 'p', trustStores: ['ca:s'] }] },
            },
          },
        },
        'kubectl',
      );
      expect(dangling.status).toBe(422);
      // the next push puts it right (forced: kubectl took the annotation over)
      const v2 = await withRatifyLayer(2);
      await expect(
        driver({
          configMapName: 'verified-truststore',
          forceConflicts: true,
          ratify: {
            keyManagementProviderName: 'signet-verify',
            pemLayerTitle: 'truststore.pem',
            verifierLayerTitle: 'ratify-kmp.yaml',
          },
        }).push(v2, noAbort()),
      ).resolves.toMatchObject({ deliveredDigest: v2.digest });
    });

    it('a ratify layer without a Verifier is refused before anything is written', async () => {
      const bundle = await dummyBundle(3); // its ratify layer is a lone provider
      const sent = api.requests.length;
      await expect(verifierDriver().push(bundle, noAbort())).rejects.toMatchObject({ code: 'VALIDATION_ERROR' });
      expect(api.requests.length).toBe(sent);
    });
  });
});
