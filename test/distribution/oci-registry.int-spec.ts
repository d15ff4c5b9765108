import * as fs from 'node:fs';
import * as path from 'node:path';
import { OciRegistryDriver } from '../../src/distribution/drivers/oci-registry.driver';
import { EMPTY_CONFIG, TRUSTSTORE_ARTIFACT_TYPE } from '../../src/distribution/drivers/oci-artifact';
import { createTrustTarget } from '../../src/distribution/drivers/trust-target.factory';
import { TargetError } from '../../src/distribution/drivers/target-error';
import { OciRegistryTargetOptions, TruststoreBundle } from '../../src/distribution/drivers/trust-target';
import { dockerRegistryVersion, RegistryAuthMode, skopeo, TestRegistry } from '../support/registry';
import { tempDir } from '../support/server-process';
import { dummyBundle, noAbort, sha256 } from './bundle-fixtures';

/**
 * The oci-registry driver against real CNCF distribution 2.8 processes (no auth, htpasswd, bearer
 * tokens from a test-run token service), read back with skopeo as an independent client.
 */
it('the harness runs CNCF distribution 2.x, whose quirks NOTARY.md describes', () => {
  expect(dockerRegistryVersion()).toMatch(/distribution v?2\.\d+/);
});

describe.each<RegistryAuthMode>(['none', 'htpasswd', 'token'])(
  `${OciRegistryDriver.name} against docker-registry (auth: %s)`,
  (auth) => {
    let registry: TestRegistry;
    const repository = 'signet/truststore';
    const drivers: OciRegistryDriver[] = [];

    function driver(overrides: Partial<OciRegistryTargetOptions> = {}): OciRegistryDriver {
      const made = createTrustTarget({
        kind: 'oci-registry',
        endpoint: registry.url,
        repository,
        ...(auth === 'none' ? {} : { credentials: { username: registry.username, password: registry.password } }),
        allowedHosts: registry.tokenIssuer ? [registry.tokenIssuer.host] : [],
        allowLoopback: true, // the registries run on 127.0.0.1
        requestTimeoutMs: 20_000,
        ...overrides,
      }) as OciRegistryDriver;
      drivers.push(made);
      return made;
    }

    async function skopeoRaw(reference: string): Promise<Buffer> {
      const result = await skopeo([
        'inspect',
        '--raw',
        '--tls-verify=false',
        ...registry.skopeoCreds(),
        `docker://${registry.host}/${repository}:${reference}`,
      ]);
      if (result.code !== 0) throw new Error(`skopeo inspect failed: ${result.stderr}`);
      return result.stdout;
    }

    beforeAll(async () => {
      registry = await TestRegistry.start({ auth });
    });

    afterAll(async () => {
      await Promise.all(drivers.map((d) => d.close()));
      await registry?.dispose();
    });

    let v1: TruststoreBundle;
    let v1ManifestDigest: string;

    it('pushes the bundle as an OCI artifact that skopeo reads back byte for byte', async () => {
      v1 = await dummyBundle(1);
      const result = await driver().push(v1, noAbort());
      expect(result.deliveredDigest).toBe(v1.digest);
      v1ManifestDigest = result.details!.manifestDigest!;

      for (const reference of ['current', 'v1']) {
        const raw = await skopeoRaw(reference);
        expect(sha256(raw)).toBe(v1ManifestDigest);
        const manifest = JSON.parse(raw.toString('utf8'));
        expect(manifest.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
        expect(manifest.artifactType).toBe(TRUSTSTORE_ARTIFACT_TYPE);
        expect(manifest.config).toEqual({ mediaType: EMPTY_CONFIG.mediaType, digest: EMPTY_CONFIG.digest, size: 2 });
        expect(manifest.annotations).toMatchObject({
          'org.opencontainers.image.version': '1',
          'io.signet.truststore.digest': v1.digest,
          'org.opencontainers.image.created': '2026-01-02T03:04:05Z',
        });
        expect(manifest.layers).toEqual(
          v1.layers.map((layer) => ({
            mediaType: layer.mediaType,
            digest: sha256(layer.content),
            size: layer.content.length,
            annotations: { 'org.opencontainers.image.title': layer.title },
          })),
        );
      }
    });

    it('stores every layer and the empty config blob (skopeo copy to an OCI layout)', async () => {
      const layout = tempDir('skopeo-oci-');
      try {
        const copy = await skopeo([
          'copy',
          '--src-tls-verify=false',
          ...(registry.auth === 'none' ? [] : ['--src-creds', `${registry.username}:${registry.password}`]),
          `docker://${registry.host}/${repository}:current`,
          `oci:${layout}:current`,
        ]);
        expect(copy.stderr).toBe('');
        expect(copy.code).toBe(0);
        const blob = (digest: string) =>
          fs.readFileSync(path.join(layout, 'blobs', 'sha256', digest.slice('sha256:'.length)));
        expect(sha256(blob(v1ManifestDigest))).toBe(v1ManifestDigest);
        expect(blob(EMPTY_CONFIG.digest).toString('utf8')).toBe('{}');
        for (const layer of v1.layers) expect(blob(sha256(layer.content)).equals(layer.content)).toBe(true);
      } finally {
        fs.rmSync(layout, { recursive: true, force: true });
      }
    });

    it('reads back the digest and version that `current` holds', async () => {
      await expect(driver().readBack(noAbort())).resolves.toEqual({
        digest: v1.digest,
        version: 1,
        details: { manifestDigest: v1ManifestDigest },
      });
    });

    it('re-pushing the same bundle is harmless: same manifest, no blob uploaded again', async () => {
      const result = await driver().push(v1, noAbort());
      expect(result.deliveredDigest).toBe(v1.digest);
      expect(result.details).toMatchObject({ manifestDigest: v1ManifestDigest, blobsUploaded: 0, blobsPresent: 4 });
      expect(sha256(await skopeoRaw('current'))).toBe(v1ManifestDigest);
    });

    it('re-pushing a version without createdAt keeps the manifest that tag already has', async () => {
      const { createdAt: _dropped, ...withoutCreatedAt } = v1;
      const result = await driver({}).push(withoutCreatedAt, noAbort());
      expect(result.details!.manifestDigest).toBe(v1ManifestDigest);
    });

    it('moves `current` to a new version and keeps the old version tag', async () => {
      const v2 = await dummyBundle(2);
      const target = driver();
      const result = await target.push(v2, noAbort());
      expect(result.deliveredDigest).toBe(v2.digest);
      expect(result.details!.locations).toEqual([
        `${registry.host}/${repository}:v2`,
        `${registry.host}/${repository}:current`,
      ]);
      await expect(target.readBack(noAbort())).resolves.toMatchObject({ digest: v2.digest, version: 2 });
      expect(JSON.parse((await skopeoRaw('current')).toString()).annotations['org.opencontainers.image.version']).toBe(
        '2',
      );
      expect(sha256(await skopeoRaw('v1'))).toBe(v1ManifestDigest);
    });

    it('refuses to overwrite a version tag that holds another truststore digest', async () => {
      const impostor = { ...(await dummyBundle(1)), createdAt: undefined };
      const error = await driver()
        .push(impostor, noAbort())
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(TargetError);
      expect(error).toMatchObject({ kind: 'conflict', retryable: false });
      expect(sha256(await skopeoRaw('v1'))).toBe(v1ManifestDigest);
    });

    it('a late push of an older version does not move `current` back', async () => {
      const error = await driver()
        .push(v1, noAbort())
        .catch((e: unknown) => e);
      expect(error).toMatchObject({ kind: 'conflict', retryable: false, targetDetails: { heldVersion: 2 } });
      expect(JSON.parse((await skopeoRaw('current')).toString()).annotations['org.opencontainers.image.version']).toBe(
        '2',
      );
    });

    it('reads back nothing from a repository that holds no truststore', async () => {
      await expect(driver({ repository: 'signet/empty' }).readBack(noAbort())).resolves.toEqual({});
    });

    if (auth === 'none') {
      it('distribution 2.8 hides an OCI manifest from clients that do not Accept the OCI type (why read-back sends it)', async () => {
        const plain = await fetch(`${registry.url}/v2/${repository}/manifests/current`, {
          headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json' },
        });
        expect(plain.status).toBe(404);
        expect(await plain.text()).toContain('accept header does not support OCI manifests');
        const oci = await fetch(`${registry.url}/v2/${repository}/manifests/current`, {
          headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
        });
        expect(oci.status).toBe(200);
        await oci.arrayBuffer();
      });
    }

    if (auth !== 'none') {
      it('wrong credentials fail with a typed, non-retryable auth error that does not contain them', async () => {
        const password = 'definitely-wrong-password';
        const error = await driver({ credentials: { username: registry.username, password } })
          .push(await dummyBundle(9), noAbort())
          .catch((e: unknown) => e);
        expect(error).toBeInstanceOf(TargetError);
        expect(error).toMatchObject({ kind: 'auth', retryable: false });
        expect(
          JSON.stringify({ message: (error as Error).message, details: (error as TargetError).details }),
        ).not.toContain(password);
      });

      it('missing credentials fail with a typed auth error', async () => {
        const error = await driver({ credentials: undefined })
          .readBack(noAbort())
          .catch((e: unknown) => e);
        expect(error).toMatchObject({ kind: 'auth', retryable: false });
      });
    }

    if (auth === 'token') {
      it('fetches one token per scope and reuses it until it expires', async () => {
        const target = driver();
        const before = registry.tokenIssuer!.requests.length;
        await target.push(await dummyBundle(3), noAbort());
        expect(target.tokenFetches).toBe(1);
        await target.readBack(noAbort()); // pull is covered by the pull,push token
        await target.push(await dummyBundle(4), noAbort());
        expect(target.tokenFetches).toBe(1);
        expect(registry.tokenIssuer!.requests.length - before).toBe(1);
        expect(registry.tokenIssuer!.requests.at(-1)!.scopes).toEqual([`repository:${repository}:pull,push`]);
      });

      it('refuses a token realm outside the allowed hosts', async () => {
        const error = await driver({ allowedHosts: [] })
          .readBack(noAbort())
          .catch((e: unknown) => e);
        expect(error).toBeInstanceOf(TargetError);
        expect(error).toMatchObject({ kind: 'forbidden-host', retryable: false });
      });

      it('refuses a token realm that redirects to a host outside the allowed hosts, without following it', async () => {
        registry.tokenIssuer!.redirectTo = `http://localhost:${registry.tokenIssuer!.port}/issued`;
        try {
          const before = registry.tokenIssuer!.requests.length;
          const error = await driver()
            .readBack(noAbort())
            .catch((e: unknown) => e);
          expect(error).toMatchObject({ kind: 'forbidden-host', retryable: false });
          expect((error as Error).message).toContain('localhost');
          expect(registry.tokenIssuer!.requests.length - before).toBe(1); // the realm hit, never the redirect
        } finally {
          registry.tokenIssuer!.redirectTo = undefined;
        }
      });

      it('follows a token realm redirect within the allowed hosts, keeping credentials on the same origin', async () => {
        registry.tokenIssuer!.redirectTo = `http://127.0.0.1:${registry.tokenIssuer!.port}/issued`;
        try {
          await expect(driver().readBack(noAbort())).resolves.toMatchObject({ version: 4 });
        } finally {
          registry.tokenIssuer!.redirectTo = undefined;
        }
      });

      it('drops credentials when a token realm redirects to another allowed origin', async () => {
        registry.tokenIssuer!.redirectTo = `http://localhost:${registry.tokenIssuer!.port}/issued`;
        try {
          const before = registry.tokenIssuer!.requests.length;
          const error = await driver({
            allowedHosts: [registry.tokenIssuer!.host, `localhost:${registry.tokenIssuer!.port}`],
          })
            .readBack(noAbort())
            .catch((e: unknown) => e);
          expect(registry.tokenIssuer!.requests.slice(before).map((r) => r.authorized)).toEqual([true, false]);
          expect(error).toMatchObject({ kind: 'auth', retryable: false }); // the issuer refuses the anonymous request
        } finally {
          registry.tokenIssuer!.redirectTo = undefined;
        }
      });
    }
  },
);
