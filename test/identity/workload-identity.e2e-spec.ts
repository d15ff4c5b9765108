import { importJWK, SignJWT } from 'jose';
import { createHash, createPublicKey, randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { canonicalActorJson, canonicalJson, normaliseActor } from '../../src/audit/audit-canonical';
import type { JsonValue } from '../../src/audit/audit.types';
import { ADMIN_TOKEN_FILE } from '../../src/auth/admin-token.bootstrap';
import type { ConnectionTokenMemo } from '../../src/auth/token.service';
import { KEY_STORE, KeyStore } from '../../src/hsm/key-store';
import { IssuerKeys } from '../../src/identity/issuer-keys';
import { WorkloadIdentityService } from '../../src/identity/workload-identity.service';
import { signFastPathInstalled } from '../../src/signing/sign-fast-path';
import { freePort, tempDir } from '../support/server-process';
import { IssuerKey, issuerKey, OidcIssuer, publicJwk } from '../support/oidc-issuer';
import { startTestApp, TestApp } from '../support/test-app';
import { opensslVerifiesMessage, SUBJECT } from '../signing/support/signing-kit';
import {
  buildPlugin,
  generateSignatureRequest,
  jwsSigningInput,
  opensslVerifies,
  runPlugin,
} from '../notation-plugin/support/notation-driver';
import type { FastifyInstance } from 'fastify';

const AUDIENCE = 'https://signet.example.com';
const REFETCH_SECONDS = 3;

/** Claims as GitHub Actions writes them (docs.github.com, "About security hardening with OpenID Connect"). */
function githubClaims(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    sub: 'repo:acme/app:environment:prod',
    repository: 'acme/app',
    repository_owner: 'acme',
    repository_id: '74',
    ref: 'refs/heads/main',
    ref_type: 'branch',
    sha: 'e5b1e0a7d8e1b3f7a9c0d2e4f6a8b0c2d4e6f8a0',
    workflow: 'release',
    workflow_ref: 'acme/app/.github/workflows/release.yml@refs/heads/main',
    job_workflow_ref: 'acme/app/.github/workflows/release.yml@refs/heads/main',
    environment: 'prod',
    event_name: 'push',
    run_id: '5109217612',
    run_attempt: '1',
    actor: 'octocat',
    runner_environment: 'github-hosted',
    ...overrides,
  };
}

/** Claims as GitLab CI writes them (docs.gitlab.com, "OpenID Connect (OIDC) Authentication Using ID Tokens"). */
function gitlabClaims(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    sub: 'project_path:acme/app:ref_type:branch:ref:main',
    namespace_id: '72',
    namespace_path: 'acme',
    project_id: '20',
    project_path: 'acme/app',
    user_login: 'alice',
    pipeline_id: '1212',
    pipeline_source: 'push',
    job_id: '1213',
    ref: 'main',
    ref_type: 'branch',
    ref_protected: 'true',
    environment: 'production',
    environment_protected: 'true',
    runner_environment: 'gitlab-hosted',
    ...overrides,
  };
}

/**
 * Workload identity on the whole application in-process (real PostgreSQL, SoftHSM2 token) against
 * real OpenID Providers (`oidc-provider`) on loopback: ID tokens minted by their token endpoints,
 * discovery and JWKS fetched by Signet. Hostile tokens that no honest issuer would mint (alg none,
 * HMAC keyed with the issuer's public key, a future iat) are made here with `jose`, some with the
 * issuer's own private key, so that only the property under test is wrong.
 */
