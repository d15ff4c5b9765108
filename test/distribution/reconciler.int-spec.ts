import { createHash, X509Certificate } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { SchedulerRegistry } from '@nestjs/schedule';
import { AuditService } from '../../src/audit/audit.service';
import { DEV_ROOT_CA } from '../../src/ca/dev-hierarchy.bootstrap';
import { CaService } from '../../src/ca/ca.service';
import { CaCreationService } from '../../src/ca/ca-creation.service';
import { DISTRIBUTION_GATE, DistributionGate } from '../../src/common/distribution-gate';
import { SIGNET_CONFIG, SignetConfig } from '../../src/config/config';
import { ChangeNotifier } from '../../src/database/change-notifier';
import { DistributionMetrics } from '../../src/distribution/distribution-metrics';
import { ReconcilerService } from '../../src/distribution/reconciler.service';
import { RegionsService } from '../../src/distribution/regions.service';
import { TargetCredentials } from '../../src/distribution/target-credentials';
import { TargetsRepository } from '../../src/distribution/targets.repository';
import { KeysService } from '../../src/keys/keys.service';
import { RevocationService } from '../../src/revocation/revocation.service';
import { TruststoreBundlesService } from '../../src/truststore/truststore-bundles.service';
import { query } from '../support/database';
import { TestRegistry } from '../support/registry';
import { startTestApp, TestApp } from '../support/test-app';
import { apiClient, pullWithSkopeo, targetsOf, waitConverged, waitFor } from './distribution-helpers';

/**
 * The reconcile loop on the whole application against real docker-registry processes in two
 * regions — `eu` with basic auth (bcrypt htpasswd, two repositories) and `us` in `auth: token`
 * mode with a token issuer the test runs — read back with skopeo.
 */
