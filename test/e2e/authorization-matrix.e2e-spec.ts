import type { FastifyInstance } from 'fastify';
import { DataSource } from 'typeorm';
import { TokenService } from '../../src/auth/token.service';
import { KeysService } from '../../src/keys/keys.service';
import { registeredRoutes } from '../../src/observability/route-registry';
import { signFastPathInstalled } from '../../src/signing/sign-fast-path';
import { injectAnswer } from '../support/inject-answer';
import { Caller, EVERYONE, Rule, TABLE } from '../support/route-roles';
import { startTestApp, TestApp } from '../support/test-app';
import { OidcIssuer } from '../support/oidc-issuer';

/**
 * API.md's role table (test/support/route-roles.ts), checked against every route the running
 * application registers. A route that the table does not cover fails the test, so a new endpoint
 * cannot slip in without a decision about who may call it.
 */
const KEY = 'matrix-key';
const OTHER_KEY = 'matrix-other';
/** Granted to a signer but never created: its 404 must equal an ungranted key's. */
const GHOST_KEY = 'matrix-ghost';
const SIGN_BODY = JSON.stringify({ digest: Buffer.alloc(32, 7).toString('base64'), hashAlgorithm: 'SHA-256' });
/** Requires KEY: a grant of it lets a caller sign only artifacts KEY signed, read from the payload. */
const PROMOTED_KEY = 'matrix-promoted';

function concrete(url: string): string {
  return url
    .replace(':name/versions/:version', `${KEY}/versions/1`)
    .replace('/v1/keys/:name', `/v1/keys/${KEY}`)
    .replace(':name', 'nonexistent')
    .replace(':serial', '01')
    .replace(':id', '00000000-0000-0000-0000-000000000000')
    .replace(':region', 'nowhere')
    .replace(':file', 'nonexistent.crt')
    .replace(':ca', 'nonexistent')
    .replace(/\*$/, 'AA');
}

