import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import * as path from 'node:path';
import { DEV_ISSUING_CA, DEV_ROOT_CA } from '../../src/ca/dev-hierarchy.bootstrap';
import { CaService } from '../../src/ca/ca.service';
import { issueCodeSigningCertificate } from '../../src/pki/certificate-issuer';
import { createHierarchy, issueLeaf } from '../ca/ca-fixtures';
import { createNodeSigner } from '../support/node-signer';
import { TestRegistry } from '../support/registry';
import { tempDir } from '../support/server-process';
import { startTestApp, TestApp } from '../support/test-app';
import { apiClient, targetsOf, waitConverged, waitFor } from './distribution-helpers';
import { DrillSignature, RegionVerifier } from './fleet-verifier';

/**
 * Fleet drill: three regions, each a real docker-registry and a verifier that trusts only the roots
 * its registry serves and applies NOTARY.md's rules (fleet-verifier.ts): `eu` checks revocation over
 * OCSP, `us` through CRL URLs, `ap` is marked offline and uses the CRLs inside its bundle. Through
 * two leaf rotations, an issuing-CA renewal, a root rollover (with one region's registry down while
 * the rotation waits at the distribution gate) and a revocation — all through the rotation and
 * revocation APIs — no valid signature is ever rejected; the revoked version's signature, an
 * expired certificate's and one under a foreign root are rejected, the revoked one in every region
 * (offline included) once that region converged.
 */
