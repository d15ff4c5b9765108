import { createHash } from 'node:crypto';
import { DEV_ROOT_CA } from '../../src/ca/dev-hierarchy.bootstrap';
import { apiClient, FAST_DISTRIBUTION_ENV, waitConverged, waitFor } from '../distribution/distribution-helpers';
import { TestRegistry } from '../support/registry';
import { startTestApp, TestApp } from '../support/test-app';

const SUBJECT = { C: 'US', ST: 'Washington', O: 'Example Corp' };

/**
 * What the security console needs of the API (README "Security console"), on the whole
 * application with a real docker-registry target: certificate search (by artifact: "which
 * certificate signed this image?"), the audit filters, and a revocation's progress from the
 * version that stopped signing to every region's targets.
 */
describe('security console API (HTTP)', () => {
  let t: TestApp;
  let api: ReturnType<typeof apiClient>;
  let registry: TestRegistry;
  const artifact = `sha256:${createHash('sha256').update('console-image').digest('hex')}`;
  const other = `sha256:${createHash('sha256').update('another-image').digest('hex')}`;
  let releaseSerial: string;

  const sign = (key: string, digest: string) =>
    api.ok('POST', `/v1/keys/${key}/sign`, {
      digest: Buffer.alloc(32, 7).toString('base64'),
      hashAlgorithm: 'SHA-256',
      artifact: { digest },
    });

  beforeAll(async () => {
    registry = await TestRegistry.start({ auth: 'none' });
    t = await startTestApp({
      SIGNET_AUDIT_CHECKPOINT_INTERVAL_SECONDS: '0',
      ...FAST_DISTRIBUTION_ENV,
      SIGNET_DISTRIBUTION_INTERVAL_SECONDS: '1',
      SIGNET_DISTRIBUTION_ATTEMPT_TIMEOUT_MS: '5000',
    });
    api = apiClient(t);
    for (const name of ['release', 'nightly'])
      await api.ok('POST', '/v1/keys', { name, keySpec: 'EC-256', subject: { ...SUBJECT, CN: name } }, 201);
    await sign('release', artifact);
    await sign('release', artifact);
    await sign('nightly', other);
    releaseSerial = (await api.ok('GET', '/v1/keys/release')).json().versions[0].serial;
    await api.ok('POST', '/v1/truststores', { name: 'fleet', cas: [DEV_ROOT_CA] }, 201);
    for (const region of ['eu', 'us']) {
      await api.ok('POST', '/v1/regions', { name: region }, 201);
      await api.ok(
        'POST',
        `/v1/regions/${region}/targets`,
        {
          name: 'registry',
          kind: 'oci-registry',
          endpoint: registry.url,
          repository: `signet/${region}`,
          truststore: 'fleet',
        },
        201,
      );
    }
    await waitConverged(api.status);
  }, 180_000);

  afterAll(async () => {
    await t?.close();
    await registry?.dispose();
  });

  it("answers GET /v1/status with signet status's items, each with the rule that makes it red", async () => {
    // A CRL is built on its first request (or a revocation); one never built reads as missing, as in signet status.
    const missing = (await api.ok('GET', '/v1/status'))
      .json()
      .crls.filter((c: { nextUpdate: string | null; red: boolean }) => c.nextUpdate === null);
    for (const crl of missing) {
      expect(crl.red).toBe(true);
      expect((await api.call('GET', `/pki/${crl.generation}.crl`, undefined, null)).statusCode).toBe(200);
    }
    const status = (await api.ok('GET', '/v1/status')).json();
    const red = Object.entries(status).flatMap(([name, value]) =>
      (Array.isArray(value) ? value : [value])
        .filter((item) => item?.red === true)
        .map((item) => `${name}: ${JSON.stringify(item)}`),
    );
    expect(red).toEqual([]);
    expect(status.red).toBe(false);
    expect(status.rotations.map((r: { key: string }) => r.key)).toEqual(['nightly', 'release']);
    for (const rotation of status.rotations) {
      expect(rotation).toMatchObject({
        schedule: 'quarterly',
        red: false,
        overdueSince: null,
        rule: expect.stringContaining('SIGNET_ROTATION_OVERDUE_HOURS'),
      });
      expect(Date.parse(rotation.nextDueAt)).toBeGreaterThan(Date.now());
    }
    expect(status.leaves.map((l: { key: string; red: boolean }) => [l.key, l.red])).toEqual([
      ['nightly', false],
      ['release', false],
    ]);
    expect(status.caGenerations.length).toBeGreaterThanOrEqual(2);
    expect(status.crls.every((c: { red: boolean; rule: string }) => c.rule.length > 0)).toBe(true);
    expect(status.distribution).toMatchObject({ targets: 2, converged: 2, red: false });
    expect(status.auditCheckpoint).toMatchObject({
      intervalSeconds: 0,
      red: false,
      headSeq: expect.stringMatching(/^\d+$/),
    });
  });

  it('finds the certificate that signed an artifact, with the signatures from the audit log; and by serial, key and subject', async () => {
    const byArtifact = (await api.ok('GET', `/v1/certificates?artifact=${artifact}`)).json().certificates;
    expect(byArtifact).toHaveLength(1);
    expect(byArtifact[0]).toMatchObject({ serial: releaseSerial, key: 'release', keyVersion: 1, status: 'good' });
    expect(byArtifact[0].signatures).toHaveLength(2);
    expect(byArtifact[0].signatures[0]).toMatchObject({
      seq: expect.stringMatching(/^\d+$/),
      time: expect.any(String),
      auditedAs: 'claimed',
    });
    expect((await api.ok('GET', `/v1/certificates?artifact=sha256:${'0'.repeat(64)}`)).json().certificates).toEqual([]);
    // Serial in any spelling the API accepts elsewhere.
    const bySerial = (await api.ok('GET', `/v1/certificates?serial=00${releaseSerial.toUpperCase()}`)).json()
      .certificates;
    expect(bySerial.map((c: { serial: string }) => c.serial)).toEqual([releaseSerial]);
    expect(
      (await api.ok('GET', '/v1/certificates?key=nightly')).json().certificates.map((c: { key: string }) => c.key),
    ).toEqual(['nightly']);
    const bySubject = (await api.ok('GET', '/v1/certificates?subject=cn%3Drel')).json().certificates;
    expect(bySubject.map((c: { key: string }) => c.key)).toEqual(['release']);
    // A subject search treats % and _ as text.
    expect((await api.ok('GET', '/v1/certificates?subject=%25')).json().certificates).toEqual([]);
    expect((await api.call('GET', '/v1/certificates?key=missing')).statusCode).toBe(404);
    expect((await api.call('GET', '/v1/certificates?artifact=sha256:XYZ')).statusCode).toBe(400);
    expect((await api.call('GET', `/v1/certificates?key=release&artifact=${artifact}`)).statusCode).toBe(400);
    expect((await api.ok('GET', `/v1/certificates/${releaseSerial}`)).json()).toMatchObject({
      key: 'release',
      keyVersion: 1,
    });
  });

  it('filters the audit log by actor, event type, key, artifact and time, newest first when asked', async () => {
    const list = async (query: string) =>
      (await api.ok('GET', `/v1/audit?${query}`)).json().events as Array<{
        seq: string;
        type: string;
        subject: string;
        time: string;
        actor: { tokenName?: string } | null;
        data: Record<string, unknown>;
      }>;
    const signs = await list(`artifact=${artifact}`);
    expect(signs.map((e) => [e.type, e.subject])).toEqual([
      ['sign', 'release'],
      ['sign', 'release'],
    ]);
    const byKey = await list('key=nightly');
    expect(byKey.map((e) => e.type)).toEqual(expect.arrayContaining(['key.created', 'sign']));
    expect(
      byKey.every((e) => e.subject === 'nightly' || e.data.key === 'nightly' || e.data.keyName === 'nightly'),
    ).toBe(true);
    const byActor = await list('actor=bootstrap-admin&type=sign');
    expect(byActor).toHaveLength(3);
    expect(await list('actor=nobody')).toEqual([]);
    const newest = await list('order=desc&limit=2');
    expect(Number(newest[0].seq)).toBeGreaterThan(Number(newest[1].seq));
    const older = (await api.ok('GET', `/v1/audit?order=desc&limit=2&before=${newest[1].seq}`)).json().events;
    expect(Number(older[0].seq)).toBeLessThan(Number(newest[1].seq));
    const firstSign = signs[0];
    expect(
      (
        await list(
          `type=sign&since=${encodeURIComponent(firstSign.time)}&until=${encodeURIComponent(new Date(Date.parse(firstSign.time) + 1).toISOString())}`,
        )
      ).map((e) => e.seq),
    ).toContain(firstSign.seq);
    expect(await list(`type=sign&until=${encodeURIComponent(firstSign.time)}`)).toEqual([]);
    expect((await api.call('GET', '/v1/audit?since=yesterday')).statusCode).toBe(400);
  });

  it('follows a revocation: signing stopped, OCSP revoked, CRL published, then the target of every region holds the new bundle, with the time each took', async () => {
    const before = (await api.ok('GET', `/v1/certificates/${releaseSerial}/revocation`)).json();
    expect(before).toMatchObject({
      revokedAt: null,
      signingStopped: { done: false },
      ocsp: { done: false, status: 'good' },
      everywhere: { done: false },
    });
    await api.ok('POST', `/v1/certificates/${releaseSerial}/revoke`, { reason: 'keyCompromise' });
    // At once: the version signs no more and OCSP reads it as revoked.
    const now = (await api.ok('GET', `/v1/certificates/${releaseSerial}/revocation`)).json();
    expect(now.signingStopped).toMatchObject({ done: true, key: 'release', keyVersion: 1, seconds: 0 });
    expect(now.ocsp).toMatchObject({ done: true, status: 'revoked' });
    expect(
      (
        await api.call('POST', '/v1/keys/release/sign', {
          digest: Buffer.alloc(32, 1).toString('base64'),
          hashAlgorithm: 'SHA-256',
        })
      ).statusCode,
    ).toBe(409);
    const everywhere = await waitFor('the revocation everywhere', async () => {
      const progress = (await api.ok('GET', `/v1/certificates/${releaseSerial}/revocation`)).json();
      return progress.everywhere.done ? progress : undefined;
    });
    expect(everywhere.crl).toMatchObject({
      done: true,
      crlNumber: expect.stringMatching(/^\d+$/),
      seconds: expect.any(Number),
    });
    expect(everywhere.regions.map((r: { name: string }) => r.name)).toEqual(['eu', 'us']);
    for (const region of everywhere.regions) {
      expect(region).toMatchObject({ done: true, targets: 1, delivered: 1, seconds: expect.any(Number) });
      expect(region.targetDetails[0]).toMatchObject({ name: 'registry', truststore: 'fleet', done: true });
      expect(region.targetDetails[0].deliveredVersion).toBeGreaterThanOrEqual(region.targetDetails[0].version);
      expect(region.seconds).toBeGreaterThanOrEqual(everywhere.crl.seconds);
    }
    expect(everywhere.everywhere.seconds).toBe(
      Math.max(...everywhere.regions.map((r: { seconds: number }) => r.seconds)),
    );
    // The same answer the distribution status gives for the truststore's last revocation.
    const status = await api.status();
    expect(status.truststores[0].lastRevocation).toMatchObject({
      version: everywhere.regions[0].targetDetails[0].version,
    });
    expect((await api.call('GET', '/v1/certificates/abcdef/revocation')).statusCode).toBe(404);
  });
});
