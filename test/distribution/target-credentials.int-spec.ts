import * as http from 'node:http';
import { AddressInfo } from 'node:net';
import { DEV_ROOT_CA } from '../../src/ca/dev-hierarchy.bootstrap';
import { DISTRIBUTION_GATE, DistributionGate } from '../../src/common/distribution-gate';
import { createTrustTarget, TrustTargetFactoryHooks } from '../../src/distribution/drivers/trust-target.factory';
import { TargetError } from '../../src/distribution/drivers/target-error';
import { TrustTarget } from '../../src/distribution/drivers/trust-target';
import { ReconcilerService } from '../../src/distribution/reconciler.service';
import { TargetCredentials } from '../../src/distribution/target-credentials';
import { KEY_STORE, KeyStore } from '../../src/hsm/key-store';
import { query } from '../support/database';
import { TestRegistry } from '../support/registry';
import { freePort } from '../support/server-process';
import { startTestApp, TestApp } from '../support/test-app';
import { noAbort } from './bundle-fixtures';
import {
  apiClient,
  FAST_DISTRIBUTION_ENV,
  pullWithSkopeo,
  targetsOf,
  waitConverged,
  waitFor,
} from './distribution-helpers';

/** Every request a listener received: a stand-in for a host an insider controls. */
interface Recorder {
  url: string;
  port: number;
  requests: Array<{ method: string; url: string; authorization?: string }>;
  close(): Promise<void>;
}

/**
 * Answers everything like a registry that wants basic auth (401 + `WWW-Authenticate: Basic`), so
 * a client holding a password would send it on the next request; records what it got.
 */