describe('fleet drill: rotations, rollover and revocation reach every region without rejecting a valid signature', () => {
  let t: TestApp;
  let api: ReturnType<typeof apiClient>;
  const registries: Record<string, TestRegistry> = {};
  const verifiers: RegionVerifier[] = [];
  const valid: DrillSignature[] = [];
  /** Signatures every region must reject, and why. */
  const invalid: Array<DrillSignature & { because: RegExp }> = [];
  const publicBase = 'http://signet.test:8080';

  beforeAll(async () => {
    [registries.eu, registries.us, registries.ap] = await Promise.all([
      TestRegistry.start({ auth: 'htpasswd' }),
      TestRegistry.start({ auth: 'token' }),
      TestRegistry.start({ auth: 'none' }),
    ]);
    t = await startTestApp({
      SIGNET_AUDIT_CHECKPOINT_INTERVAL_SECONDS: '0',
      SIGNET_DISTRIBUTION_ALLOW_LOOPBACK: 'true',
      SIGNET_DISTRIBUTION_BACKOFF_BASE_MS: '200',
      SIGNET_DISTRIBUTION_BACKOFF_MAX_MS: '1000',
      SIGNET_DISTRIBUTION_INTERVAL_SECONDS: '2',
      SIGNET_ROTATION_TICK_SECONDS: '1',
      SIGNET_ROTATION_RETRY_SECONDS: '1',
    });
    api = apiClient(t);
    const fetchPublic = async (method: 'GET' | 'POST', url: string, body?: Buffer) => {
      if (!url.startsWith(publicBase)) throw new Error(`verifier asked for ${url}, outside Signet's public URL`);
      const response = await t.app.inject({
        method,
        url: url.slice(publicBase.length),
        payload: body,
        headers: body ? { 'content-type': 'application/ocsp-request' } : {},
      });
      return { status: response.statusCode, body: response.rawPayload };
    };
    const dir = tempDir('fleet-drill-');
    verifiers.push(
      new RegionVerifier('eu', registries.eu, 'signet/truststore', 'ocsp', fetchPublic, path.join(dir, 'eu')),
      new RegionVerifier('us', registries.us, 'signet/truststore', 'crl-url', fetchPublic, path.join(dir, 'us')),
      new RegionVerifier('ap', registries.ap, 'signet/truststore', 'bundle-crl', fetchPublic, path.join(dir, 'ap')),
    );

    await api.ok('POST', '/v1/truststores', { name: 'fleet', cas: [DEV_ROOT_CA] });
    for (const region of ['eu', 'us', 'ap']) {
      const registry = registries[region];
      await api.ok('POST', '/v1/regions', { name: region, offline: region === 'ap' });
      await api.ok(
        'POST',
        `/v1/regions/${region}/targets`,
        {
          name: 'registry',
          kind: 'oci-registry',
          endpoint: registry.url,
          repository: 'signet/truststore',
          truststore: 'fleet',
          ...(registry.auth === 'none'
            ? {}
            : { credentials: { username: registry.username, password: registry.password } }),
        },
        201,
      );
    }
    const subject = { C: 'US', ST: 'Washington', O: 'Example Corp' };
    await api.ok(
      'POST',
      '/v1/keys',
      { name: 'release', keySpec: 'EC-256', subject: { ...subject, CN: 'release' }, issuer: DEV_ISSUING_CA },
      201,
    );
    await waitConverged(api.status);
  }, 120_000);

  afterAll(async () => {
    await t?.close();
    await Promise.all(Object.values(registries).map((r) => r.dispose()));
  });

  async function sign(label: string): Promise<DrillSignature> {
    const payload = randomBytes(64);
    const digest = createHash('sha256').update(payload).digest();
    const response = await api.ok('POST', '/v1/keys/release/sign', {
      digest: digest.toString('base64'),
      hashAlgorithm: 'SHA-256',
      signatureFormat: 'raw',
    });
    const body = response.json() as { signature: string; certificateChain: string[]; keyVersion: number };
    return {
      label: `${label} (release v${body.keyVersion})`,
      payload,
      signature: Buffer.from(body.signature, 'base64'),
      chain: body.certificateChain.map((c) => Buffer.from(c, 'base64')),
    };
  }

  /** Every region refreshes from its registry; every valid signature must verify, every invalid one must not. */
  async function checkFleet(
    step: string,
    revokedExpectations: Array<{ signature: DrillSignature; regions: string[] }> = [],
  ): Promise<void> {
    await Promise.all(verifiers.map((v) => v.refresh()));
    const wrong: string[] = [];
    for (const verifier of verifiers) {
      for (const signature of valid) {
        const verdict = await verifier.verify(signature);
        if (!verdict.ok) wrong.push(`${step}: ${verifier.region} REJECTED valid ${signature.label}: ${verdict.reason}`);
      }
      for (const signature of invalid) {
        const verdict = await verifier.verify(signature);
        if (verdict.ok) wrong.push(`${step}: ${verifier.region} accepted invalid ${signature.label}`);
        else if (!signature.because.test(verdict.reason))
          wrong.push(`${step}: ${verifier.region} rejected ${signature.label} for another reason: ${verdict.reason}`);
      }
      for (const { signature, regions } of revokedExpectations) {
        if (!regions.includes(verifier.region)) continue;
        const verdict = await verifier.verify(signature);
        if (verdict.ok || !/revocation revoked/.test(verdict.reason))
          wrong.push(
            `${step}: ${verifier.region} did not reject revoked ${signature.label} as revoked (${verdict.reason})`,
          );
      }
    }
    expect(wrong).toEqual([]);
  }

  async function rotation(url: string): Promise<string> {
    const response = await api.ok('POST', url, {}, 202);
    return response.json().id;
  }

  async function waitRotation(id: string, states = ['activated', 'completed']): Promise<void> {
    await waitFor(`rotation ${id} to reach ${states.join('/')}`, async () => {
      const view = (await api.ok('GET', `/v1/rotations/${id}`)).json();
      if (view.state === 'failed') throw new Error(`rotation ${id} failed: ${JSON.stringify(view.steps)}`);
      return states.includes(view.state);
    });
  }

  const rootsOf = async () =>
    (await api.ok('GET', '/v1/truststores/fleet')).json().roots.map((r: { generation: string }) => r.generation);

  it('before anything changes: the first signature verifies everywhere; an expired certificate and a foreign root are rejected everywhere', async () => {
    valid.push(await sign('s1'));

    // An expired certificate from the real issuing CA (HSM-signed): valid for 15 minutes a day ago.
    const cas = t.app.get(CaService);
    const issuingGeneration = await cas.activeGeneration((await cas.byName(DEV_ISSUING_CA)).id);
    const issuer = await cas.issuerFor(issuingGeneration);
    const expiredKey = createNodeSigner('EC-256');
    const expired = await issueCodeSigningCertificate({
      issuer,
      subject: { C: 'US', ST: 'Washington', O: 'Example Corp', CN: 'release' },
      publicKeySpki: expiredKey.publicKeySpki,
      validityDays: 0.01,
      backdateSeconds: 86_400,
    });
    expect(expired.notAfter.getTime()).toBeLessThan(Date.now());
    const payload = randomBytes(64);
    invalid.push({
      label: 'expired certificate',
      because: /certificate 0 is not valid now/,
      payload,
      signature: await expiredKey.signDigest(createHash('sha256').update(payload).digest(), 'SHA-256'),
      chain: [expired.der, issuingGeneration.certificate!, ...issuingGeneration.chain],
    });

    // A well-formed chain under a root no truststore holds.
    const foreign = await createHierarchy('EC-256');
    const { signer, leaf } = await issueLeaf(foreign.issuingIssuer, 'EC-256');
    const foreignPayload = randomBytes(64);
    invalid.push({
      label: 'foreign root',
      because: /no certificate of the chain is a trusted root/,
      payload: foreignPayload,
      signature: await signer.signDigest(createHash('sha256').update(foreignPayload).digest(), 'SHA-256'),
      chain: [leaf.der, foreign.issuing.der, foreign.root.der],
    });

    await checkFleet('initial');
    expect(verifiers.map((v) => v.roots.length)).toEqual([1, 1, 1]);
  });

  it('two leaf rotations change no truststore; old and new signatures verify everywhere', async () => {
    const rootsBefore = await rootsOf();
    for (const label of ['s2', 's3']) {
      await waitRotation(await rotation('/v1/keys/release/rotate'));
      valid.push(await sign(label));
      expect(await rootsOf()).toEqual(rootsBefore);
      await checkFleet(`after leaf rotation → ${label}`);
    }
    expect(new Set(valid.map((s) => new X509Certificate(s.chain[0]).serialNumber)).size).toBe(3);
  });

  it('an issuing-CA renewal: its new generation (and CRL) reaches every region; leaves of both generations verify', async () => {
    await waitRotation(await rotation(`/v1/cas/${DEV_ISSUING_CA}/renew`));
    await waitFor('the new issuing generation’s CRL in the truststore', async () => {
      const crls = (await api.ok('GET', '/v1/truststores/fleet'))
        .json()
        .crls.map((c: { generation: string }) => c.generation);
      return crls.includes(`${DEV_ISSUING_CA}-g2`);
    });
    await waitConverged(api.status);
    await waitRotation(await rotation('/v1/keys/release/rotate'));
    const s4 = await sign('s4');
    expect(new X509Certificate(s4.chain[1]).raw.equals(new X509Certificate(valid[0].chain[1]).raw)).toBe(false);
    valid.push(s4);
    await checkFleet('after issuing-CA renewal → s4');
  });

  it('a root rollover with one region down: the new root reaches the others, the rotation waits at the gate, old signatures keep verifying; once the region is back the new hierarchy signs and every region accepts it', async () => {
    await registries.us.stop();
    let id = '';
    try {
      id = await rotation(`/v1/cas/${DEV_ROOT_CA}/renew`);
      await waitFor('the new root in the truststore', async () => (await rootsOf()).length === 2);
      await waitConverged(api.status, ['eu/registry', 'ap/registry']);
      const waiting = await waitFor('the rollover to wait at the distribution gate for us', async () => {
        const view = (await api.ok('GET', `/v1/rotations/${id}`)).json();
        const gate = view.steps.find((s: { name: string }) => s.name === 'distribution-gate');
        return view.step === 'distribution-gate' &&
          gate?.state === 'waiting' &&
          JSON.stringify(gate).includes('us/registry')
          ? view
          : false;
      });
      expect(waiting.state).toBe('running');
      const us = targetsOf(await api.status()).find((x) => x.region === 'us')!;
      expect(us.state === 'retrying' || us.state === 'pushing').toBe(true);
      // Meanwhile the old hierarchy still signs, and everything verifies everywhere (us on the bundle it last got).
      valid.push(await sign('s5 (during the rollover)'));
      await checkFleet('root rollover waiting at the gate');
      expect(verifiers.map((v) => [v.region, v.roots.length])).toEqual([
        ['eu', 2],
        ['us', 1],
        ['ap', 2],
      ]);
    } finally {
      await registries.us.startProcess();
    }
    await waitRotation(id);
    await waitConverged(api.status);
    await waitRotation(await rotation('/v1/keys/release/rotate'));
    const s6 = await sign('s6 (new root)');
    expect(new X509Certificate(s6.chain.at(-1)!).raw.equals(new X509Certificate(valid[0].chain.at(-1)!).raw)).toBe(
      false,
    );
    valid.push(s6);
    await checkFleet('after the root rollover → s6');
    expect(verifiers.map((v) => v.roots.length)).toEqual([2, 2, 2]);
  });

  it('a revocation: the revoked version’s signature is rejected in every region — the offline one through its bundle’s CRL once it converged — and the time to converge is recorded', async () => {
    const revoked = valid.splice(1, 1)[0]; // s2
    const serial = new X509Certificate(revoked.chain[0]).serialNumber;
    const before = (await api.ok('GET', '/v1/truststores/fleet')).json().version;
    await api.ok('POST', `/v1/certificates/${serial}/revoke`, { reason: 'keyCompromise' });
    const status = await waitFor('the revocation to reach every target', async () => {
      const s = await api.status();
      const fleet = s.truststores.find((x) => x.name === 'fleet')!;
      return fleet.version > before &&
        fleet.lastRevocation &&
        fleet.lastRevocation.seconds !== null &&
        targetsOf(s).every((x) => x.state === 'converged')
        ? s
        : false;
    });
    const fleet = status.truststores.find((x) => x.name === 'fleet')!;
    expect(fleet.lastRevocation!.seconds).toBeGreaterThan(0);
    await checkFleet('after the revocation', [{ signature: revoked, regions: ['eu', 'us', 'ap'] }]);
    expect(verifiers.map((v) => v.servedVersion)).toEqual([fleet.version, fleet.version, fleet.version]);
    invalid.push({ ...revoked, because: /certificate 0: revocation revoked/ });
    await checkFleet('final');
  });
});
