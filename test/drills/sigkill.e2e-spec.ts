import { DEV_ROOT_CA } from '../../src/ca/dev-hierarchy.bootstrap';
import type { DistributionStatus } from '../../src/distribution/distribution-status.service';
import { nextOccurrence } from '../../src/keys/rotation-schedule';
import { FAST_DISTRIBUTION_ENV, targetsOf, waitConverged } from '../distribution/distribution-helpers';
import { SUBJECT } from '../rotation/rotation-helpers';
import { SignetProcess, startSignet } from '../rotation/rotation-process';
import { createTestDatabase, query, TestDatabase } from '../support/database';
import { TestRegistry } from '../support/registry';
import { ensureBuilt, tempDir } from '../support/server-process';
import {
  DrillSubject,
  expectDrillInvariants,
  faultTimes,
  httpTransport,
  loadTotals,
  reportDrill,
  SignLoad,
  waitFor,
} from './drill-kit';

const CLIENTS = 8;
const DAY = 86_400_000;
const HOUR = 3_600_000;
const STEPS = ['create-key', 'issue-certificate', 'activate', 'retire', 'destroy'];
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

/** The drill invariants against whichever process currently serves the database. */
function processSubject(current: () => SignetProcess, database: TestDatabase): DrillSubject {
  return {
    api: (method, url, body) => current().api(method, url, body),
    databaseUrl: database.url,
    reconcile: async () => (await current().hsm()).reconciliation,
  };
}

/** Reports the drill, checks the drill invariants against the restarted process, and stops it. */
async function finishDrill(
  drill: string,
  measured: Record<string, unknown>,
  load: SignLoad,
  current: SignetProcess,
  database: TestDatabase,
  key: string,
): Promise<void> {
  reportDrill(drill, { ...measured, ...loadTotals(load), clients: CLIENTS });
  await expectDrillInvariants(
    processSubject(() => current, database),
    load,
    key,
  );
  await current.stop();
}

/**
 * Drills with real processes (node dist/src/main.js) and a real SIGKILL, under a steady sign load
 * of 8 clients over HTTP that follows the service to the restarted process. Each ends with the
 * drill invariants (every delivered signature audited and verifying, every audit sign row an HSM
 * signature over a message the load sent, chain and checkpoints verify, HSM reconciliation clean).
 */