describe('distribution reconciler (whole app, real registries)', () => {
  let t: TestApp;
  let api: ReturnType<typeof apiClient>;
  let eu: TestRegistry;
  let us: TestRegistry;
  const base = { backoffBaseMs: 200, backoffMaxMs: 2000 };

  beforeAll(async () => {
    [eu, us] = await Promise.all([TestRegistry.start({ auth: 'htpasswd' }), TestRegistry.start({ auth: 'token' })]);
    t = await startTestApp({
      SIGNET_AUDIT_CHECKPOINT_INTERVAL_SECONDS: '0',
      SIGNET_DISTRIBUTION_BACKOFF_BASE_MS: String(base.backoffBaseMs),
      SIGNET_DISTRIBUTION_BACKOFF_MAX_MS: String(base.backoffMaxMs),
      SIGNET_DISTRIBUTION_ATTEMPT_TIMEOUT_MS: '5000',
      SIGNET_DISTRIBUTION_LEASE_SECONDS: '10',
      SIGNET_DISTRIBUTION_INTERVAL_SECONDS: '2',
      SIGNET_DISTRIBUTION_CONCURRENCY: '8',
      SIGNET_DISTRIBUTION_ALLOW_LOOPBACK: 'true',
    });
    api = apiClient(t);
    await t.app.get(KeysService).create({
      name: 'release',
      keySpec: 'EC-256',
      subject: { C: 'US', ST: 'Washington', O: 'Example Corp', CN: 'release' },
    });
  }, 120_000);

  afterAll(async () => {
    await t?.close();
    await Promise.all([eu?.dispose(), us?.dispose()]);
  });

  const credentialsOf = (registry: TestRegistry) => ({ username: registry.username, password: registry.password });
  const targets = [
    { region: 'eu', name: 'registry-a', repository: 'signet/truststore', registry: () => eu },
    { region: 'eu', name: 'registry-b', repository: 'platform/trust', registry: () => eu },
    { region: 'us', name: 'registry', repository: 'signet/truststore', registry: () => us },
  ];

  it('declares regions and targets; credentials are write-only', async () => {
    await api.ok('POST', '/v1/truststores', { name: 'fleet', cas: [DEV_ROOT_CA] });
    await api.ok('POST', '/v1/regions', { name: 'eu' });
    await api.ok('POST', '/v1/regions', { name: 'us' });
    for (const target of targets) {
      const response = await api.ok(
        'POST',
        `/v1/regions/${target.region}/targets`,
        {
          name: target.name,
          kind: 'oci-registry',
          endpoint: target.registry().url,
          repository: target.repository,
          truststore: 'fleet',
          credentials: credentialsOf(target.registry()),
        },
        201,
      );
      expect(response.json()).toMatchObject({
        region: target.region,
        name: target.name,
        required: true,
        hasCredentials: true,
      });
      expect(response.body).not.toContain(target.registry().password);
    }
    const read = await api.ok('GET', '/v1/regions/eu/targets/registry-a');
    expect(read.json()).not.toHaveProperty('credentials');
    expect(read.body).not.toContain(eu.password);
    expect(
      (await api.ok('GET', '/v1/regions'))
        .json()
        .regions.map((r: { name: string; targets: string[] }) => [r.name, r.targets]),
    ).toEqual([
      ['eu', ['registry-a', 'registry-b']],
      ['us', ['registry']],
    ]);
  });

  it('refuses target definitions the drivers would refuse, naming the field', async () => {
    const bad = async (body: Record<string, unknown>, field: RegExp) => {
      const response = await api.call('POST', '/v1/regions/eu/targets', {
        name: 'x',
        kind: 'oci-registry',
        endpoint: eu.url,
        repository: 'a/b',
        truststore: 'fleet',
        ...body,
      });
      expect(response.statusCode).toBe(400);
      expect(response.json().error.message).toMatch(field);
    };
    await bad({ repository: 'Not/Valid' }, /'repository'/);
    await bad({ endpoint: 'ftp://example.com' }, /'endpoint'/);
    await bad({ endpoint: `${eu.url}/v2/` }, /'endpoint'/);
    await bad({ credentials: { username: 'u' } }, /'credentials'/);
    await bad({ namespace: 'default' }, /'namespace' does not apply/);
    await bad({ formats: ['jks'] }, /formats/);
    expect(
      (
        await api.call('POST', '/v1/regions/nowhere/targets', {
          name: 'x',
          kind: 'oci-registry',
          endpoint: eu.url,
          repository: 'a/b',
          truststore: 'fleet',
        })
      ).statusCode,
    ).toBe(404);
    expect(
      (
        await api.call('POST', '/v1/regions/eu/targets', {
          name: 'x',
          kind: 'oci-registry',
          endpoint: eu.url,
          repository: 'a/b',
          truststore: 'nope',
        })
      ).statusCode,
    ).toBe(404);
  });

  it('every target converges: skopeo reads back the artifact, manifest and blobs, holding exactly the bundle formats', async () => {
    const status = await waitConverged(api.status);
    const truststore = (await api.ok('GET', '/v1/truststores/fleet')).json();
    for (const target of targetsOf(status)) {
      expect(target).toMatchObject({
        state: 'converged',
        desired: { version: truststore.version, digest: truststore.digest },
        delivered: { version: truststore.version, digest: truststore.digest },
      });
      expect(target.convergeSeconds).toEqual(expect.any(Number));
      expect(target.lastError).toBeNull();
    }
    const formats: Record<string, string> = {
      'truststore.pem': 'pem',
      'notation-truststore.tar': 'notation',
      'truststore.p12': 'pkcs12',
      'ratify-kmp.yaml': 'ratify',
      'kyverno-notary-attestor.yaml': 'kyverno',
      'kyverno-image-validating-policy.yaml': 'kyverno-ivp',
      'trust-manager-bundle.yaml': 'trust-manager',
    };
    const expected = new Map<string, Buffer>();
    for (const [title, format] of Object.entries(formats))
      expected.set(title, (await api.ok('GET', `/v1/truststores/fleet/bundle?format=${format}`)).rawPayload);
    for (const target of targets) {
      const pulled = await pullWithSkopeo(target.registry(), target.repository);
      expect(pulled.manifest.annotations).toMatchObject({
        'io.signet.truststore.digest': truststore.digest,
        'org.opencontainers.image.version': String(truststore.version),
        'io.signet.truststore.name': 'fleet',
      });
      // `current` and the version tag name the same manifest
      expect(
        (await pullWithSkopeo(target.registry(), target.repository, `v${truststore.version}`)).manifestRaw.equals(
          pulled.manifestRaw,
        ),
      ).toBe(true);
      for (const [title, content] of expected) expect(pulled.layers.get(title)?.equals(content)).toBe(true);
      const roots = pulled.layers.get('roots.pem')!.toString('utf8');
      expect(
        new X509Certificate(roots).raw.equals(
          new X509Certificate((await t.app.get(CaService).get(DEV_ROOT_CA)).generations[0].certificate!).raw,
        ),
      ).toBe(true);
    }
    const audit = (await api.ok('GET', '/v1/audit?type=distribution.delivered')).json().events as Array<{
      subject: string;
      data: Record<string, unknown>;
    }>;
    expect(audit.map((e) => e.subject).sort()).toEqual(['eu/registry-a', 'eu/registry-b', 'us/registry']);
  });

  it('a registry that is down retries with backoff while the others converge, and converges after it comes back; the rotation gate follows the delivery records', async () => {
    const cas = t.app.get(CaService);
    const gate = t.app.get<DistributionGate>(DISTRIBUTION_GATE);
    let secondRoot = '';
    let changed = { version: 0 };
    await eu.stop();
    try {
      await t.app.get(CaCreationService).create({
        name: 'second-root',
        kind: 'root',
        keySpec: 'EC-256',
        subject: { C: 'US', ST: 'Washington', O: 'Example Corp', CN: 'Second Root' },
      });
      secondRoot = createHash('sha256')
        .update(new X509Certificate((await cas.get('second-root')).generations[0].certificate!).raw)
        .digest('hex');
      expect(await gate.requiredTargetsHaveRoot(secondRoot)).toEqual({
        acknowledged: false,
        pending: ['eu/registry-a', 'eu/registry-b', 'us/registry'],
      });
      changed = (await api.ok('PATCH', '/v1/truststores/fleet', { cas: [DEV_ROOT_CA, 'second-root'] })).json();

      await waitConverged(api.status, ['us/registry']);
      const retrying = await waitFor('eu to fail at least three times', async () => {
        const eus = targetsOf(await api.status()).filter((x) => x.region === 'eu');
        return eus.every((x) => x.attempts >= 3) ? eus : false;
      });
      for (const target of retrying) {
        expect(target.state === 'retrying' || target.state === 'pushing').toBe(true);
        expect(target.desired.version).toBe(changed.version);
        expect(target.delivered!.version).toBe(changed.version - 1);
        expect(target.lastError).toMatchObject({ kind: 'unreachable' });
        expect(target.lagVersions).toBe(1);
      }
      // The recorded delay before the next attempt grows with consecutive failures (exponential, jittered, capped).
      const rows = await query<{ name: string; attempts: number; delay_ms: string }>(
        t.database.url,
        `SELECT name, attempts, extract(epoch FROM next_attempt_at - last_attempt_at) * 1000 AS delay_ms FROM distribution_targets WHERE name LIKE 'registry-%' AND lease_token IS NULL`,
      );
      for (const row of rows) {
        const ceiling = Math.min(base.backoffMaxMs, base.backoffBaseMs * 2 ** (row.attempts - 1));
        expect(Number(row.delay_ms)).toBeGreaterThanOrEqual(ceiling / 2 - 5);
      }
      expect(await gate.requiredTargetsHaveRoot(secondRoot)).toEqual({
        acknowledged: false,
        pending: ['eu/registry-a', 'eu/registry-b'],
      });
    } finally {
      await eu.startProcess();
    }
    const status = await waitConverged(api.status, undefined, 30_000);
    expect(targetsOf(status).every((x) => x.delivered!.version === changed.version)).toBe(true);
    expect(await gate.requiredTargetsHaveRoot(secondRoot)).toEqual({ acknowledged: true, pending: [] });
    const pem = (await pullWithSkopeo(eu, 'signet/truststore')).layers.get('roots.pem')!.toString('utf8');
    expect(pem.match(/BEGIN CERTIFICATE/g)).toHaveLength(2);
  });

  it('a revocation changes the CRL, distribution starts at once, and the time from revoke to the last target converged is recorded', async () => {
    const before = (await api.ok('GET', '/v1/truststores/fleet')).json();
    const [leaf] = await t.app.get(KeysService).certificatesOf('release');
    await t.app.get(RevocationService).revoke(leaf.serial, { reason: 'keyCompromise' });
    const status = await waitFor('the revocation to converge', async () => {
      const s = await api.status();
      const fleet = s.truststores.find((x) => x.name === 'fleet')!;
      return fleet.version > before.version && fleet.lastRevocation?.seconds !== null && fleet.lastRevocation
        ? s
        : false;
    });
    const fleet = status.truststores.find((x) => x.name === 'fleet')!;
    expect(fleet.lastRevocation!.seconds).toBeGreaterThan(0);
    expect(targetsOf(status).every((x) => x.state === 'converged')).toBe(true);
    // The audit event follows the convergence mark (written after that commit): wait for it.
    const events = await waitFor('the revocation convergence audit event', async () => {
      const found = (await api.ok('GET', '/v1/audit?type=distribution.revocation.converged')).json().events;
      return found.length > 0 ? found : false;
    });
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ subject: 'fleet', data: { version: fleet.lastRevocation!.version } });
    // The pushed PEM bundle carries the CRL listing the serial (offline consumers).
    const pem = (await pullWithSkopeo(us, 'signet/truststore')).layers.get('truststore.pem')!;
    const crls = (pem.toString('utf8').match(/-----BEGIN X509 CRL-----[\s\S]+?-----END X509 CRL-----/g) ?? []).map(
      (block) =>
        spawnSync('openssl', ['crl', '-noout', '-text'], { input: block, encoding: 'utf8' })
          .stdout.toUpperCase()
          .replace(/:/g, ''),
    );
    expect(
      crls.filter(
        (text) =>
          text.includes(`SERIAL NUMBER ${leaf.serial.toUpperCase()}`) || text.includes(leaf.serial.toUpperCase()),
      ),
    ).toHaveLength(1);
  });

  it('POST /v1/distribution/sync re-reads every target; targets already holding the digest are skipped, not pushed again', async () => {
    const [{ count: deliveriesBefore }] = await query<{ count: string }>(
      t.database.url,
      'SELECT count(*) FROM distribution_deliveries',
    );
    const manifestBefore = (await pullWithSkopeo(us, 'signet/truststore')).manifestRaw;
    const started = new Date();
    const officer = (await api.ok('POST', '/v1/tokens', { name: 'officer', role: 'security-officer' })).json().token;
    const sync = await api.call('POST', '/v1/distribution/sync', undefined, officer);
    expect(sync.statusCode).toBe(202);
    expect(sync.json()).toMatchObject({ queued: 3, versions: [] });
    await waitFor('every target to be read back after the sync', async () => {
      const rows = await query<{ verified_at: Date | null }>(
        t.database.url,
        'SELECT verified_at FROM distribution_targets',
      );
      return rows.every((r) => r.verified_at && r.verified_at >= started);
    });
    const [{ count: deliveriesAfter }] = await query<{ count: string }>(
      t.database.url,
      'SELECT count(*) FROM distribution_deliveries',
    );
    expect(deliveriesAfter).toBe(deliveriesBefore);
    expect((await pullWithSkopeo(us, 'signet/truststore')).manifestRaw.equals(manifestBefore)).toBe(true);
  });

  it('several replicas share the work: each target is pushed once per version', async () => {
    // A second reconciler on the same database (as another replica would run), one push at a time.
    const config = t.app.get<SignetConfig>(SIGNET_CONFIG);
    const replica = new ReconcilerService(
      t.app.get(TargetsRepository),
      t.app.get(TruststoreBundlesService),
      t.app.get(RegionsService),
      t.app.get(TargetCredentials),
      t.app.get(AuditService),
      t.app.get(ChangeNotifier),
      t.app.get(DistributionMetrics),
      { ...config, distribution: { ...config.distribution, concurrency: 1 } },
      t.app.get(SchedulerRegistry),
    );
    replica.onApplicationBootstrap();
    try {
      await t.app.get(CaCreationService).create({
        name: 'third-root',
        kind: 'root',
        keySpec: 'EC-256',
        subject: { C: 'US', ST: 'Washington', O: 'Example Corp', CN: 'Third Root' },
      });
      const changed = (
        await api.ok('PATCH', '/v1/truststores/fleet', { cas: [DEV_ROOT_CA, 'second-root', 'third-root'] })
      ).json();
      await waitConverged(api.status);
      const pushes = await query<{ target_id: string; n: string }>(
        t.database.url,
        `SELECT target_id, count(*) AS n FROM distribution_deliveries WHERE version = $1 AND NOT skipped GROUP BY target_id`,
        [changed.version],
      );
      expect(pushes.map((p) => Number(p.n))).toEqual([1, 1, 1]);
    } finally {
      await replica.onModuleDestroy();
    }
  });

  it('a target whose credentials are replaced by wrong ones is blocked (not retried fast), then converges once fixed', async () => {
    await api.ok('PATCH', '/v1/regions/eu/targets/registry-b', {
      credentials: { username: eu.username, password: 'wrong-password-123' },
    });
    const blocked = await waitFor('registry-b to be blocked', async () => {
      const target = targetsOf(await api.status()).find((x) => x.name === 'registry-b')!;
      return target.state === 'blocked' ? target : false;
    });
    expect(blocked.lastError).toMatchObject({ kind: 'auth' });
    expect(blocked.lastError!.message).not.toContain('wrong-password-123');
    expect(
      new Date(blocked.nextAttemptAt!).getTime() - new Date(blocked.lastAttemptAt!).getTime(),
    ).toBeGreaterThanOrEqual(base.backoffMaxMs - 5);
    await api.ok('PATCH', '/v1/regions/eu/targets/registry-b', { credentials: credentialsOf(eu) });
    await waitConverged(api.status, ['eu/registry-b']);
  });

  it('no credential appears in logs, audit records, status or target views', async () => {
    const secrets = [eu.password, us.password, 'wrong-password-123'];
    const audit = (await api.ok('GET', '/v1/audit?limit=1000')).body;
    const status = (await api.ok('GET', '/v1/distribution')).body;
    const views = (await api.ok('GET', '/v1/regions/us/targets/registry')).body;
    const rows = JSON.stringify(await query(t.database.url, 'SELECT settings, last_error FROM distribution_targets'));
    for (const secret of secrets) {
      for (const [where, text] of Object.entries({ logs: t.logs.join(''), audit, status, views, rows })) {
        expect({ where, leaked: text.includes(secret) }).toEqual({ where, leaked: false });
      }
    }
    const [sealed] = await query<{ credentials_sealed: Buffer }>(
      t.database.url,
      `SELECT credentials_sealed FROM distribution_targets WHERE name = 'registry'`,
    );
    expect(sealed.credentials_sealed.includes(Buffer.from(us.password))).toBe(false);
  });

  it('exports convergence, revocation propagation, failure and lag metrics', async () => {
    // The fleet gauges are refreshed on the schedule (every 2 s here): wait for one taken while all three were converged.
    const metrics = await waitFor('the fleet gauges to show the converged fleet', async () => {
      const text = (await api.ok('GET', '/metrics')).body;
      return /signet_distribution_targets\{[^}]*state="converged"[^}]*\} 3/.test(text) ? text : false;
    });
    expect(metrics).toMatch(/signet_distribution_convergence_seconds_count\{[^}]*region="us"[^}]*\} [1-9]/);
    expect(metrics).toMatch(
      /signet_distribution_revocation_propagation_seconds_count\{[^}]*truststore="fleet"[^}]*\} 1/,
    );
    expect(metrics).toMatch(
      /signet_distribution_failures_total\{[^}]*region="eu"[^}]*error="unreachable"[^}]*\} [1-9]/,
    );
    expect(metrics).toMatch(/signet_distribution_lag_seconds\{[^}]*region="us"[^}]*target="registry"[^}]*\} 0/);
  });

  it('roles: auditors read distribution; security officers may sync; only admins declare regions and targets', async () => {
    const auditor = (await api.ok('POST', '/v1/tokens', { name: 'auditor', role: 'auditor' })).json().token;
    const officer = (await api.ok('POST', '/v1/tokens', { name: 'officer-2', role: 'security-officer' })).json().token;
    expect((await api.call('GET', '/v1/distribution', undefined, auditor)).statusCode).toBe(200);
    expect((await api.call('GET', '/v1/regions/eu/targets/registry-a', undefined, auditor)).statusCode).toBe(200);
    expect((await api.call('POST', '/v1/distribution/sync', undefined, auditor)).statusCode).toBe(403);
    expect((await api.call('POST', '/v1/regions', { name: 'ap' }, officer)).statusCode).toBe(403);
    expect(
      (await api.call('PATCH', '/v1/regions/eu/targets/registry-a', { required: false }, officer)).statusCode,
    ).toBe(403);
    expect((await api.call('DELETE', '/v1/regions/eu/targets/registry-a', undefined, officer)).statusCode).toBe(403);
    expect((await api.call('GET', '/v1/distribution', undefined, null)).statusCode).toBe(401);
  });

  it('PATCH required:false takes a target out of the gate; DELETE removes it; a region with targets cannot be deleted', async () => {
    const gate = t.app.get<DistributionGate>(DISTRIBUTION_GATE);
    await api.ok('POST', '/v1/regions', { name: 'ap' });
    await api.ok(
      'POST',
      '/v1/regions/ap/targets',
      { name: 'never', kind: 'oci-registry', endpoint: 'http://127.0.0.1:9', repository: 'x/y', truststore: 'fleet' },
      201,
    );
    const root = (await api.ok('GET', '/v1/truststores/fleet')).json().roots[0].sha256;
    expect((await gate.requiredTargetsHaveRoot(root)).pending).toEqual(['ap/never']);
    await api.ok('PATCH', '/v1/regions/ap/targets/never', { required: false });
    expect(await gate.requiredTargetsHaveRoot(root)).toEqual({ acknowledged: true, pending: [] });
    expect((await api.call('DELETE', '/v1/regions/ap')).statusCode).toBe(409);
    expect((await api.call('DELETE', '/v1/regions/ap/targets/never')).statusCode).toBe(204);
    expect((await api.call('DELETE', '/v1/regions/ap')).statusCode).toBe(204);
  });
});