async function startRecorder(): Promise<Recorder> {
  const requests: Recorder['requests'] = [];
  const server = http.createServer((request, response) => {
    requests.push({
      method: request.method ?? '',
      url: request.url ?? '',
      ...(request.headers.authorization ? { authorization: request.headers.authorization } : {}),
    });
    request.resume();
    response.writeHead(401, {
      'www-authenticate': 'Basic realm="recorder"',
      'docker-distribution-api-version': 'registry/2.0',
      'content-type': 'application/json',
    });
    response.end('{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** Link-local, metadata and unspecified hosts in the spellings a URL parser accepts. */
const REFUSED_ENDPOINT_HOSTS = [
  '169.254.169.254',
  '2852039166',
  '0xA9FEA9FE',
  '0251.0376.0251.0376',
  '169.254.43518',
  '[::ffff:169.254.169.254]',
  '[::ffff:a9fe:a9fe]',
  '[64:ff9b::a9fe:a9fe]',
  '[fe80::1]',
  '[fd00:ec2::254]',
  '100.100.100.200',
  '192.0.0.192',
  'metadata.google.internal',
  '0.0.0.0',
  '[::]',
];

/**
 * Target credentials stay with the endpoint they were given for, and the outbound allowlist limits
 * endpoints — on the whole app, two real docker-registry processes (htpasswd), and a loopback
 * listener recording any Authorization header that reaches it.
 */
describe('target credentials and the endpoint allowlist (whole app, real registries)', () => {
  let t: TestApp;
  let api: ReturnType<typeof apiClient>;
  let a: TestRegistry;
  let b: TestRegistry;
  let recorder: Recorder;
  let unlistedPort: number;

  beforeAll(async () => {
    [a, b, recorder] = await Promise.all([
      TestRegistry.start({ auth: 'htpasswd' }),
      TestRegistry.start({ auth: 'htpasswd' }),
      startRecorder(),
    ]);
    unlistedPort = await freePort();
    t = await startTestApp({
      ...FAST_DISTRIBUTION_ENV,
      SIGNET_AUDIT_CHECKPOINT_INTERVAL_SECONDS: '0',
      SIGNET_DISTRIBUTION_ATTEMPT_TIMEOUT_MS: '5000',
      SIGNET_DISTRIBUTION_LEASE_SECONDS: '10',
      SIGNET_DISTRIBUTION_ALLOWED_HOSTS: [a.host, b.host, `127.0.0.1:${recorder.port}`].join(','),
    });
    api = apiClient(t);
    await api.ok('POST', '/v1/truststores', { name: 'fleet', cas: [DEV_ROOT_CA] });
    await api.ok('POST', '/v1/regions', { name: 'eu' });
  }, 120_000);

  afterAll(async () => {
    await t?.close();
    await Promise.all([a?.dispose(), b?.dispose(), recorder?.close()]);
  });

  const credentialsOf = (registry: TestRegistry) => ({ username: registry.username, password: registry.password });
  const target = async () => targetsOf(await api.status()).find((x) => x.name === 'reg')!;
  const view = async () => (await api.ok('GET', '/v1/regions/eu/targets/reg')).json();
  const storedRow = async () =>
    (
      await query<{ id: string; endpoint: string; credentials_sealed: Buffer; config_revision: number }>(
        t.database.url,
        `SELECT id, endpoint, credentials_sealed, config_revision FROM distribution_targets WHERE name = 'reg'`,
      )
    )[0];
  const authorizationsSeen = () => recorder.requests.filter((r) => r.authorization !== undefined);

  it('declares a target on an allowed endpoint; endpoints outside SIGNET_DISTRIBUTION_ALLOWED_HOSTS are refused', async () => {
    const body = {
      name: 'reg',
      kind: 'oci-registry',
      endpoint: a.url,
      repository: 'signet/truststore',
      truststore: 'fleet',
      credentials: credentialsOf(a),
    };
    for (const endpoint of [
      `http://127.0.0.1:${unlistedPort}`,
      `http://localhost:${a.port}`,
      `http://[::1]:${a.port}`,
      'https://registry.example.com',
    ]) {
      const refused = await api.call('POST', '/v1/regions/eu/targets', { ...body, endpoint });
      expect({ endpoint, status: refused.statusCode, code: refused.json().error.code }).toEqual({
        endpoint,
        status: 400,
        code: 'ENDPOINT_NOT_ALLOWED',
      });
      expect(refused.json().error.details).toMatchObject({ field: 'endpoint' });
    }
    // a target's own allowedHosts cannot widen the configured list, nor name a refused address
    for (const [allowedHosts, field] of [
      [['elsewhere.example.com'], 'allowedHosts[0]'],
      [[a.host, `127.0.0.1:${unlistedPort}`], 'allowedHosts[1]'],
      [['169.254.169.254'], 'allowedHosts[0]'],
    ] as const) {
      const refused = await api.call('POST', '/v1/regions/eu/targets', { ...body, allowedHosts });
      expect({
        allowedHosts,
        status: refused.statusCode,
        code: refused.json().error.code,
        field: refused.json().error.details?.field,
      }).toEqual({ allowedHosts, status: 400, code: 'ENDPOINT_NOT_ALLOWED', field });
    }
    expect((await api.ok('GET', '/v1/regions/eu')).json().targets).toEqual([]);
    await api.ok('POST', '/v1/regions/eu/targets', body, 201);
    await waitConverged(api.status, ['eu/reg']);
  });

  it('refuses link-local, metadata and unspecified endpoints in every spelling, on create and on PATCH, changing nothing', async () => {
    const before = await view();
    for (const host of REFUSED_ENDPOINT_HOSTS) {
      const endpoint = `http://${host}:5000`;
      const created = await api.call('POST', '/v1/regions/eu/targets', {
        name: 'evil',
        kind: 'oci-registry',
        endpoint,
        repository: 'x/y',
        truststore: 'fleet',
      });
      expect({ endpoint, status: created.statusCode, code: created.json().error?.code }).toEqual({
        endpoint,
        status: 400,
        code: 'ENDPOINT_NOT_ALLOWED',
      });
      expect(created.json().error.message).toMatch(/link-local|metadata|unspecified/);
      const patched = await api.call('PATCH', '/v1/regions/eu/targets/reg', {
        endpoint,
        credentials: { username: 'u', password: 'p4ssword' },
      });
      expect({ endpoint, status: patched.statusCode, code: patched.json().error?.code }).toEqual({
        endpoint,
        status: 400,
        code: 'ENDPOINT_NOT_ALLOWED',
      });
    }
    expect(await view()).toEqual(before);
    expect((await api.ok('GET', '/v1/regions/eu')).json().targets).toEqual(['reg']);
  });

  it('PATCH moving the endpoint to another origin without credentials: 400 CREDENTIALS_REQUIRED, nothing changed, nothing sent', async () => {
    const before = await view();
    const row = await storedRow();
    for (const endpoint of [recorder.url, b.url, `https://127.0.0.1:${a.port}`]) {
      const response = await api.call('PATCH', '/v1/regions/eu/targets/reg', { endpoint });
      expect({ endpoint, status: response.statusCode, code: response.json().error?.code }).toEqual({
        endpoint,
        status: 400,
        code: 'CREDENTIALS_REQUIRED',
      });
      expect(response.json().error.details).toEqual({ field: 'credentials' });
    }
    // also with other changes in the same request: none of them is applied
    expect(
      (
        await api.call('PATCH', '/v1/regions/eu/targets/reg', {
          endpoint: recorder.url,
          required: false,
          repository: 'other/repo',
        })
      ).statusCode,
    ).toBe(400);
    expect(await view()).toEqual(before);
    const after = await storedRow();
    expect(after.endpoint).toBe(a.url);
    expect(after.config_revision).toBe(row.config_revision);
    expect(after.credentials_sealed.equals(row.credentials_sealed)).toBe(true);
    // a sync round later, the recorder has still seen nothing
    await api.ok('POST', '/v1/distribution/sync');
    await waitConverged(api.status, ['eu/reg']);
    expect(recorder.requests).toEqual([]);
  });

  it('PATCH changing the TLS trust (insecure, or an extra CA) without credentials: 400 CREDENTIALS_REQUIRED, nothing changed', async () => {
    const before = await view();
    const row = await storedRow();
    const caPem = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
    for (const tls of [{ insecure: true }, { caPem }]) {
      const response = await api.call('PATCH', '/v1/regions/eu/targets/reg', { tls });
      expect({ tls, status: response.statusCode, code: response.json().error?.code }).toEqual({
        tls,
        status: 400,
        code: 'CREDENTIALS_REQUIRED',
      });
      expect(response.json().error.details).toEqual({ field: 'credentials' });
    }
    expect(await view()).toEqual(before);
    const after = await storedRow();
    expect(after.config_revision).toBe(row.config_revision);
    expect(after.credentials_sealed.equals(row.credentials_sealed)).toBe(true);
    // The same trust written again (no change) needs nothing.
    expect((await api.call('PATCH', '/v1/regions/eu/targets/reg', { tls: { insecure: false } })).statusCode).toBe(200);
  });

  it('the same origin written differently keeps the credentials', async () => {
    const response = await api.ok('PATCH', '/v1/regions/eu/targets/reg', { endpoint: `HTTP://127.0.0.1:${a.port}/` });
    expect(response.json()).toMatchObject({ hasCredentials: true });
    await waitConverged(api.status, ['eu/reg']);
    expect(recorder.requests).toEqual([]);
  });

  it('PATCH moving the endpoint with new credentials: delivery record cleared, due at once, the new registry receives the push', async () => {
    const gate = t.app.get<DistributionGate>(DISTRIBUTION_GATE);
    const truststore = (await api.ok('GET', '/v1/truststores/fleet')).json();
    const root = truststore.roots[0].sha256 as string;
    expect(await gate.requiredTargetsHaveRoot(root)).toEqual({ acknowledged: true, pending: [] });

    const response = await api.ok('PATCH', '/v1/regions/eu/targets/reg', {
      endpoint: b.url,
      credentials: credentialsOf(b),
    });
    expect(response.json()).toMatchObject({ endpoint: b.url, hasCredentials: true });
    // Until registry b is read back holding it, nothing counts as delivered there.
    const [row] = await query<{
      delivered_digest: string | null;
      delivered_version: number | null;
      next_attempt_at: Date;
      force_push: boolean;
    }>(
      t.database.url,
      `SELECT delivered_digest, delivered_version, next_attempt_at, force_push FROM distribution_targets WHERE name = 'reg'`,
    );
    expect(row).toMatchObject({ delivered_digest: null, delivered_version: null, force_push: true });
    expect(new Date(row.next_attempt_at).getTime()).toBeLessThanOrEqual(Date.now());
    const converged = await target();
    if (converged.state !== 'converged')
      expect(await gate.requiredTargetsHaveRoot(root)).toEqual({ acknowledged: false, pending: ['eu/reg'] });

    await waitConverged(api.status, ['eu/reg']);
    const pulled = await pullWithSkopeo(b, 'signet/truststore');
    expect(pulled.manifest.annotations).toMatchObject({ 'io.signet.truststore.digest': truststore.digest });
    expect(await gate.requiredTargetsHaveRoot(root)).toEqual({ acknowledged: true, pending: [] });
    expect(recorder.requests).toEqual([]);
  });

  it('an endpoint changed in SQL: the stored credentials do not open, nothing reaches the new host, the target is blocked with a clear error', async () => {
    // The revision bump stands for any later rebuild of the target's driver (a restart, an idle
    // period, a failed attempt): older code then opened the credentials and sent them to the new host.
    await query(
      t.database.url,
      `UPDATE distribution_targets SET endpoint = $1, config_revision = config_revision + 1 WHERE name = 'reg'`,
      [recorder.url],
    );
    await api.ok('POST', '/v1/distribution/sync');
    // Whichever comes first: the target blocked, or a credential arriving at the recorder.
    const blocked = await waitFor('reg to be blocked (or the recorder to get credentials)', async () => {
      const current = await target();
      return current.state === 'blocked' || authorizationsSeen().length > 0 ? current : false;
    });
    expect(authorizationsSeen()).toEqual([]);
    expect(blocked.lastError).toMatchObject({ kind: 'credentials_required' });
    expect(blocked.lastError!.message).toContain(`sealed for http://127.0.0.1:${b.port}`);
    expect(blocked.lastError!.message).toContain(`now http://127.0.0.1:${recorder.port}`);
    expect(authorizationsSeen()).toEqual([]);
    expect(recorder.requests).toEqual([]);

    // Rewriting the origin written in the stored value as well: the AAD (from the endpoint) still does not match.
    const row = await storedRow();
    const sealedFor = Buffer.from(`http://127.0.0.1:${b.port}`, 'utf8');
    expect(row.credentials_sealed[0]).toBe(2);
    expect(row.credentials_sealed.subarray(3, 3 + sealedFor.length).equals(sealedFor)).toBe(true);
    const origin = Buffer.from(`http://127.0.0.1:${recorder.port}`, 'utf8');
    const header = Buffer.from([2, origin.length >> 8, origin.length & 0xff]);
    const forged = Buffer.concat([header, origin, row.credentials_sealed.subarray(3 + sealedFor.length)]);
    await query(
      t.database.url,
      `UPDATE distribution_targets SET credentials_sealed = $1, next_attempt_at = now() WHERE name = 'reg'`,
      [forged],
    );
    await api.ok('POST', '/v1/distribution/sync');
    const stillBlocked = await waitFor('reg to fail on the forged value', async () => {
      const current = await target();
      return current.state === 'blocked' && current.lastError?.message.includes('do not open') ? current : false;
    });
    expect(stillBlocked.lastError).toMatchObject({ kind: 'credentials_required' });
    expect(authorizationsSeen()).toEqual([]);
    expect(recorder.requests).toEqual([]);
    for (const secret of [a.password, b.password]) expect(t.logs.join('').includes(secret)).toBe(false);

    // Given its credentials again (through the API), the target works.
    await api.ok('PATCH', '/v1/regions/eu/targets/reg', { endpoint: b.url, credentials: credentialsOf(b) });
    await waitConverged(api.status, ['eu/reg']);
    expect(recorder.requests).toEqual([]);
  });

  it('credentials sealed before origins were bound still open, and are re-sealed for the endpoint at start and on first use', async () => {
    const row = await storedRow();
    // What the previous release stored: the key store envelope, AAD the target id only.
    const sealLegacy = () =>
      t.app
        .get<KeyStore>(KEY_STORE)
        .seal(TargetCredentials.recordId(row.id), Buffer.from(JSON.stringify(credentialsOf(b)), 'utf8'));
    const origin = Buffer.from(`http://127.0.0.1:${b.port}`);
    const readBackAfter = async (since: number) => {
      await api.ok('POST', '/v1/distribution/sync');
      return waitFor('a successful read-back with the re-sealed credentials', async () => {
        const current = await target();
        return current.state === 'converged' &&
          current.delivered?.verifiedAt &&
          new Date(current.delivered.verifiedAt).getTime() >= since - 1000
          ? current
          : false;
      });
    };

    // At start (the sweep a server runs on bootstrap, called here on the running app)
    const legacy = await sealLegacy();
    expect(TargetCredentials.isLegacy(legacy)).toBe(true);
    await query(t.database.url, `UPDATE distribution_targets SET credentials_sealed = $1 WHERE name = 'reg'`, [legacy]);
    expect(await t.app.get(ReconcilerService).resealLegacyCredentials()).toBe(1);
    const swept = (await storedRow()).credentials_sealed;
    expect(swept[0]).toBe(2);
    expect(swept.subarray(3, 3 + origin.length).equals(origin)).toBe(true);
    expect(await t.app.get(ReconcilerService).resealLegacyCredentials()).toBe(0);
    // What a replica still on the previous release does with it: fails to open it, so sends nothing.
    await expect(t.app.get<KeyStore>(KEY_STORE).unseal(TargetCredentials.recordId(row.id), swept)).rejects.toThrow(
      /unknown version 2/,
    );
    // the re-sealed value is the one in use: a read-back with it succeeds against the htpasswd registry
    expect((await readBackAfter(Date.now())).lastError).toBeNull();

    // On first use (a legacy value written while an older replica still ran)
    await query(t.database.url, `UPDATE distribution_targets SET credentials_sealed = $1 WHERE name = 'reg'`, [
      await sealLegacy(),
    ]);
    await api.ok('POST', '/v1/distribution/sync');
    const resealed = await waitFor('the legacy value to be re-sealed', async () => {
      const current = await storedRow();
      return current.credentials_sealed[0] === 2 ? current.credentials_sealed : false;
    });
    expect(resealed.subarray(3, 3 + origin.length).equals(origin)).toBe(true);
    expect(resealed.includes(Buffer.from(b.password))).toBe(false);
    expect((await readBackAfter(Date.now())).lastError).toBeNull();
    expect(recorder.requests).toEqual([]);
  });

  it('an endpoint moved outside the allowlist in SQL is refused at connect time (the allowlist bounds the endpoint too)', async () => {
    await api.ok(
      'POST',
      '/v1/regions/eu/targets',
      {
        name: 'plain',
        kind: 'oci-registry',
        endpoint: a.url,
        repository: 'signet/plain',
        truststore: 'fleet',
        required: false,
      },
      201,
    );
    await query(t.database.url, `UPDATE distribution_targets SET endpoint = $1 WHERE name = 'plain'`, [
      `http://127.0.0.1:${unlistedPort}`,
    ]);
    await api.ok('POST', '/v1/distribution/sync');
    const refused = await waitFor('plain to be refused at connect time', async () => {
      const current = targetsOf(await api.status()).find((x) => x.name === 'plain')!;
      return current.endpoint === `http://127.0.0.1:${unlistedPort}` && current.lastError?.kind === 'forbidden-host'
        ? current
        : false;
    });
    expect(refused.lastError!.message).toMatch(/not in the allowed hosts/);
    await api.ok('DELETE', '/v1/regions/eu/targets/plain', undefined, 204);
  });
});

/**
 * The same refusals at connect time, where a name or a redirect leads to the address: the driver
 * against real loopback servers. A resolver that answers 169.254.169.254 for a name cannot run here
 * (no DNS server of ours, /etc/hosts is the machine's), so those cases put a resolver double in front
 * (hooks.resolve); what it answers goes through the same check as the system resolver's.
 */
describe('connect-time refusals (driver, real loopback servers)', () => {
  const drivers: TrustTarget[] = [];
  let registry: TestRegistry;
  let redirector: http.Server;
  let redirectTo = '';
  let redirectorPort = 0;
  const redirectorRequests: Array<string | undefined> = [];

  beforeAll(async () => {
    registry = await TestRegistry.start({ auth: 'htpasswd' });
    redirector = http.createServer((request, response) => {
      redirectorRequests.push(request.headers.authorization);
      request.resume();
      response.writeHead(307, { location: redirectTo });
      response.end();
    });
    await new Promise<void>((resolve) => redirector.listen(0, '127.0.0.1', resolve));
    redirectorPort = (redirector.address() as AddressInfo).port;
  });

  afterAll(async () => {
    await Promise.all(drivers.map((d) => d.close()));
    await new Promise<void>((resolve) => redirector?.close(() => resolve()));
    await registry?.dispose();
  });

  function driver(
    endpoint: string,
    options: { allowedHosts?: string[]; allowLoopback?: boolean } = {},
    hooks: TrustTargetFactoryHooks = {},
  ): TrustTarget {
    const made = createTrustTarget(
      {
        kind: 'oci-registry',
        endpoint,
        repository: 'signet/truststore',
        credentials: { username: registry.username, password: registry.password },
        allowedHosts: options.allowedHosts ?? [],
        allowLoopback: options.allowLoopback ?? true,
        requestTimeoutMs: 5000,
      },
      hooks,
    );
    drivers.push(made);
    return made;
  }

  it.each(REFUSED_ENDPOINT_HOSTS)(
    'a redirect to %s is refused before any connection, even when the host is listed',
    async (host) => {
      redirectTo = `http://${host}:5000/v2/`;
      const error = await driver(`http://127.0.0.1:${redirectorPort}`, { allowedHosts: [`${host}:5000`] })
        .readBack(noAbort())
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(TargetError);
      expect(error).toMatchObject({ kind: 'forbidden-host', retryable: false });
      expect((error as TargetError).message).toMatch(/link-local|metadata|unspecified/);
    },
  );

  it('with loopback off, a loopback endpoint (say, one written into the database) is refused before any connection', async () => {
    const before = redirectorRequests.length;
    const error = await driver(`http://127.0.0.1:${redirectorPort}`, { allowLoopback: false })
      .readBack(noAbort())
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ kind: 'forbidden-host' });
    expect((error as TargetError).message).toMatch(/SIGNET_DISTRIBUTION_ALLOW_LOOPBACK/);
    expect(redirectorRequests.length).toBe(before);
  });

  // What a resolver may answer for a name an insider controls.
  const resolvedForms: Array<[string, 4 | 6]> = [
    ['169.254.169.254', 4],
    ['169.254.170.2', 4],
    ['::ffff:169.254.169.254', 6],
    ['::ffff:a9fe:a9fe', 6],
    ['64:ff9b::a9fe:a9fe', 6],
    ['fe80::1', 6],
    ['fd00:ec2::254', 6],
    ['100.100.100.200', 4],
    ['192.0.0.192', 4],
    ['0.0.0.0', 4],
    ['::', 6],
    ['127.0.0.1', 4], // a name that is not loopback may not lead there
    ['::1', 6],
  ];

  it.each(resolvedForms)('a name resolving to %s is refused at connect time', async (address, family) => {
    const asked: string[] = [];
    const resolve: TrustTargetFactoryHooks['resolve'] = async (hostname) => {
      asked.push(hostname);
      return [{ address, family }];
    };
    const error = await driver(`http://registry.signet-test.example:${registry.port}`, {}, { resolve })
      .readBack(noAbort())
      .catch((e: unknown) => e);
    expect(asked).toContain('registry.signet-test.example');
    expect(error).toMatchObject({ kind: 'forbidden-host' });
    expect((error as TargetError).message).toMatch(/resolved address is not allowed/);
  });

  it('control: the same resolver double leading a loopback name to the real registry connects (so the refusals above are the check, not the double)', async () => {
    const resolve: TrustTargetFactoryHooks['resolve'] = async () => [{ address: '127.0.0.1', family: 4 }];
    await expect(
      driver(`http://registry.localhost:${registry.port}`, {}, { resolve }).readBack(noAbort()),
    ).resolves.toEqual(expect.any(Object));
    const refused = await driver(`http://registry.localhost:${registry.port}`, { allowLoopback: false }, { resolve })
      .readBack(noAbort())
      .catch((e: unknown) => e);
    expect(refused).toMatchObject({ kind: 'forbidden-host' });
  });
});