describe('drill: SIGKILL under sign load, then restart', () => {
  beforeAll(() => ensureBuilt());

  it('killed during a rotation (SIGKILL right after its activate step commits): the restarted process completes that rotation exactly once and signing resumes', async () => {
    const database = await createTestDatabase();
    const env = { DATABASE_URL: database.url, SIGNET_DATA_DIR: tempDir('drill-kill-rotation-') };
    // Overlap and retention of one day each: the ticks at T, T+1d, T+2d take a rotation through every step.
    const quarter = nextOccurrence('quarterly', new Date());
    const ticks = [0, 1, 2].map((d) => new Date(quarter.getTime() + HOUR + d * DAY));
    const victim = await startSignet({ ...env, SIGNET_TEST_CRASH_AFTER_STEP: 'activate' });
    let current = victim;
    let load: SignLoad | undefined;
    try {
      expect(
        (
          await victim.api('POST', '/v1/keys', {
            name: 'release',
            keySpec: 'EC-256',
            subject: { ...SUBJECT, CN: 'release' },
            rotation: { overlapDays: 1, retentionDays: 1 },
          })
        ).status,
      ).toBe(201);
      const signer = (
        await victim.api('POST', '/v1/tokens', { name: 'drill-signer', role: 'signer', keys: ['release'] })
      ).body.token;
      load = new SignLoad(
        httpTransport(() => current.server.url, signer, 'release'),
        { clients: CLIENTS },
      ).start();
      await load.deliveredSince(0, 100);

      // The scheduler tick starts the rotation; the process SIGKILLs itself once `activate` committed.
      const faultAt = Date.now();
      await expect(victim.tick(ticks[0])).rejects.toThrow();
      expect(await victim.server.exited).toEqual({ code: null, signal: 'SIGKILL' });
      expect(victim.server.text()).toContain('test hook: SIGKILL at rotation crash point activate');
      const [left] = await query<{ state: string; steps: Array<{ name: string; state: string }> }>(
        database.url,
        `SELECT state, steps FROM rotations`,
      );
      // What the kill left: a rotation past activate, its retire and destroy steps not done.
      expect(left.state).toBe('activated');
      expect(left.steps.map((s) => s.state === 'done')).toEqual([true, true, true, false, false]);

      const restartAt = Date.now();
      current = await startSignet(env);
      const readyAt = Date.now();
      for (const at of ticks) await current.tick(at);
      const [rotation] = await query<{ state: string }>(database.url, `SELECT state FROM rotations`);
      expect(rotation.state).toBe('completed');
      const completedAt = Date.now();
      await load.deliveredSince(completedAt, 100);
      await load.stop();

      // Exactly once: one rotation, each step audited done once, one new version, the old one destroyed.
      expect(await query(database.url, `SELECT state FROM rotations`)).toEqual([{ state: 'completed' }]);
      const audited = await query<{ step: string; n: number }>(
        database.url,
        `SELECT data->>'step' AS step, count(*)::int AS n FROM audit_events WHERE type = 'rotation.step' AND data->>'outcome' = 'done' GROUP BY 1`,
      );
      expect(Object.fromEntries(audited.map((a) => [a.step, a.n]))).toEqual(
        Object.fromEntries(STEPS.map((s) => [s, 1])),
      );
      expect(await query(database.url, `SELECT version, state FROM key_versions ORDER BY version`)).toEqual([
        { version: 1, state: 'destroyed' },
        { version: 2, state: 'active' },
      ]);
      // Signatures of both versions reached clients; requests to the dead process got no answer at all.
      expect(new Set(load.delivered.map((d) => d.keyVersion))).toEqual(new Set([1, 2]));
      expect(load.failed.every((r) => r.status === 0 || r.status === 503)).toBe(true);

      const measured = {
        ...faultTimes(load, { faultAt, recoveredAt: restartAt }),
        restartToReadyMs: readyAt - restartAt,
        restartToRotationCompletedMs: completedAt - restartAt,
      };
      await finishDrill('SIGKILL during a rotation', measured, load, current, database, 'release');
    } finally {
      await load?.stop();
      victim.server.kill('SIGKILL');
      current.server.kill('SIGKILL');
      await database.drop();
    }
  });

  it('killed during a distribution round: the restarted process converges every target, and a target already holding the version is not pushed again', async () => {
    const database = await createTestDatabase();
    const registries = await Promise.all([0, 1, 2].map(() => TestRegistry.start({ auth: 'none' })));
    const env = {
      DATABASE_URL: database.url,
      SIGNET_DATA_DIR: tempDir('drill-kill-distribution-'),
      ...FAST_DISTRIBUTION_ENV,
      // One push at a time, so the kill lands with part of the fleet delivered and part not.
      SIGNET_DISTRIBUTION_CONCURRENCY: '1',
      SIGNET_DISTRIBUTION_ATTEMPT_TIMEOUT_MS: '4000',
      // The dead process's leases expire after this; the restarted one then takes the targets over.
      SIGNET_DISTRIBUTION_LEASE_SECONDS: '5',
    };
    const victim = await startSignet(env);
    let current = victim;
    let load: SignLoad | undefined;
    const status = async (): Promise<DistributionStatus> => (await current.api('GET', '/v1/distribution')).body;
    try {
      const ok = async (method: 'POST' | 'PATCH', url: string, body: unknown) => {
        const response = await current.api(method, url, body);
        if (response.status >= 300)
          throw new Error(`${method} ${url} → ${response.status}: ${JSON.stringify(response.body)}`);
        return response.body;
      };
      await ok('POST', '/v1/truststores', { name: 'fleet', cas: [DEV_ROOT_CA] });
      const repositories = ['signet/ts-a', 'signet/ts-b', 'signet/ts-c'];
      for (const [i, registry] of registries.entries()) {
        await ok('POST', '/v1/regions', { name: `r${i}` });
        for (const [j, repository] of repositories.entries()) {
          await ok('POST', `/v1/regions/r${i}/targets`, {
            name: `t${j}`,
            kind: 'oci-registry',
            endpoint: registry.url,
            repository,
            truststore: 'fleet',
          });
        }
      }
      await waitConverged(status, undefined, 120_000);
      await ok('POST', '/v1/keys', {
        name: 'drill-kill-dist',
        keySpec: 'EC-256',
        subject: { ...SUBJECT, CN: 'drill-kill-dist' },
      });
      const signer = (
        await ok('POST', '/v1/tokens', { name: 'drill-signer', role: 'signer', keys: ['drill-kill-dist'] })
      ).token;
      load = new SignLoad(
        httpTransport(() => current.server.url, signer, 'drill-kill-dist'),
        { clients: CLIENTS },
      ).start();
      await load.deliveredSince(0, 100);

      await ok('POST', '/v1/cas', {
        name: 'drill-root',
        kind: 'root',
        keySpec: 'EC-256',
        subject: { ...SUBJECT, CN: 'Drill Root' },
      });
      const changed = await ok('PATCH', '/v1/truststores/fleet', { cas: [DEV_ROOT_CA, 'drill-root'] });
      const delivered = () =>
        query<{ n: number }>(
          database.url,
          `SELECT count(*)::int AS n FROM distribution_targets WHERE delivered_version = $1`,
          [changed.version],
        );
      await waitFor('the first target to hold the new version', async () => (await delivered())[0].n >= 1, 120_000, 2);
      const faultAt = Date.now();
      victim.server.kill('SIGKILL');
      expect(await victim.server.exited).toEqual({ code: null, signal: 'SIGKILL' });
      const [{ n: deliveredAtKill }] = await delivered();
      expect(deliveredAtKill).toBeLessThan(9);

      const restartAt = Date.now();
      current = await startSignet(env);
      const readyAt = Date.now();
      const converged = await waitConverged(status, undefined, 120_000);
      const convergedAt = Date.now();
      const truststore = (await current.api('GET', '/v1/truststores/fleet')).body;
      expect(truststore.version).toBe(changed.version);
      for (const target of targetsOf(converged))
        expect(target.delivered).toMatchObject({ version: truststore.version, digest: truststore.digest });
      // Idempotent pushes: each target recorded at most one push of the version (one already holding it is skipped), and
      // each repository's `current` and version tags name the same manifest, carrying the truststore digest.
      const pushes = await query<{ name: string; pushed: number }>(
        database.url,
        `SELECT t.name, count(*) FILTER (WHERE NOT d.skipped)::int AS pushed FROM distribution_targets t LEFT JOIN distribution_deliveries d ON d.target_id = t.id AND d.version = $1 GROUP BY t.id, t.name`,
        [changed.version],
      );
      expect(pushes.filter((p) => p.pushed > 1)).toEqual([]);
      for (const registry of registries) {
        for (const repository of repositories) {
          const manifest = await fetch(`${registry.url}/v2/${repository}/manifests/current`, {
            headers: { accept: OCI_MANIFEST },
          });
          expect(
            ((await manifest.json()) as { annotations: Record<string, string> }).annotations[
              'io.signet.truststore.digest'
            ],
          ).toBe(truststore.digest);
          const tagged = await fetch(`${registry.url}/v2/${repository}/manifests/v${truststore.version}`, {
            method: 'HEAD',
            headers: { accept: OCI_MANIFEST },
          });
          expect(tagged.headers.get('docker-content-digest')).toBe(manifest.headers.get('docker-content-digest'));
        }
      }
      await load.deliveredSince(convergedAt, 100);
      await load.stop();
      expect(load.failed.every((r) => r.status === 0 || r.status === 503)).toBe(true);

      const measured = {
        ...faultTimes(load, { faultAt, recoveredAt: restartAt }),
        targetsDeliveredAtKill: deliveredAtKill,
        targets: 9,
        restartToReadyMs: readyAt - restartAt,
        restartToConvergedMs: convergedAt - restartAt,
      };
      await finishDrill('SIGKILL during a distribution round', measured, load, current, database, 'drill-kill-dist');
    } finally {
      await load?.stop();
      victim.server.kill('SIGKILL');
      current.server.kill('SIGKILL');
      await Promise.all(registries.map((r) => r.dispose()));
      await database.drop();
    }
  });
});
