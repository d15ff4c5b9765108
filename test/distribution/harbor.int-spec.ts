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
 * auth, so the OCI push is real and the metadata part follows Harbor's documented behaviour.
 */
describe(`${HarborDriver.name} (Harbor REST double + real docker-registry)`, () => {
  let registry: TestRegistry;
  let harbor: HarborDouble;
  const drivers: HarborDriver[] = [];

  function driver(overrides: Partial<HarborTargetOptions> = {}): HarborDriver {
    const made = createTrustTarget({
      kind: 'harbor',
      endpoint: harbor.url,
      project: 'platform',
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
      projects: { platform: { public: 'false' }, other: { enable_content_trust: 'false' } },
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
    expect(result.details!.locations).toEqual([`${harbor.host}/platform/truststore:v1`, `${harbor.host}/platform/truststore:current`]);
    expect(harbor.apiRequests).toEqual([]);

    const raw = await skopeo(['inspect', '--raw', '--tls-verify=false', ...registry.skopeoCreds(), `docker://${registry.host}/platform/truststore:current`]);
    expect(raw.code).toBe(0);
    expect(sha256(raw.stdout)).toBe(result.details!.manifestDigest);
  });

  it('adds enable_content_trust the project lacks (POST, since Harbor’s PUT ignores absent keys) and verifies it', async () => {
    const bundle = await dummyBundle(2);
    const result = await driver({ contentTrust: { notation: true } }).push(bundle, noAbort());
    expect(result.details!.projectMetadata).toEqual({ enable_content_trust: 'true' });
    expect(harbor.metadata('platform')).toEqual({ public: 'false', enable_content_trust: 'true' });
    expect(harbor.apiRequests.map((r) => `${r.method} ${r.path}`)).toEqual([
      'GET /api/v2.0/projects/platform/metadatas/',
      'POST /api/v2.0/projects/platform/metadatas/',
      'GET /api/v2.0/projects/platform/metadatas/',
    ]);
    expect(harbor.apiRequests.every((r) => r.isResourceName === 'true')).toBe(true);
  });

  it('updates existing keys with PUT and is idempotent', async () => {
    harbor.apiRequests.length = 0;
    const target = driver({ contentTrust: { notation: false, cosign: true } });
    const bundle = await dummyBundle(3);
    await target.push(bundle, noAbort());
    expect(harbor.metadata('platform')).toEqual({ public: 'false', enable_content_trust: 'false', enable_content_trust_cosign: 'true' });
    expect(harbor.apiRequests.map((r) => r.method)).toEqual(['GET', 'PUT', 'POST', 'GET']);

    harbor.apiRequests.length = 0;
    await target.push(bundle, noAbort());
    expect(harbor.apiRequests.map((r) => r.method)).toEqual(['GET', 'GET']);
  });

  it('read-back reports the digest only while the project metadata matches', async () => {
    const target = driver({ contentTrust: { notation: false, cosign: true } });
    const held = await target.readBack(noAbort());
    expect(held).toMatchObject({ version: 3, details: { projectMetadata: { enable_content_trust: 'false', enable_content_trust_cosign: 'true' } } });
    expect(held.digest).toMatch(/^sha256:/);

    harbor.projects.get('platform')!.set('enable_content_trust_cosign', 'false'); // someone flipped it in the UI
    const drifted = await target.readBack(noAbort());
    expect(drifted.digest).toBeUndefined();
    expect(drifted.details).toMatchObject({ heldDigest: held.digest, projectMetadataDrift: ['enable_content_trust_cosign'] });
  });

  it('a missing project is a typed not-found error', async () => {
    const error = await driver({ project: 'ghost', contentTrust: { notation: true } }).push(await dummyBundle(1), noAbort()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TargetError);
    expect(error).toMatchObject({ kind: 'not-found', retryable: false });
  });

  it('a failing Harbor API is a retryable server error', async () => {
    harbor.failApiWith = 503;
    try {
      const error = await driver({ contentTrust: { notation: true } }).push(await dummyBundle(4), noAbort()).catch((e: unknown) => e);
      expect(error).toMatchObject({ kind: 'server', retryable: true });
    } finally {
      harbor.failApiWith = undefined;
    }
  });
});