describe('authorisation matrix over the live router (API.md role table)', () => {
  let t: TestApp;
  let issuer: OidcIssuer;
  const tokens: Record<string, string> = {};

  beforeAll(async () => {
    issuer = await OidcIssuer.start([{ id: 'signet-matrix' }]);
    t = await startTestApp({ SIGNET_DISTRIBUTION_ALLOW_LOOPBACK: 'true' });
    const keys = t.app.get(KeysService);
    await keys.create({ name: KEY, keySpec: 'EC-256', subject: { C: 'US', ST: 'Matrix', O: 'Signet', CN: KEY } });
    await keys.create({
      name: OTHER_KEY,
      keySpec: 'EC-256',
      subject: { C: 'US', ST: 'Matrix', O: 'Signet', CN: OTHER_KEY },
    });
    await keys.create({
      name: PROMOTED_KEY,
      keySpec: 'EC-256',
      subject: { C: 'US', ST: 'Matrix', O: 'Signet', CN: PROMOTED_KEY },
      requires: [KEY],
    });
    const service = t.app.get(TokenService);
    const make = async (name: string, role: Caller, keyGrants: string[] = []) =>
      (await service.create({ name, role, keys: keyGrants }, undefined)).token;
    tokens.admin = await make('m-admin', 'admin');
    tokens.signer = await make('m-signer', 'signer', [KEY]);
    tokens['signer-promoted'] = await make('m-signer-promoted', 'signer', [PROMOTED_KEY]);
    tokens['signer-ungranted'] = await make('m-signer-2', 'signer', [OTHER_KEY]);
    tokens['signer-ghost'] = await make('m-signer-3', 'signer', [GHOST_KEY]);
    tokens['security-officer'] = await make('m-so', 'security-officer');
    tokens.auditor = await make('m-auditor', 'auditor');
    const revoked = await service.create({ name: 'm-revoked', role: 'admin', keys: [] }, undefined);
    await service.revoke(revoked.id, undefined);
    tokens.revoked = revoked.token;
    const expired = await service.create({ name: 'm-expired', role: 'admin', keys: [], expiresInDays: 1 }, undefined);
    await t.app
      .get(DataSource)
      .query(`UPDATE api_tokens SET expires_at = now() - interval '1 minute' WHERE id = $1`, [expired.id]);
    tokens.expired = expired.token;
    // Workload identity: an OIDC ID token whose claims match a rule granting KEY (and one granting only OTHER_KEY / GHOST_KEY).
    const headers = { authorization: `Bearer ${tokens.admin}` };
    const setup = async (url: string, payload: object) =>
      expect((await t.app.inject({ method: 'POST', url, headers, payload })).statusCode).toBe(201);
    await setup('/v1/identity-providers', { name: 'matrix-idp', issuer: issuer.issuer, audiences: ['signet-matrix'] });
    await setup('/v1/workload-rules', {
      name: 'matrix-rule',
      provider: 'matrix-idp',
      claims: { sub: 'pipeline-granted' },
      keys: [KEY],
    });
    await setup('/v1/workload-rules', {
      name: 'matrix-rule-other',
      provider: 'matrix-idp',
      claims: { sub: 'pipeline-ungranted' },
      keys: [OTHER_KEY],
    });
    await setup('/v1/workload-rules', {
      name: 'matrix-rule-ghost',
      provider: 'matrix-idp',
      claims: { sub: 'pipeline-ghost' },
      keys: [GHOST_KEY],
    });
    tokens.workload = await issuer.mint('signet-matrix', { sub: 'pipeline-granted' });
    tokens['workload-ungranted'] = await issuer.mint('signet-matrix', { sub: 'pipeline-ungranted' });
    tokens['workload-ghost'] = await issuer.mint('signet-matrix', { sub: 'pipeline-ghost' });
  });
  afterAll(async () => {
    await t?.close();
    await issuer?.stop();
  });

  function call(rule: Rule, token?: string, key = KEY, session?: { cookie: string; csrfToken: string }) {
    const hasBody = rule.method === 'POST' || rule.method === 'PATCH';
    return injectAnswer(t.app, rule, {
      method: rule.method as 'GET',
      url: concrete(rule.url).replace(KEY, key),
      headers: {
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(session ? { cookie: session.cookie, 'x-csrf-token': session.csrfToken } : {}),
        ...(hasBody ? { 'content-type': 'application/json' } : {}),
      },
      ...(hasBody ? { payload: rule.url.endsWith('/sign') ? SIGN_BODY : '{}' } : {}),
    });
  }

  it('covers every registered route, and every rule names a registered route', () => {
    const live = registeredRoutes(t.app.getHttpAdapter().getInstance() as FastifyInstance).map(
      (r) => `${r.method} ${r.url}`,
    );
    const uncovered = live.filter((route) => !TABLE.some((rule) => `${rule.method} ${rule.url}` === route));
    expect(uncovered).toEqual([]);
    const stale = TABLE.filter((rule) => !live.includes(`${rule.method} ${rule.url}`)).map(
      (rule) => `${rule.method} ${rule.url}`,
    );
    // Swagger's asset routes vary by version; everything else must exist.
    expect(stale.filter((route) => !route.includes('/docs'))).toEqual([]);
  });

  it('answers 401 without a token, with a revoked and with an expired token, on every non-public route', async () => {
    const failures: string[] = [];
    for (const rule of TABLE.filter((r) => r.allowed !== 'public')) {
      for (const [label, token] of [
        ['no token', undefined],
        ['revoked', tokens.revoked],
        ['expired', tokens.expired],
      ] as const) {
        const response = await call(rule, token);
        if (response.statusCode !== 401) failures.push(`${rule.method} ${rule.url} (${label}): ${response.statusCode}`);
        else if (response.json().error?.code !== 'UNAUTHENTICATED')
          failures.push(`${rule.method} ${rule.url} (${label}): code ${response.json().error?.code}`);
      }
    }
    expect(failures).toEqual([]);
  });

  it('lets each role through exactly where the table allows it (403 elsewhere; 404 for ungranted keys)', async () => {
    const failures: string[] = [];
    for (const rule of TABLE) {
      for (const caller of [...EVERYONE, 'signer-ungranted' as const]) {
        const role: Caller = caller === 'signer-ungranted' ? 'signer' : caller;
        const response = await call(rule, tokens[caller]);
        const status = response.statusCode;
        const where = `${rule.method} ${rule.url} as ${caller}: ${status}`;
        if (rule.allowed === 'public') {
          if (status === 401 || status === 403) failures.push(where);
          continue;
        }
        if (!rule.allowed.includes(role)) {
          if (status !== 403) failures.push(`${where} (expected 403)`);
          continue;
        }
        if (rule.keyScoped && caller === 'signer-ungranted') {
          // Not granted: indistinguishable from a key that does not exist.
          const missing = await call(rule, tokens['signer-ghost'], GHOST_KEY);
          if (status !== 404 || response.body !== missing.body.replace(GHOST_KEY, KEY))
            failures.push(`${where} (expected the 404 of a missing key: ${response.body} vs ${missing.body})`);
          continue;
        }
        if (status === 401 || status === 403) failures.push(`${where} (expected access)`);
      }
    }
    expect(failures).toEqual([]);
  });

  it('gives a console session cookie exactly the answers of its token on every route; signer tokens get no session', async () => {
    const failures: string[] = [];
    const signer = await t.app.inject({ method: 'POST', url: '/v1/sessions', payload: { token: tokens.signer } });
    expect(signer.statusCode).toBe(403);
    for (const caller of ['admin', 'security-officer', 'auditor'] as const) {
      const signedIn = await t.app.inject({
        method: 'POST',
        url: '/v1/sessions',
        payload: { token: tokens[caller] },
        remoteAddress: `192.0.2.${caller.length}`,
      });
      expect(signedIn.statusCode).toBe(201);
      const session = {
        cookie: String(signedIn.headers['set-cookie']).split(';')[0],
        csrfToken: signedIn.json().csrfToken as string,
      };
      // The session routes answer sessions, not tokens (a bearer caller has none): checked in test/auth/sessions.e2e-spec.ts.
      for (const rule of TABLE.filter((r) => r.allowed !== 'public' && !r.url.startsWith('/v1/sessions'))) {
        const bearer = await call(rule, tokens[caller]);
        const cookie = await call(rule, undefined, KEY, session);
        if (cookie.statusCode !== bearer.statusCode)
          failures.push(
            `${rule.method} ${rule.url} as ${caller}: cookie ${cookie.statusCode}, bearer ${bearer.statusCode}`,
          );
      }
    }
    expect(failures).toEqual([]);
  });

  it('gives an OIDC ID token matched by a workload rule exactly the signer row: its keys only, 403 elsewhere, and the 404 of a missing key for keys its rules do not name', async () => {
    const failures: string[] = [];
    for (const rule of TABLE.filter((r) => r.allowed !== 'public')) {
      const response = await call(rule, tokens.workload);
      const where = `${rule.method} ${rule.url} as workload: ${response.statusCode}`;
      if (rule.allowed === 'public') continue;
      if (!rule.allowed.includes('signer')) {
        if (response.statusCode !== 403) failures.push(`${where} (expected 403)`);
        continue;
      }
      if (response.statusCode === 401 || response.statusCode === 403) failures.push(`${where} (expected access)`);
      if (rule.keyScoped) {
        const ungranted = await call(rule, tokens['workload-ungranted']);
        const missing = await call(rule, tokens['workload-ghost'], GHOST_KEY);
        if (ungranted.statusCode !== 404 || ungranted.body !== missing.body.replace(GHOST_KEY, KEY))
          failures.push(
            `${rule.method} ${rule.url} as workload-ungranted: ${ungranted.statusCode} ${ungranted.body} vs ${missing.body}`,
          );
      }
    }
    expect(failures).toEqual([]);
  });

  it("answers the sign route from its fast path (src/signing/sign-fast-path.ts), so the rows above hold for it, and keeps Nest's 404 for an empty key name", async () => {
    expect(signFastPathInstalled(t.app.getHttpAdapter().getInstance() as FastifyInstance)).toBe(true);
    const empty = await t.app.inject({
      method: 'POST',
      url: '/v1/keys//sign',
      headers: { authorization: `Bearer ${tokens.admin}`, 'content-type': 'application/json' },
      payload: SIGN_BODY,
    });
    expect(empty.statusCode).toBe(404);
    expect(empty.json().error.code).toBe('ROUTE_NOT_FOUND');
    const signed = await t.app.inject({
      method: 'POST',
      url: `/v1/keys/${KEY}/sign`,
      headers: { authorization: `Bearer ${tokens.signer}`, 'content-type': 'application/json' },
      payload: SIGN_BODY,
    });
    expect(signed.statusCode).toBe(200);
    expect(signed.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(signed.headers['cache-control']).toBe('no-store');
    expect(signed.json()).toMatchObject({ keyName: KEY, signingAlgorithm: 'ECDSA-SHA-256' });
  });

  it('a grant of a key with requires signs only artifacts read from the payload that the required key signed (issue #17), for every role allowed to sign', async () => {
    const header = Buffer.from('{"alg":"ES256","cty":"application/vnd.cncf.notary.payload.v1+json"}').toString(
      'base64url',
    );
    const descriptor = (digest: string) =>
      `{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"${digest}","size":1}`;
    const jws = (payloadJson: string) =>
      Buffer.from(`${header}.${Buffer.from(payloadJson).toString('base64url')}`).toString('base64');
    const [x, y] = [`sha256:${'1'.repeat(64)}`, `sha256:${'2'.repeat(64)}`];
    const sign = (key: string, token: string, body: unknown) =>
      t.app.inject({
        method: 'POST',
        url: `/v1/keys/${key}/sign`,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        payload: JSON.stringify(body),
      });
    expect(
      (await sign(KEY, tokens.admin, { payload: jws(`{"targetArtifact":${descriptor(x)}}`), hashAlgorithm: 'SHA-256' }))
        .statusCode,
    ).toBe(200);
    const answers: Record<string, string[]> = {};
    for (const caller of ['admin', 'signer-promoted']) {
      const attempts = [
        { digest: Buffer.alloc(32, 9).toString('base64'), hashAlgorithm: 'SHA-256', artifact: { digest: x } },
        {
          payload: jws(`{"targetArtifact":${descriptor(x)},"TargetArtifact":${descriptor(y)}}`),
          hashAlgorithm: 'SHA-256',
        },
        { payload: jws(`{"targetArtifact":${descriptor(y)}}`), hashAlgorithm: 'SHA-256', artifact: { digest: y } },
        { payload: Buffer.from('opaque').toString('base64'), hashAlgorithm: 'SHA-256', artifact: { digest: x } },
        { payload: jws(`{"targetArtifact":${descriptor(x)}}`), hashAlgorithm: 'SHA-256' },
      ];
      answers[caller] = [];
      for (const body of attempts) {
        const response = await sign(PROMOTED_KEY, tokens[caller], body);
        answers[caller].push(
          `${response.statusCode} ${response.json().error?.code ?? response.json().artifact?.digest}`,
        );
      }
    }
    const expected = [
      '400 PAYLOAD_REQUIRED',
      '400 AMBIGUOUS_PAYLOAD',
      '409 PROMOTION_REQUIRED',
      '400 ARTIFACT_REQUIRED',
      `200 ${x}`,
    ];
    expect(answers).toEqual({ admin: expected, 'signer-promoted': expected });
    // The grant still scopes the key: the signer of KEY alone does not reach PROMOTED_KEY.
    expect(
      (
        await sign(PROMOTED_KEY, tokens.signer, {
          payload: jws(`{"targetArtifact":${descriptor(x)}}`),
          hashAlgorithm: 'SHA-256',
        })
      ).statusCode,
    ).toBe(404);
  });

  it('refuses a form body with 415 UNSUPPORTED_MEDIA_TYPE on every route that takes a body, except the binary /ocsp and /tsa (issue #17)', async () => {
    const failures: string[] = [];
    const withBodies = TABLE.filter(
      (rule) =>
        ['POST', 'PUT', 'PATCH', 'DELETE'].includes(rule.method) && rule.url !== '/ocsp/:ca' && rule.url !== '/tsa',
    );
    expect(withBodies.length).toBeGreaterThan(10);
    for (const rule of withBodies) {
      for (const type of ['application/x-www-form-urlencoded', 'text/plain']) {
        const response = await t.app.inject({
          method: rule.method as 'POST',
          url: concrete(rule.url),
          headers: { authorization: `Bearer ${tokens.admin}`, 'content-type': type },
          payload: 'name=matrix-form&role=admin&reason=form',
        });
        if (response.statusCode !== 415 || response.json().error?.code !== 'UNSUPPORTED_MEDIA_TYPE')
          failures.push(`${rule.method} ${rule.url} (${type}): ${response.statusCode} ${response.body.slice(0, 120)}`);
      }
    }
    expect(failures).toEqual([]);
  });

  it('serves /metrics anonymously only when SIGNET_METRICS_PUBLIC is set', async () => {
    expect((await t.app.inject({ method: 'GET', url: '/metrics' })).statusCode).toBe(401);
    const open = await startTestApp({ SIGNET_METRICS_PUBLIC: 'true' });
    try {
      expect((await open.app.inject({ method: 'GET', url: '/metrics' })).statusCode).toBe(200);
    } finally {
      await open.close();
    }
  });
});