describe('workload identity: OIDC ID tokens on the sign route', () => {
  let t: TestApp;
  let admin: string;
  let keyStore: KeyStore;
  let github: OidcIssuer;
  let gitlab: OidcIssuer;
  let kubernetes: OidcIssuer;
  let rogue: OidcIssuer;
  let dir: string;
  const digest = Buffer.alloc(32, 9).toString('base64');

  const auth = (token: string) => ({ authorization: `Bearer ${token}` });
  const api = (method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, payload?: unknown, token = admin) =>
    t.app.inject({
      method,
      url,
      headers: auth(token),
      ...(payload !== undefined ? { payload: payload as object } : {}),
    });
  const sign = (key: string, token: string, body: unknown = { digest, hashAlgorithm: 'SHA-256' }) =>
    t.app.inject({
      method: 'POST',
      url: `/v1/keys/${key}/sign`,
      headers: { ...auth(token), 'content-type': 'application/json' },
      payload: JSON.stringify(body),
    });
  const hsmSigns = () => keyStore.counters().signAttempts;

  /** Refused with `status` and `code`, and the HSM never asked to sign. */
  async function expectRefused(
    token: string,
    status: number,
    code: string,
    message?: RegExp,
    key = 'release',
  ): Promise<void> {
    const before = hsmSigns();
    const response = await sign(key, token);
    expect({ status: response.statusCode, code: response.json().error?.code }).toEqual({ status, code });
    if (message) expect(response.json().error.message).toMatch(message);
    if (status === 401) expect(response.headers['www-authenticate']).toBe('Bearer realm="signet"');
    expect(hsmSigns()).toBe(before);
  }

  /** A token signed here with `key`, for properties no honest issuer would produce. */
  async function craft(
    key: IssuerKey | Uint8Array,
    header: Record<string, unknown>,
    claims: Record<string, unknown>,
  ): Promise<string> {
    const signingKey = key instanceof Uint8Array ? key : await importJWK(key, key.alg);
    return new SignJWT(claims).setProtectedHeader(header as { alg: string }).sign(signingKey);
  }

  /** The audit `workload` part of a githubClaims() token signing with key `release` (rule app-release). */
  function appReleaseWorkload(jti: string): Record<string, unknown> {
    return {
      provider: 'github-actions',
      sub: 'repo:acme/app:environment:prod',
      rule: 'app-release',
      jti,
      claims: {
        repository: 'acme/app',
        ref: 'refs/heads/main',
        environment: 'prod',
        workflow_ref: 'acme/app/.github/workflows/release.yml@refs/heads/main',
      },
    };
  }

  function nowS(): number {
    return Math.floor(Date.now() / 1000);
  }

  beforeAll(async () => {
    [github, gitlab, kubernetes, rogue] = await Promise.all([
      OidcIssuer.start([{ id: AUDIENCE }, { id: 'https://other-service.example.com' }]),
      OidcIssuer.start([{ id: AUDIENCE, alg: 'ES256' }], [issuerKey('ES256')]),
      OidcIssuer.start([{ id: AUDIENCE }, { id: 'https://kubernetes.default.svc' }]),
      OidcIssuer.start([{ id: AUDIENCE }]),
    ]);
    t = await startTestApp({
      SIGNET_AUDIT_CHECKPOINT_INTERVAL_SECONDS: '0',
      SIGNET_DISTRIBUTION_ALLOW_LOOPBACK: 'true',
      SIGNET_OIDC_JWKS_REFETCH_SECONDS: String(REFETCH_SECONDS),
    });
    dir = tempDir('workload-');
    admin = fs.readFileSync(path.join(t.config.dataDir, ADMIN_TOKEN_FILE), 'utf8').trim();
    keyStore = t.app.get<KeyStore>(KEY_STORE);
    for (const name of ['release', 'staging', 'cluster']) {
      const created = await api('POST', '/v1/keys', { name, keySpec: 'EC-256', subject: { ...SUBJECT, CN: name } });
      expect(created.statusCode).toBe(201);
    }
    const providers = [
      { name: 'github-actions', issuer: github.issuer, audiences: [AUDIENCE], allowedAlgorithms: ['RS256'] },
      { name: 'gitlab', issuer: gitlab.issuer, audiences: [AUDIENCE], allowedAlgorithms: ['ES256'] },
      { name: 'kubernetes', issuer: kubernetes.issuer, audiences: [AUDIENCE] },
    ];
    for (const provider of providers)
      expect((await api('POST', '/v1/identity-providers', provider)).statusCode).toBe(201);
    const rules = [
      // The GitHub preset: repository, ref, workflow_ref, environment (job_workflow_ref for reusable workflows).
      {
        name: 'app-release',
        provider: 'github-actions',
        claims: {
          repository: 'acme/app',
          ref: 'refs/heads/main',
          environment: 'prod',
          workflow_ref: 'acme/app/.github/workflows/release.yml@*',
        },
        keys: ['release'],
      },
      {
        name: 'acme-staging',
        provider: 'github-actions',
        claims: { repository: 'acme/*', environment: 'staging' },
        keys: ['staging'],
      },
      // The GitLab preset: project_path, ref, ref_protected, environment.
      {
        name: 'gitlab-release',
        provider: 'gitlab',
        claims: { project_path: 'acme/app', ref: 'main', ref_protected: 'true', environment: 'production' },
        keys: ['release'],
      },
      // Kubernetes service-account tokens: the audience is bound by the provider, the rule names the account.
      {
        name: 'cluster-signer',
        provider: 'kubernetes',
        claims: { sub: 'system:serviceaccount:build:signer' },
        keys: ['cluster'],
      },
    ];
    for (const rule of rules) expect((await api('POST', '/v1/workload-rules', rule)).statusCode).toBe(201);
  });

  afterAll(async () => {
    await t?.close();
    await Promise.all([github, gitlab, kubernetes, rogue].map((issuer) => issuer?.stop()));
  });

  it('signs for a GitHub Actions job whose claims match a rule; OpenSSL verifies the signature with the returned chain', async () => {
    const token = await github.mint(AUDIENCE, githubClaims());
    const payload = Buffer.from('bytes a pipeline signs');
    const response = await sign('release', token, { payload: payload.toString('base64'), hashAlgorithm: 'SHA-256' });
    expect(response.statusCode).toBe(200);
    const body = response.json();
    expect(body.keyName).toBe('release');
    expect(opensslVerifiesMessage(dir, 'EC-256', payload, body.signature, body.certificateChain)).toBe(true);
  });

  it('attributes every signature to the pipeline: provider, sub, rule, jti and the claims the rule named; GET /v1/audit?subject= finds it and the chain still verifies', async () => {
    const jti = randomUUID();
    const claims = githubClaims({ jti, run_id: '777' });
    const token = await github.mint(AUDIENCE, claims);
    expect((await sign('release', token)).statusCode).toBe(200);
    const found = await api('GET', `/v1/audit?type=sign&subject=${encodeURIComponent(claims.sub as string)}`);
    expect(found.statusCode).toBe(200);
    const row = found
      .json()
      .events.find((event: { actor: { workload?: { jti?: string } } }) => event.actor.workload?.jti === jti);
    expect(row).toBeDefined();
    expect(row.subject).toBe('release');
    expect(row.actor).toMatchObject({
      role: 'signer',
      tokenName: 'oidc:github-actions',
      workload: appReleaseWorkload(jti),
    });
    // The token itself is never recorded.
    expect(JSON.stringify(found.json())).not.toContain(token.split('.')[2]);
    const verify = await api('GET', '/v1/audit/verify?full=true');
    expect(verify.json()).toMatchObject({ ok: true });
  });

  it('signs for GitLab CI (ES256) and Kubernetes service-account tokens with their own claim shapes', async () => {
    expect((await sign('release', await gitlab.mint(AUDIENCE, gitlabClaims()))).statusCode).toBe(200);
    // An unprotected ref does not match the GitLab rule: the key answers 404 as for an ungranted token.
    await expectRefused(await gitlab.mint(AUDIENCE, gitlabClaims({ ref_protected: 'false' })), 404, 'NOT_FOUND');
    const serviceAccount = {
      sub: 'system:serviceaccount:build:signer',
      'kubernetes.io': { namespace: 'build', serviceaccount: { name: 'signer' } },
    };
    expect((await sign('cluster', await kubernetes.mint(AUDIENCE, serviceAccount))).statusCode).toBe(200);
    // Audience bound: the same account's token for the API server is not for Signet.
    await expectRefused(
      await kubernetes.mint('https://kubernetes.default.svc', serviceAccount),
      401,
      'UNAUTHENTICATED',
      /audience/,
      'cluster',
    );
    await expectRefused(
      await kubernetes.mint(AUDIENCE, { sub: 'system:serviceaccount:build:other' }),
      404,
      'NOT_FOUND',
      undefined,
      'cluster',
    );
  });

  it('no rule, no access: an unmatched token or a key the rule does not name answers 404 like a key that does not exist', async () => {
    const wrongBranch = await github.mint(
      AUDIENCE,
      githubClaims({
        ref: 'refs/heads/feature',
        workflow_ref: 'acme/app/.github/workflows/release.yml@refs/heads/feature',
      }),
    );
    await expectRefused(wrongBranch, 404, 'NOT_FOUND', /no key named 'release'/);
    const token = await github.mint(AUDIENCE, githubClaims());
    await expectRefused(token, 404, 'NOT_FOUND', /no key named 'cluster'/, 'cluster');
    await expectRefused(token, 404, 'NOT_FOUND', /no key named 'nope'/, 'nope');
    // A glob rule: any acme repository's staging environment, for the staging key only.
    const staging = await github.mint(AUDIENCE, githubClaims({ repository: 'acme/other', environment: 'staging' }));
    expect((await sign('staging', staging)).statusCode).toBe(200);
    await expectRefused(staging, 404, 'NOT_FOUND', undefined, 'release');
    // The signer role only: admin routes refuse the token.
    const adminRoute = await api('GET', '/v1/tokens', undefined, token);
    expect(adminRoute.statusCode).toBe(403);
    const keyRead = await api('GET', '/v1/keys/release', undefined, token);
    expect(keyRead.statusCode).toBe(200);
  });

  it('verifies a token once and serves its later requests from the cache until exp', async () => {
    const verify = jest.spyOn(IssuerKeys.prototype, 'verify');
    try {
      const token = await github.mint(AUDIENCE, githubClaims());
      for (let i = 0; i < 5; i++) expect((await sign('release', token)).statusCode).toBe(200);
      expect(verify).toHaveBeenCalledTimes(1);
    } finally {
      verify.mockRestore();
    }
  });

  it('hashes an ID token once per keep-alive connection, and authenticates each request by its own token when the connection switches tokens', async () => {
    const identities = t.app.get(WorkloadIdentityService);
    const release = await github.mint(AUDIENCE, githubClaims());
    const staging = await github.mint(AUDIENCE, githubClaims({ repository: 'acme/web', environment: 'staging' }));
    const connection: ConnectionTokenMemo = { token: '', hash: '' };
    for (const [token, key] of [
      [release, 'release'],
      [release, 'release'],
      [staging, 'staging'],
      [release, 'release'],
    ] as const) {
      const principal = await identities.authenticate(token, '::1', connection);
      expect(principal.keys).toEqual([key]);
      expect(connection).toEqual({ token, hash: createHash('sha256').update(token).digest('hex') });
    }
    // The memo holds the connection's last token and its hash; a deleted rule still wins over it.
    expect((await api('PATCH', '/v1/workload-rules/acme-staging', { keys: ['release'] })).statusCode).toBe(200);
    try {
      const moved = await identities.authenticate(staging, '::1', connection);
      expect(moved.keys).toEqual(['release']);
    } finally {
      expect((await api('PATCH', '/v1/workload-rules/acme-staging', { keys: ['staging'] })).statusCode).toBe(200);
    }
  });

  it("builds the audit actor's workload part once per cached token: one frozen object per key, written as the generic canonical walk would", async () => {
    const identities = t.app.get(WorkloadIdentityService);
    const jti = randomUUID();
    const token = await github.mint(AUDIENCE, githubClaims({ jti }));
    const first = await identities.authenticate(token, '10.0.0.1');
    const second = await identities.authenticate(token, '10.0.0.2');
    const actor = first.auditActorFor!('release');
    expect(second.auditActorFor!('release').workload).toBe(actor.workload);
    expect(Object.isFrozen(actor.workload) && Object.isFrozen(actor.workload!.claims)).toBe(true);
    expect(actor).toEqual({
      tokenId: first.tokenId,
      tokenName: 'oidc:github-actions',
      role: 'signer',
      address: '10.0.0.1',
      workload: appReleaseWorkload(jti),
    });
    expect(second.auditActorFor!('release').address).toBe('10.0.0.2');
    // Every rule the token matched, for rows not tied to one key.
    expect(first.auditActor.workload).toMatchObject({ rules: ['app-release'], jti });
    for (const principal of [first, second]) {
      for (const written of [principal.auditActorFor!('release'), principal.auditActor]) {
        expect(canonicalActorJson(written)).toBe(canonicalJson(normaliseActor(written) as unknown as JsonValue));
      }
    }
  });

  it('refuses expired, not-yet-valid and future-iat tokens (beyond the 60 s skew) with 401', async () => {
    await expectRefused(
      await github.mint(AUDIENCE, githubClaims(), { expiresIn: -120 }),
      401,
      'UNAUTHENTICATED',
      /expired/,
    );
    await expectRefused(
      await github.mint(AUDIENCE, githubClaims({ nbf: nowS() + 600 })),
      401,
      'UNAUTHENTICATED',
      /not yet valid/,
    );
    // Within the skew is accepted.
    expect((await sign('release', await github.mint(AUDIENCE, githubClaims({ nbf: nowS() + 30 })))).statusCode).toBe(
      200,
    );
    const [key] = github.keys;
    const futureIat = await craft(
      key,
      { alg: 'RS256', kid: key.kid },
      { ...githubClaims(), iss: github.issuer, aud: AUDIENCE, iat: nowS() + 600, exp: nowS() + 900 },
    );
    await expectRefused(futureIat, 401, 'UNAUTHENTICATED', /iat is in the future/);
    // The control: the same crafted token with an honest iat is accepted, so only iat was wrong above.
    const honest = await craft(
      key,
      { alg: 'RS256', kid: key.kid },
      { ...githubClaims(), iss: github.issuer, aud: AUDIENCE, iat: nowS(), exp: nowS() + 300 },
    );
    expect((await sign('release', honest)).statusCode).toBe(200);
  });

  it("refuses a wrong audience, an unknown issuer, and a token signed by another issuer's key", async () => {
    await expectRefused(
      await github.mint('https://other-service.example.com', githubClaims()),
      401,
      'UNAUTHENTICATED',
      /audience/,
    );
    await expectRefused(
      await rogue.mint(AUDIENCE, githubClaims()),
      401,
      'UNAUTHENTICATED',
      /no identity provider is configured/,
    );
    const [rogueKey] = rogue.keys;
    const [githubKey] = github.keys;
    const claims = { ...githubClaims(), iss: github.issuer, aud: AUDIENCE, iat: nowS(), exp: nowS() + 300 };
    // RS256 by the rogue issuer's key, claiming GitHub's issuer and naming GitHub's kid.
    await expectRefused(
      await craft(rogueKey, { alg: 'RS256', kid: githubKey.kid }, claims),
      401,
      'UNAUTHENTICATED',
      /signature does not verify/,
    );
    // The same with the rogue's own kid: no such key at GitHub's JWKS.
    await expectRefused(
      await craft(rogueKey, { alg: 'RS256', kid: rogueKey.kid }, claims),
      401,
      'UNAUTHENTICATED',
      /unknown kid/,
    );
  });

  it("refuses alg none, HS256 keyed with the issuer's public key (algorithm confusion), and algorithms outside the provider's list", async () => {
    const claims = { ...githubClaims(), iss: github.issuer, aud: AUDIENCE, iat: nowS(), exp: nowS() + 300 };
    const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
    await expectRefused(
      `${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims)}.`,
      401,
      'UNAUTHENTICATED',
      /never accepted/,
    );
    await expectRefused(`${b64({ alg: 'NONE' })}.${b64(claims)}.`, 401, 'UNAUTHENTICATED', /never accepted/);
    const [key] = github.keys;
    const publicPem = createPublicKey({ key: publicJwk(key), format: 'jwk' }).export({
      type: 'spki',
      format: 'pem',
    }) as string;
    for (const secret of [publicPem, JSON.stringify(publicJwk(key))]) {
      await expectRefused(
        await craft(new TextEncoder().encode(secret), { alg: 'HS256', kid: key.kid }, claims),
        401,
        'UNAUTHENTICATED',
        /never accepted/,
      );
    }
    // The GitHub provider allows RS256 only: an ES256 token from its own issuer is refused.
    const es = github.keys.find((k) => k.alg === 'ES256')!;
    await expectRefused(
      await craft(es, { alg: 'ES256', kid: es.kid }, claims),
      401,
      'UNAUTHENTICATED',
      /does not allow algorithm ES256/,
    );
    // And providers cannot be configured to accept them.
    for (const allowedAlgorithms of [['none'], ['HS256'], ['RS256', 'HS512'], ['XX1']]) {
      const refused = await api('POST', '/v1/identity-providers', {
        name: 'bad-algs',
        issuer: rogue.issuer,
        audiences: [AUDIENCE],
        allowedAlgorithms,
      });
      expect({ status: refused.statusCode, code: refused.json().error.code }).toEqual({
        status: 400,
        code: 'VALIDATION_ERROR',
      });
    }
    // Nor pointed at a link-local, metadata or unspecified address, in any spelling (the classifier
    // distribution endpoints use): refused when declared, not only when keys are fetched.
    for (const host of ['169.254.169.254', '2852039166', '[::ffff:a9fe:a9fe]', 'metadata.google.internal', '0.0.0.0']) {
      for (const field of ['issuer', 'jwksUri'] as const) {
        const body = { name: 'metadata', issuer: rogue.issuer, audiences: [AUDIENCE], [field]: `https://${host}/x` };
        const refused = await api('POST', '/v1/identity-providers', body);
        expect({ host, field, status: refused.statusCode, code: refused.json().error.code }).toEqual({
          host,
          field,
          status: 400,
          code: 'VALIDATION_ERROR',
        });
        expect(refused.json().error.message).toMatch(/outbound policy refuses/);
      }
    }
  });

  it('refuses tokens whose matched claims are arrays, numbers, booleans or objects where strings are expected', async () => {
    for (const wrong of [
      { repository: ['acme/app'] },
      { ref: 7 },
      { environment: { name: 'prod' } },
      { workflow_ref: true },
      { repository: null },
    ]) {
      await expectRefused(
        await github.mint(AUDIENCE, githubClaims(wrong)),
        401,
        'UNAUTHENTICATED',
        /must be non-empty strings/,
      );
    }
    // sub must be a string too (the issuer's own shape says so; a number is not a workload's name).
    const [key] = github.keys;
    const numericSub = await craft(
      key,
      { alg: 'RS256', kid: key.kid },
      { ...githubClaims(), sub: 42, iss: github.issuer, aud: AUDIENCE, iat: nowS(), exp: nowS() + 300 },
    );
    await expectRefused(numericSub, 401, 'UNAUTHENTICATED');
  });

  it('refuses over-long bearer tokens before any verification', async () => {
    const verify = jest.spyOn(IssuerKeys.prototype, 'verify');
    try {
      await expectRefused(
        `eyJ${'A'.repeat(9000)}.eyJ${'B'.repeat(100)}.sig`,
        401,
        'UNAUTHENTICATED',
        /longer than 8192/,
      );
      const padded = await github.mint(AUDIENCE, githubClaims({ padding: 'x'.repeat(9000) }));
      await expectRefused(padded, 401, 'UNAUTHENTICATED', /longer than 8192/);
      expect(verify).not.toHaveBeenCalled();
    } finally {
      verify.mockRestore();
    }
  });

  it('fails closed, naming the provider, when the JWKS or the issuer cannot be fetched', async () => {
    const port = await freePort();
    expect(
      (
        await api('POST', '/v1/identity-providers', {
          name: 'unreachable',
          issuer: `http://127.0.0.1:${port}`,
          audiences: [AUDIENCE],
        })
      ).statusCode,
    ).toBe(201);
    expect(
      (
        await api('POST', '/v1/workload-rules', {
          name: 'unreachable-any',
          provider: 'unreachable',
          claims: { sub: '*' },
          keys: ['release'],
        })
      ).statusCode,
    ).toBe(201);
    const [key] = rogue.keys;
    const token = await craft(
      key,
      { alg: 'RS256', kid: key.kid },
      { sub: 'x', iss: `http://127.0.0.1:${port}`, aud: AUDIENCE, iat: nowS(), exp: nowS() + 300 },
    );
    await expectRefused(
      token,
      503,
      'IDENTITY_PROVIDER_UNAVAILABLE',
      /identity provider 'unreachable'.*could not be fetched/,
    );

    // A provider whose JWKS answers 503: nothing is signed, and the answer names it.
    await gitlab.jwksOutage(true);
    try {
      expect((await api('PATCH', '/v1/identity-providers/gitlab', { clockSkewSeconds: 30 })).statusCode).toBe(200);
      const before = await gitlab.stats();
      for (let i = 0; i < 5; i++) {
        await expectRefused(
          await gitlab.mint(AUDIENCE, gitlabClaims()),
          503,
          'IDENTITY_PROVIDER_UNAVAILABLE',
          /identity provider 'gitlab'.*JWKS answered HTTP 503/,
        );
      }
      // Not an amplifier: the failing JWKS was asked once for the five tokens, not once per token.
      expect((await gitlab.stats()).jwks - before.jwks).toBe(1);
    } finally {
      await gitlab.jwksOutage(false);
    }
    // Once the failure's floor has passed, the next token fetches again and is accepted.
    await new Promise((resolve) => setTimeout(resolve, REFETCH_SECONDS * 1000 + 200));
    expect((await sign('release', await gitlab.mint(AUDIENCE, gitlabClaims()))).statusCode).toBe(200);
  });

  it('picks up keys the issuer rotated in, refetching its JWKS for an unknown kid at most once per refetch interval', async () => {
    const before = await github.stats();
    const next = issuerKey('RS256');
    await github.rotate([next, ...github.keys]);
    // Let the interval since the last fetch pass, then the first token with the new kid refetches.
    await new Promise((resolve) => setTimeout(resolve, REFETCH_SECONDS * 1000 + 200));
    expect((await sign('release', await github.mint(AUDIENCE, githubClaims()))).statusCode).toBe(200);
    const afterRotation = await github.stats();
    expect(afterRotation.jwks).toBe(before.jwks + 1);
    // Unknown kids in a burst: at most one more fetch in the interval, and every one refused.
    const stranger = issuerKey('RS256');
    for (let i = 0; i < 5; i++) {
      const claims = { ...githubClaims(), iss: github.issuer, aud: AUDIENCE, iat: nowS(), exp: nowS() + 300 };
      await expectRefused(
        await craft(stranger, { alg: 'RS256', kid: `unknown-${i}` }, claims),
        401,
        'UNAUTHENTICATED',
        /unknown kid/,
      );
    }
    expect((await github.stats()).jwks - afterRotation.jwks).toBeLessThanOrEqual(1);
    // Keys the issuer retired stop verifying once the set is fetched again: here, after the provider is edited.
    const oldKey = github.keys.find((k) => k.kid !== next.kid && k.alg === 'RS256')!;
    await github.rotate([next]);
    expect((await api('PATCH', '/v1/identity-providers/github-actions', { clockSkewSeconds: 60 })).statusCode).toBe(
      200,
    );
    const byOldKey = await craft(
      oldKey,
      { alg: 'RS256', kid: oldKey.kid },
      { ...githubClaims(), iss: github.issuer, aud: AUDIENCE, iat: nowS(), exp: nowS() + 300 },
    );
    await expectRefused(byOldKey, 401, 'UNAUTHENTICATED', /unknown kid/);
  });

  it('a deleted rule or provider stops its cached tokens at once on this replica', async () => {
    const token = await github.mint(AUDIENCE, githubClaims({ repository: 'acme/tools', environment: 'staging' }));
    expect((await sign('staging', token)).statusCode).toBe(200);
    expect((await api('DELETE', '/v1/workload-rules/acme-staging')).statusCode).toBe(200);
    await expectRefused(token, 404, 'NOT_FOUND', undefined, 'staging');

    const k8s = await kubernetes.mint(AUDIENCE, { sub: 'system:serviceaccount:build:signer' });
    expect((await sign('cluster', k8s)).statusCode).toBe(200);
    const deleted = await api('DELETE', '/v1/identity-providers/kubernetes');
    expect(deleted.json()).toEqual({ name: 'kubernetes', deletedRules: ['cluster-signer'] });
    await expectRefused(k8s, 401, 'UNAUTHENTICATED', /no identity provider is configured/, 'cluster');
    expect((await api('GET', '/v1/workload-rules/cluster-signer')).statusCode).toBe(404);
  });

  it('single use: a provider with singleUse refuses the second use of a token (by jti)', async () => {
    expect((await api('PATCH', '/v1/identity-providers/gitlab', { singleUse: true })).statusCode).toBe(200);
    try {
      const token = await gitlab.mint(AUDIENCE, gitlabClaims());
      expect((await sign('release', token)).statusCode).toBe(200);
      await expectRefused(token, 401, 'UNAUTHENTICATED', /already used/);
      // Not just this replica's memory: with every cache dropped (as on another replica) the ledger still refuses it.
      t.app.get(WorkloadIdentityService).invalidate('*');
      await expectRefused(token, 401, 'UNAUTHENTICATED', /already used/);
      // A new token of the same pipeline is a new jti.
      expect((await sign('release', await gitlab.mint(AUDIENCE, gitlabClaims()))).statusCode).toBe(200);
    } finally {
      expect((await api('PATCH', '/v1/identity-providers/gitlab', { singleUse: false })).statusCode).toBe(200);
    }
  });

  it('scopes idempotency keys to the workload identity (provider and sub), and never writes an ID token to the log', async () => {
    const body = { digest, hashAlgorithm: 'SHA-256', idempotencyKey: 'release-build-42' };
    const first = await sign('release', await github.mint(AUDIENCE, githubClaims()), body);
    expect(first.statusCode).toBe(200);
    // A new token of the same pipeline (same sub) replays the first answer …
    const replay = await sign('release', await github.mint(AUDIENCE, githubClaims()), body);
    expect(replay.body).toBe(first.body);
    // … a different workload (another sub) does not share the key.
    const other = await gitlab.mint(AUDIENCE, gitlabClaims());
    const separate = await sign('release', other, body);
    expect(separate.statusCode).toBe(200);
    expect(separate.json().signature).not.toBe(first.json().signature);
    await sign('release', `${other}x`);
    const logged = t.logs.join('');
    for (const token of [other, `${other}x`]) expect(logged).not.toContain(token.split('.')[1]);
  });

  it('describes the new routes in the OpenAPI document', async () => {
    const doc = (await t.app.inject({ method: 'GET', url: '/openapi.json' })).json();
    for (const path of [
      '/v1/identity-providers',
      '/v1/identity-providers/{name}',
      '/v1/workload-rules',
      '/v1/workload-rules/{name}',
    ])
      expect(doc.paths[path]).toBeDefined();
    expect(Object.keys(doc.paths['/v1/identity-providers/{name}']).sort()).toEqual(['delete', 'get', 'patch']);
    const schema = doc.components.schemas.CreateWorkloadRuleDto;
    expect(schema.required).toEqual(expect.arrayContaining(['name', 'provider', 'claims', 'keys']));
    expect(doc.components.schemas.CreateIdentityProviderDto.properties.allowedAlgorithms).toBeDefined();
  });

  it('notation-signet signs with an ID token handed over in token_env (the CI flow of docs/workload-identity.md), and the row names the pipeline', async () => {
    buildPlugin();
    await t.app.listen(0, '127.0.0.1');
    const url = await t.app.getUrl();
    const token = await github.mint(AUDIENCE, githubClaims({ run_id: '9001' }));
    const { signingInput, digest: artifactDigest } = jwsSigningInput('EC-256');
    const result = await runPlugin(
      'generate-signature',
      generateSignatureRequest('EC-256', 'release', { url, token_env: 'SIGNET_TOKEN' }, signingInput),
      { env: { SIGNET_TOKEN: token } },
    );
    expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: '' });
    const chain = result.json.certificateChain as string[];
    expect(
      opensslVerifies(
        path.join(dir, 'notation'),
        'EC-256',
        Buffer.from(signingInput, 'latin1'),
        result.json.signature as string,
        chain[0],
      ),
    ).toBe(true);
    const rows = (
      await api('GET', `/v1/audit?type=sign&subject=${encodeURIComponent('repo:acme/app:environment:prod')}&limit=1000`)
    ).json().events;
    const row = rows.find(
      (event: { data: { artifact?: { digest: string } } }) => event.data.artifact?.digest === artifactDigest,
    );
    expect(row.actor.workload).toMatchObject({
      provider: 'github-actions',
      rule: 'app-release',
      claims: { repository: 'acme/app', environment: 'prod' },
    });
    expect(result.stdout + result.stderr).not.toContain(token.split('.')[2]);
  });

  it('leaves sgt_ tokens on the same fast path as before', async () => {
    expect(signFastPathInstalled(t.app.getHttpAdapter().getInstance() as FastifyInstance)).toBe(true);
    const created = await api('POST', '/v1/tokens', { name: 'ci-release', role: 'signer', keys: ['release'] });
    const verify = jest.spyOn(IssuerKeys.prototype, 'verify');
    try {
      expect((await sign('release', created.json().token)).statusCode).toBe(200);
      expect(verify).not.toHaveBeenCalled();
    } finally {
      verify.mockRestore();
    }
    // A malformed bearer value that is neither answers 401 as before.
    const response = await sign('release', 'not-a-token');
    expect(response.statusCode).toBe(401);
  });

  it('manages providers and rules: list, get, patch, validation errors with the field named', async () => {
    const list = await api('GET', '/v1/identity-providers');
    expect(list.json().identityProviders.map((p: { name: string }) => p.name)).toEqual(
      expect.arrayContaining(['github-actions', 'gitlab']),
    );
    const one = await api('GET', '/v1/identity-providers/github-actions');
    expect(one.json()).toMatchObject({
      name: 'github-actions',
      issuer: github.issuer,
      audiences: [AUDIENCE],
      allowedAlgorithms: ['RS256'],
      clockSkewSeconds: 60,
      singleUse: false,
      jwksUri: null,
    });
    const rules = await api('GET', '/v1/workload-rules');
    expect(rules.json().workloadRules.find((r: { name: string }) => r.name === 'app-release')).toMatchObject({
      provider: 'github-actions',
      keys: ['release'],
      state: 'active',
    });
    const cases: Array<[string, string, unknown, string]> = [
      [
        'POST',
        '/v1/identity-providers',
        { name: 'plain-http', issuer: 'http://issuer.example.com', audiences: [AUDIENCE] },
        'issuer',
      ],
      [
        'POST',
        '/v1/identity-providers',
        { name: 'no-aud', issuer: 'https://issuer.example.com', audiences: [] },
        'audiences',
      ],
      [
        'POST',
        '/v1/identity-providers',
        { name: 'github-actions', issuer: 'https://x.example.com', audiences: [AUDIENCE] },
        '',
      ],
      [
        'POST',
        '/v1/workload-rules',
        { name: 'r1', provider: 'nope', claims: { sub: 'x' }, keys: ['release'] },
        'provider',
      ],
      [
        'POST',
        '/v1/workload-rules',
        { name: 'r2', provider: 'github-actions', claims: { repository: '*' }, keys: ['release'] },
        'claims.repository',
      ],
      [
        'POST',
        '/v1/workload-rules',
        { name: 'r3', provider: 'github-actions', claims: { aud: 'x' }, keys: ['release'] },
        'claims.aud',
      ],
      [
        'POST',
        '/v1/workload-rules',
        { name: 'r4', provider: 'github-actions', claims: { repository: 3 }, keys: ['release'] },
        'claims.repository',
      ],
      [
        'POST',
        '/v1/workload-rules',
        { name: 'r5', provider: 'github-actions', claims: { sub: 'x' }, keys: [] },
        'keys',
      ],
      ['PATCH', '/v1/workload-rules/app-release', { expiresAt: 'tomorrow' }, 'expiresAt'],
    ];
    for (const [method, url, payload, field] of cases) {
      const response = await api(method as 'POST', url, payload);
      expect(response.statusCode).toBe(field === '' ? 409 : 400);
      if (field) expect(response.json().error.details?.field).toBe(field);
    }
    // An expired rule grants nothing.
    expect(
      (
        await api('POST', '/v1/workload-rules', {
          name: 'expired',
          provider: 'github-actions',
          claims: { repository: 'acme/old' },
          keys: ['staging'],
          expiresAt: '2020-01-01T00:00:00Z',
        })
      ).statusCode,
    ).toBe(201);
    await expectRefused(
      await github.mint(AUDIENCE, githubClaims({ repository: 'acme/old' })),
      404,
      'NOT_FOUND',
      undefined,
      'staging',
    );
    expect((await api('PATCH', '/v1/workload-rules/expired', { expiresAt: null })).json()).toMatchObject({
      state: 'active',
      expiresAt: null,
    });
    expect(
      (await sign('staging', await github.mint(AUDIENCE, githubClaims({ repository: 'acme/old' })))).statusCode,
    ).toBe(200);
  });
});
