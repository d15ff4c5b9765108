import { DEV_ROOT_CA } from '../../src/ca/dev-hierarchy.bootstrap';
import { apiClient, FAST_DISTRIBUTION_ENV, targetsOf, waitConverged } from '../distribution/distribution-helpers';
import { SUBJECT } from '../rotation/rotation-helpers';
import { TestRegistry } from '../support/registry';
import { startTestApp, TestApp } from '../support/test-app';
import {
  expectDrillInvariants,
  faultTimes,
  injectTransport,
  inProcessSubject,
  loadTotals,
  reportDrill,
  SignLoad,
  waitFor,
} from './drill-kit';

const CLIENTS = 8;
const REGIONS = ['eu', 'us', 'ap'];

/**
 * Drill: three regions, each a real docker-registry on 127.0.0.1, while 8 clients sign steadily.
 * The `us` registry is stopped, a truststore change (a new root) starts a distribution round:
 * eu and ap converge while us retries with backoff; once us is started again it converges too.
 * Signing is never affected, and the drill invariants hold afterwards.
 */
describe('drill: a target registry down during a distribution round, under sign load', () => {
  let t: TestApp;
  let api: ReturnType<typeof apiClient>;
  const registries: Record<string, TestRegistry> = {};

  beforeAll(async () => {
    const started = await Promise.all(REGIONS.map(() => TestRegistry.start({ auth: 'none' })));
    REGIONS.forEach((region, i) => (registries[region] = started[i]));
    t = await startTestApp({
      SIGNET_LOG_LEVEL: 'fatal',
      SIGNET_AUDIT_CHECKPOINT_INTERVAL_SECONDS: '0',
      ...FAST_DISTRIBUTION_ENV,
    });
    api = apiClient(t);
    await api.ok('POST', '/v1/truststores', { name: 'fleet', cas: [DEV_ROOT_CA] });
    for (const region of REGIONS) {
      await api.ok('POST', '/v1/regions', { name: region });
      await api.ok(
        'POST',
        `/v1/regions/${region}/targets`,
        {
          name: 'registry',
          kind: 'oci-registry',
          endpoint: registries[region].url,
          repository: 'signet/truststore',
          truststore: 'fleet',
        },
        201,
      );
    }
    await api.ok(
      'POST',
      '/v1/keys',
      { name: 'drill-dist', keySpec: 'EC-256', subject: { ...SUBJECT, CN: 'drill-dist' } },
      201,
    );
    await waitConverged(api.status);
  }, 180_000);

  afterAll(async () => {
    await t?.close();
    await Promise.all(Object.values(registries).map((r) => r.dispose()));
  });

  it('the other regions converge while one registry is down, it converges after it returns, and signing is unaffected', async () => {
    const signer = (
      await api.ok('POST', '/v1/tokens', { name: 'drill-signer', role: 'signer', keys: ['drill-dist'] })
    ).json().token;
    const subject = inProcessSubject(t.app, api.admin, t.database.url);
    const load = new SignLoad(injectTransport(t.app, signer, 'drill-dist'), { clients: CLIENTS }).start();
    let measured: Record<string, number | null> = {};
    try {
      await load.deliveredSince(0, 100);
      await registries.us.stop();
      const faultAt = Date.now();
      let recoveredAt = 0;
      try {
        await api.ok(
          'POST',
          '/v1/cas',
          { name: 'drill-root', kind: 'root', keySpec: 'EC-256', subject: { ...SUBJECT, CN: 'Drill Root' } },
          201,
        );
        const changedAt = Date.now();
        const changed = (await api.ok('PATCH', '/v1/truststores/fleet', { cas: [DEV_ROOT_CA, 'drill-root'] })).json();
        await waitConverged(api.status, ['eu/registry', 'ap/registry'], 120_000);
        const othersConvergedAt = Date.now();
        const us = await waitFor('us to fail at least twice and retry', async () => {
          const target = targetsOf(await api.status()).find((x) => x.region === 'us')!;
          return target.attempts >= 2 ? target : false;
        });
        expect(['retrying', 'pushing']).toContain(us.state);
        expect(us.lastError).toMatchObject({ kind: 'unreachable' });
        expect(us.delivered!.version).toBe(changed.version - 1);
        await load.deliveredSince(othersConvergedAt, 50);
        measured = { changeToOthersConvergedMs: othersConvergedAt - changedAt, usAttemptsWhileDown: us.attempts };
      } finally {
        await registries.us.startProcess();
        recoveredAt = Date.now();
      }
      const status = await waitConverged(api.status, undefined, 120_000);
      const convergedAt = Date.now();
      const truststore = (await api.ok('GET', '/v1/truststores/fleet')).json();
      expect(
        targetsOf(status)
          .map((x) => [x.region, x.delivered!.version, x.delivered!.digest])
          .sort(),
      ).toEqual([...REGIONS].sort().map((r) => [r, truststore.version, truststore.digest]));
      await load.deliveredSince(convergedAt, 50);
      measured = {
        ...faultTimes(load, { faultAt, recoveredAt }),
        ...measured,
        registryBackToConvergedMs: convergedAt - recoveredAt,
      };
    } finally {
      await load.stop();
    }
    // The registry outage is distribution's business only: no sign request failed.
    expect(load.failed).toEqual([]);
    reportDrill('registry down during distribution', { ...measured, ...loadTotals(load), clients: CLIENTS });

    await expectDrillInvariants(subject, load, 'drill-dist');
  });
});
