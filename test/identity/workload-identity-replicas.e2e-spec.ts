import { createTestDatabase, TestDatabase } from '../support/database';
import { OidcIssuer } from '../support/oidc-issuer';
import { ensureBuilt, tempDir } from '../support/server-process';
import { SignetProcess, startSignet } from '../rotation/rotation-process';

const AUDIENCE = 'https://signet.example.com';
/** The documented bound for a change to reach another replica (docs/workload-identity.md). */
const TOKEN_CACHE_SECONDS = 5;
const SUBJECT = { C: 'US', ST: 'Washington', O: 'Example Corp' };

/**
 * Two Signet processes (real OS processes) on one database and one SoftHSM2 token, with a real
 * OpenID Provider on loopback: a workload rule or provider removed through one replica stops the
 * ID tokens the other replica has cached within SIGNET_TOKEN_CACHE_SECONDS, and a single-use
 * provider's token is accepted once across both.
 */
describe('workload identity across replicas (two real processes, one database)', () => {
  let database: TestDatabase;
  let issuer: OidcIssuer;
  let a: SignetProcess | undefined;
  let b: SignetProcess | undefined;

  async function call(
    replica: SignetProcess,
    method: string,
    url: string,
    body?: unknown,
    token = replica.adminToken,
  ): Promise<{ status: number; body: { error?: { code: string; message: string } } & Record<string, unknown> }> {
    const response = await fetch(`${replica.server.url}${url}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : {} };
  }

  const sign = (replica: SignetProcess, key: string, token: string) =>
    call(
      replica,
      'POST',
      `/v1/keys/${key}/sign`,
      { digest: Buffer.alloc(32, 3).toString('base64'), hashAlgorithm: 'SHA-256' },
      token,
    );

  /** Polls `replica` with `token` until the answer is `status`; returns how long that took. */
  async function untilRefused(replica: SignetProcess, key: string, token: string, status: number): Promise<number> {
    const started = Date.now();
    const deadline = started + (TOKEN_CACHE_SECONDS + 5) * 1000;
    for (;;) {
      const answer = await sign(replica, key, token);
      if (answer.status === status) return Date.now() - started;
      expect(answer.status).toBe(200);
      if (Date.now() > deadline) throw new Error(`still ${answer.status} after ${Date.now() - started} ms`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  beforeAll(async () => {
    ensureBuilt();
    issuer = await OidcIssuer.start([{ id: AUDIENCE }]);
    database = await createTestDatabase({ migrate: false });
    const env = {
      DATABASE_URL: database.url,
      SIGNET_MIGRATION_DATABASE_URL: database.ownerUrl,
      SIGNET_DATA_DIR: tempDir('wl-replicas-'),
      SIGNET_DISTRIBUTION_ALLOW_LOOPBACK: 'true',
      SIGNET_TOKEN_CACHE_SECONDS: String(TOKEN_CACHE_SECONDS),
    };
    // The first process migrates and bootstraps; the second joins the same database.
    a = await startSignet(env);
    b = await startSignet(env);
    for (const name of ['release', 'nightly'])
      expect(
        (await call(a, 'POST', '/v1/keys', { name, keySpec: 'EC-256', subject: { ...SUBJECT, CN: name } })).status,
      ).toBe(201);
    expect(
      (await call(a, 'POST', '/v1/identity-providers', { name: 'ci', issuer: issuer.issuer, audiences: [AUDIENCE] }))
        .status,
    ).toBe(201);
    expect(
      (
        await call(a, 'POST', '/v1/workload-rules', {
          name: 'release-main',
          provider: 'ci',
          claims: { repository: 'acme/app', ref: 'refs/heads/main' },
          keys: ['release'],
        })
      ).status,
    ).toBe(201);
    expect(
      (
        await call(a, 'POST', '/v1/workload-rules', {
          name: 'nightly-any',
          provider: 'ci',
          claims: { repository: 'acme/*' },
          keys: ['nightly'],
        })
      ).status,
    ).toBe(201);
  });

  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    await database?.drop();
    await issuer?.stop();
  });

  it('a rule deleted on one replica stops matching on the other within SIGNET_TOKEN_CACHE_SECONDS', async () => {
    const token = await issuer.mint(AUDIENCE, {
      sub: 'repo:acme/app:ref:refs/heads/main',
      repository: 'acme/app',
      ref: 'refs/heads/main',
    });
    // B verifies and caches the token; A has it cached too.
    expect((await sign(b!, 'release', token)).status).toBe(200);
    expect((await sign(a!, 'release', token)).status).toBe(200);
    expect((await call(a!, 'DELETE', '/v1/workload-rules/release-main')).status).toBe(200);
    // At once on the replica that deleted it …
    expect((await sign(a!, 'release', token)).status).toBe(404);
    // … and within the token cache time on the other.
    expect(await untilRefused(b!, 'release', token, 404)).toBeLessThanOrEqual(TOKEN_CACHE_SECONDS * 1000 + 1000);
    // The other rule of the provider still grants its key to the same token on both.
    expect((await sign(b!, 'nightly', token)).status).toBe(200);
  });

  it('single use across replicas: a token accepted by one is refused by the other (jti ledger in PostgreSQL)', async () => {
    expect((await call(a!, 'PATCH', '/v1/identity-providers/ci', { singleUse: true })).status).toBe(200);
    // B learns of the change by notification (at the latest within the cache time): a probe token reused on B is refused once it has.
    const probe = await issuer.mint(AUDIENCE, { sub: 'probe', repository: 'acme/probe' });
    await untilRefused(b!, 'nightly', probe, 401);
    const claims = { sub: 'repo:acme/tools:ref:refs/heads/main', repository: 'acme/tools', ref: 'refs/heads/main' };
    const once = await issuer.mint(AUDIENCE, claims);
    const results = await Promise.all([sign(a!, 'nightly', once), sign(b!, 'nightly', once)]);
    expect(results.map((r) => r.status).sort()).toEqual([200, 401]);
    expect(results.find((r) => r.status === 401)!.body.error?.message).toMatch(/already used/);
    // Used on A first, then on B: refused on B.
    const another = await issuer.mint(AUDIENCE, claims);
    expect((await sign(a!, 'nightly', another)).status).toBe(200);
    expect((await sign(b!, 'nightly', another)).status).toBe(401);
    expect((await call(a!, 'PATCH', '/v1/identity-providers/ci', { singleUse: false })).status).toBe(200);
  });

  it('a provider deleted on one replica refuses its cached tokens on the other within SIGNET_TOKEN_CACHE_SECONDS', async () => {
    const token = await issuer.mint(AUDIENCE, {
      sub: 'repo:acme/tools:ref:refs/heads/main',
      repository: 'acme/tools',
      ref: 'refs/heads/main',
    });
    // Until B has seen singleUse turned off, a reused token would be refused there: wait for the first acceptance.
    const deadline = Date.now() + (TOKEN_CACHE_SECONDS + 5) * 1000;
    let reusable = token;
    while ((await sign(b!, 'nightly', reusable)).status !== 200) {
      if (Date.now() > deadline) throw new Error('B never accepted a token after singleUse was turned off');
      reusable = await issuer.mint(AUDIENCE, {
        sub: 'repo:acme/tools:ref:refs/heads/main',
        repository: 'acme/tools',
        ref: 'refs/heads/main',
      });
    }
    expect((await sign(b!, 'nightly', reusable)).status).toBe(200);
    expect((await call(a!, 'DELETE', '/v1/identity-providers/ci')).status).toBe(200);
    expect((await sign(a!, 'nightly', reusable)).status).toBe(401);
    expect(await untilRefused(b!, 'nightly', reusable, 401)).toBeLessThanOrEqual(TOKEN_CACHE_SECONDS * 1000 + 1000);
  });
});
