import { HarborDriver } from '../../src/distribution/drivers/harbor.driver';
import { createTrustTarget } from '../../src/distribution/drivers/trust-target.factory';
import { TargetError } from '../../src/distribution/drivers/target-error';
import { HarborTargetOptions } from '../../src/distribution/drivers/trust-target';
import { HarborDouble } from '../support/harbor-double';
import { skopeo, TestRegistry } from '../support/registry';
import { dummyBundle, noAbort, sha256 } from './bundle-fixtures';

/**
 * The harbor driver against a Harbor double (Harbor itself cannot run here): the double serves
 * Harbor's project-metadata REST API and forwards /v2/ to a real docker-registry with htpasswd
 * auth, so the OCI push is real and the metadata part follows Harbor's documented behaviour —
 * including its ContentTrust middleware's 412 to pulls of unsigned artifacts in enforcing projects.
 * The truststore lives in project `signet`; `platform` holds the application images to enforce.
 */
describe(`${HarborDriver.name} (Harbor REST double + real docker-registry)`, () => {
  let registry: TestRegistry;
  let harbor: HarborDouble;
  const drivers: HarborDriver[] = [];

  function driver(overrides: Partial<HarborTargetOptions> = {}): HarborDriver {
    const made = createTrustTarget({
      kind: 'harbor',
      endpoint: harbor.url,
      project: 'signet',
      repository: 'truststore',
      credentials: { username: registry.username, password: registry.password },
      allowedHosts: [],
      allowLoopback: true, // the doubles run on 127.0.0.1
      requestTimeoutMs: 20_000,
      ...overrides,
    }) as HarborDriver;
    drivers.push(made);
    return made;
  }

  beforeAll(async () => {
    // a robot-account style user name: `$` and `+` must survive basic auth on both APIs
    registry = await TestRegistry.start({ auth: 'htpasswd', username: 'robot$platform+signet' });
    harbor = await HarborDouble.start({
      upstream: registry.url,
      username: registry.username,
      password: registry.password,
      projects: {
        signet: { public: 'false' },
        platform: { public: 'false' },
        other: { enable_content_trust: 'false' },
      },
      accounts: [
        { username: 'robot$platform+puller', password: 'pull-secret', role: 'pull' },
        { username: 'robot$platform+scanner', password: 'scan-secret', role: 'scanner' },
      ],
    });
  });

  afterAll(async () => {
    await Promise.all(drivers.map((d) => d.close()));
    await harbor?.close();
    await registry?.dispose();
  });

  it('pushes into <harbor>/<project>/<repository> and leaves project metadata alone when not asked', async () => {
    const bundle = await dummyBundle(1);
    const result = await driver().push(bundle, noAbort());
    expect(result.deliveredDigest).toBe(bundle.digest);
    expect(result.details!.locations).toEqual([
      `${harbor.host}/signet/truststore:v1`,
      `${harbor.host}/signet/truststore:current`,
    ]);
    expect(harbor.apiRequests).toEqual([]);

    const raw = await skopeo([
      'inspect',
      '--raw',
      '--tls-verify=false',
      ...registry.skopeoCreds(),
      `docker://${registry.host}/signet/truststore:current`,
    ]);
    expect(raw.code).toBe(0);
    expect(sha256(raw.stdout)).toBe(result.details!.manifestDigest);
  });

  it('adds enable_content_trust the project lacks (POST, since Harbor’s PUT ignores absent keys) and verifies it', async () => {
    const bundle = await dummyBundle(2);
    const result = await driver({ contentTrust: { notation: true, projects: ['platform'] } }).push(bundle, noAbort());
    expect(result.details!.projectMetadata).toEqual({ platform: { enable_content_trust: 'true' } });
    expect(harbor.metadata('platform')).toEqual({ public: 'false', enable_content_trust: 'true' });
    expect(harbor.metadata('signet')).toEqual({ public: 'false' });
    expect(harbor.apiRequests.map((r) => `${r.method} ${r.path}`)).toEqual([
      'GET /api/v2.0/projects/platform/metadatas/',
      'POST /api/v2.0/projects/platform/metadatas/',
      'GET /api/v2.0/projects/platform/metadatas/',
    ]);
    expect(harbor.apiRequests.every((r) => r.isResourceName === 'true')).toBe(true);
  });

  it('updates existing keys with PUT and is idempotent', async () => {
    harbor.apiRequests.length = 0;
    const target = driver({ contentTrust: { notation: false, cosign: true, projects: ['platform'] } });
    const bundle = await dummyBundle(3);
    await target.push(bundle, noAbort());
    expect(harbor.metadata('platform')).toEqual({
      public: 'false',
      enable_content_trust: 'false',
      enable_content_trust_cosign: 'true',
    });
    expect(harbor.apiRequests.map((r) => r.method)).toEqual(['GET', 'PUT', 'POST', 'GET']);

    harbor.apiRequests.length = 0;
    await target.push(bundle, noAbort());
    expect(harbor.apiRequests.map((r) => r.method)).toEqual(['GET', 'GET']);
  });

  it('read-back reports the digest only while the project metadata matches', async () => {
    const target = driver({ contentTrust: { notation: false, cosign: true, projects: ['platform'] } });
    const held = await target.readBack(noAbort());
    expect(held).toMatchObject({
      version: 3,
      details: {
        projectMetadata: { platform: { enable_content_trust: 'false', enable_content_trust_cosign: 'true' } },
      },
    });
    expect(held.digest).toMatch(/^sha256:/);

    harbor.projects.get('platform')!.set('enable_content_trust_cosign', 'false'); // someone flipped it in the UI
    const drifted = await target.readBack(noAbort());
    expect(drifted.digest).toBeUndefined();
    expect(drifted.details).toMatchObject({
      heldDigest: held.digest,
      projectMetadataDrift: ['platform: enable_content_trust_cosign'],
    });
    harbor.projects.get('platform')!.set('enable_content_trust_cosign', 'false');
  });

  it('a missing project is a typed not-found error', async () => {
    const error = await driver({ repository: 'ghost-check', contentTrust: { notation: true, projects: ['ghost'] } })
      .push(await dummyBundle(1), noAbort())
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TargetError);
    expect(error).toMatchObject({ kind: 'not-found', retryable: false });
  });

  it('a failing Harbor API is a retryable server error', async () => {
    harbor.failApiWith = 503;
    try {
      const error = await driver({ contentTrust: { notation: true, projects: ['platform'] } })
        .push(await dummyBundle(4), noAbort())
        .catch((e: unknown) => e);
      expect(error).toMatchObject({ kind: 'server', retryable: true });
    } finally {
      harbor.failApiWith = undefined;
    }
  });

  describe('content trust (the double answers 412 as Harbor’s ContentTrust middleware does)', () => {
    const basic = (username: string, password: string) =>
      `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
    const robot = () => basic(registry.username, registry.password);
    const pull = (
      repository: string,
      reference: string,
      authorization: string,
      userAgent = 'containerd/2.0',
      method = 'GET',
    ) =>
      fetch(`${harbor.url}/v2/${repository}/manifests/${reference}`, {
        method,
        headers: { authorization, accept: OCI_MANIFEST, 'user-agent': userAgent },
      });
    const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

    async function putBlob(repository: string, content: Buffer): Promise<string> {
      const digest = sha256(content);
      const started = await fetch(`${harbor.url}/v2/${repository}/blobs/uploads/`, {
        method: 'POST',
        headers: { authorization: robot() },
      });
      expect(started.status).toBe(202);
      const location = new URL(started.headers.get('location')!, harbor.url);
      location.searchParams.set('digest', digest);
      const done = await fetch(location, {
        method: 'PUT',
        headers: { authorization: robot(), 'content-type': 'application/octet-stream' },
        body: content,
      });
      expect(done.status).toBe(201);
      return digest;
    }

    /** An application image in `platform` (a config and one layer), and optionally a Notation signature accessory for it. */
    async function pushImage(tag: string): Promise<{ digest: string; sign: () => Promise<void> }> {
      const repository = 'platform/app';
      const config = Buffer.from('{}');
      const layer = Buffer.from(`layer ${tag} ${Math.random()}`);
      const manifest = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: OCI_MANIFEST,
          config: {
            mediaType: 'application/vnd.oci.image.config.v1+json',
            digest: await putBlob(repository, config),
            size: config.length,
          },
          layers: [
            {
              mediaType: 'application/vnd.oci.image.layer.v1.tar',
              digest: await putBlob(repository, layer),
              size: layer.length,
            },
          ],
        }),
      );
      const put = await fetch(`${harbor.url}/v2/${repository}/manifests/${tag}`, {
        method: 'PUT',
        headers: { authorization: robot(), 'content-type': OCI_MANIFEST },
        body: manifest,
      });
      expect(put.status).toBe(201);
      const digest = sha256(manifest);
      const sign = async () => {
        const envelope = Buffer.from('{"payload":"…","protected":"…","signature":"not verified by Harbor"}');
        const empty = Buffer.from('{}');
        const signature = Buffer.from(
          JSON.stringify({
            schemaVersion: 2,
            mediaType: OCI_MANIFEST,
            artifactType: 'application/vnd.cncf.notary.signature',
            config: {
              mediaType: 'application/vnd.oci.empty.v1+json',
              digest: await putBlob(repository, empty),
              size: 2,
            },
            layers: [
              {
                mediaType: 'application/jose+json',
                digest: await putBlob(repository, envelope),
                size: envelope.length,
              },
            ],
            subject: { mediaType: OCI_MANIFEST, digest, size: manifest.length },
          }),
        );
        const pushed = await fetch(`${harbor.url}/v2/${repository}/manifests/${sha256(signature)}`, {
          method: 'PUT',
          headers: { authorization: robot(), 'content-type': OCI_MANIFEST },
          body: signature,
        });
        expect(pushed.status).toBe(201);
      };
      return { digest, sign };
    }

    it('the double refuses unsigned pulls in an enforcing project, with Harbor’s exceptions', async () => {
      harbor.projects.get('platform')!.set('enable_content_trust', 'true');
      const image = await pushImage('v1');
      const refused = await pull('platform/app', 'v1', robot());
      expect(refused.status).toBe(412);
      expect(await refused.json()).toEqual({
        errors: [{ code: 'PROJECTPOLICYVIOLATION', message: 'The image is not signed by notation.' }],
      });
      expect((await pull('platform/app', image.digest, robot(), 'containerd/2.0', 'HEAD')).status).toBe(412);
      expect((await pull('platform/app', 'missing', robot())).status).toBe(404);
      // a scanner's pull; a push-capable token with a signer's User-Agent (but not a pull-only one)
      expect((await pull('platform/app', 'v1', basic('robot$platform+scanner', 'scan-secret'))).status).toBe(200);
      expect((await pull('platform/app', 'v1', robot(), 'notation-go/1.3.0')).status).toBe(200);
      expect(
        (await pull('platform/app', 'v1', basic('robot$platform+puller', 'pull-secret'), 'notation-go/1.3.0')).status,
      ).toBe(412);
      // once a Notation signature accessory exists (never verified), plain pulls pass
      await image.sign();
      expect((await pull('platform/app', 'v1', basic('robot$platform+puller', 'pull-secret'))).status).toBe(200);
      // cosign enforcement wants a cosign accessory: the Notation one does not count
      harbor.projects.get('platform')!.set('enable_content_trust_cosign', 'true');
      expect(await (await pull('platform/app', 'v1', robot())).json()).toEqual({
        errors: [{ code: 'PROJECTPOLICYVIOLATION', message: 'The image is not signed by cosign.' }],
      });
      harbor.projects.get('platform')!.set('enable_content_trust_cosign', 'false');
    });

    it('enforcement on the truststore’s own project is refused before anything is written (Harbor would 412 its read-back forever)', () => {
      for (const contentTrust of [
        { notation: true },
        { cosign: true },
        { notation: true, projects: ['platform', 'signet'] },
      ]) {
        expect(() => driver({ contentTrust })).toThrow(
          expect.objectContaining({ code: 'VALIDATION_ERROR', details: { field: 'contentTrust.projects' } }),
        );
      }
      // switching it off there is harmless, and so is the default project when nothing is on
      expect(() => driver({ contentTrust: { notation: false } })).not.toThrow();
    });

    it('the truststore stays readable while its consumers’ project enforces: converges, and stays converged across a second round', async () => {
      harbor.projects.get('platform')!.delete('enable_content_trust');
      const refusalsBefore = harbor.refusals.length;
      const target = driver({ contentTrust: { notation: true, projects: ['platform'] } });
      const v5 = await dummyBundle(5);
      await expect(target.push(v5, noAbort())).resolves.toMatchObject({ deliveredDigest: v5.digest });
      expect(harbor.metadata('platform').enable_content_trust).toBe('true');
      // Round one's verification and round two: the read-back holds the digest; a re-push is a no-op.
      await expect(target.readBack(noAbort())).resolves.toMatchObject({ digest: v5.digest, version: 5 });
      await expect(target.push(v5, noAbort())).resolves.toMatchObject({ deliveredDigest: v5.digest });
      const v6 = await dummyBundle(6);
      await expect(target.push(v6, noAbort())).resolves.toMatchObject({ deliveredDigest: v6.digest });
      await expect(target.readBack(noAbort())).resolves.toMatchObject({ digest: v6.digest, version: 6 });
      // consumers pull it with a read-only robot; application images in platform stay enforced
      expect((await pull('signet/truststore', 'current', basic('robot$platform+puller', 'pull-secret'))).status).toBe(
        200,
      );
      expect(harbor.refusals.slice(refusalsBefore)).toEqual([]);
      expect((await pull('platform/app', 'v1', basic('robot$platform+puller', 'pull-secret'))).status).toBe(200); // signed above
      const unsigned = await pushImage('v2');
      expect((await pull('platform/app', unsigned.digest, basic('robot$platform+puller', 'pull-secret'))).status).toBe(
        412,
      );
    });
  });
});
