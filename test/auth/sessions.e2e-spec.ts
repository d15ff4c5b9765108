import * as fs from 'node:fs';
import * as path from 'node:path';
import { ADMIN_TOKEN_FILE } from '../../src/auth/admin-token.bootstrap';
import { query } from '../support/database';
import { injectAnswer } from '../support/inject-answer';
import { startTestApp, TestApp } from '../support/test-app';

type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE';

/**
 * Security console sessions (README "Security console") on the whole application: a token
 * exchanged once for an HttpOnly cookie; the cookie then acts exactly as its token, with a CSRF
 * header on writes, idle and absolute timeouts, and death with its token.
 */
describe('console sessions (HTTP)', () => {
  let t: TestApp;
  let admin: string;

  const call = (
    method: Method,
    url: string,
    options: {
      bearer?: string;
      cookie?: string;
      csrf?: string;
      payload?: unknown;
      ip?: string;
      headers?: Record<string, string>;
    } = {},
  ) =>
    t.app.inject({
      method,
      url,
      payload: options.payload as object,
      remoteAddress: options.ip,
      headers: {
        ...(options.bearer ? { authorization: `Bearer ${options.bearer}` } : {}),
        ...(options.cookie ? { cookie: options.cookie } : {}),
        ...(options.csrf ? { 'x-csrf-token': options.csrf } : {}),
        ...options.headers,
      },
    });

  async function createToken(body: Record<string, unknown>): Promise<{ id: string; token: string }> {
    const response = await call('POST', '/v1/tokens', { bearer: admin, payload: body });
    expect(response.statusCode).toBe(201);
    return response.json();
  }

  let addresses = 0;
  /** Signs in with `token` (each from its own address, so the sign-in limit is not what is tested); returns the cookie pair to send back and the body. */
  async function signIn(
    token: string,
    ip = `203.0.113.${++addresses}`,
  ): Promise<{
    cookie: string;
    setCookie: string;
    body: { role: string; tokenName: string; csrfToken: string; expiresAt: string; idleExpiresAt: string };
  }> {
    const response = await call('POST', '/v1/sessions', { payload: { token }, ip });
    expect(response.statusCode).toBe(201);
    const setCookie = String(response.headers['set-cookie']);
    return { cookie: setCookie.split(';')[0], setCookie, body: response.json() };
  }

  beforeAll(async () => {
    t = await startTestApp({
      SIGNET_AUDIT_CHECKPOINT_INTERVAL_SECONDS: '0',
      SIGNET_SESSION_IDLE_TIMEOUT_SECONDS: '3',
      SIGNET_SESSION_ABSOLUTE_TIMEOUT_SECONDS: '6',
      SIGNET_SESSION_SIGNINS_PER_MINUTE: '5',
    });
    admin = fs.readFileSync(path.join(t.config.dataDir, ADMIN_TOKEN_FILE), 'utf8').trim();
  });
  afterAll(async () => {
    await t.close();
  });

  it('sets an HttpOnly, SameSite=Strict, Path=/ cookie with an opaque id whose hash alone is stored; the body names role, token, CSRF token and deadlines', async () => {
    const officer = await createToken({ name: 'officer-cookie', role: 'security-officer' });
    const response = await call('POST', '/v1/sessions', { payload: { token: officer.token }, ip: '192.0.2.1' });
    expect(response.statusCode).toBe(201);
    expect(response.headers['cache-control']).toBe('no-store');
    const setCookie = String(response.headers['set-cookie']);
    expect(setCookie).toMatch(/^signet_session=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Strict$/);
    // Plain HTTP: no Secure attribute (a browser would drop the cookie); the TLS case is in sessions-replicas.e2e-spec.ts.
    expect(setCookie).not.toMatch(/Secure/);
    const body = response.json();
    expect(body).toEqual({
      role: 'security-officer',
      tokenName: 'officer-cookie',
      csrfToken: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
      expiresAt: expect.any(String),
      idleExpiresAt: expect.any(String),
    });
    const secret = setCookie.split(';')[0].split('=')[1];
    expect(body.csrfToken).not.toBe(secret);
    expect(Date.parse(body.expiresAt) - Date.now()).toBeLessThanOrEqual(6000);
    expect(Date.parse(body.idleExpiresAt)).toBeLessThanOrEqual(Date.parse(body.expiresAt));
    // Neither the secret, the token nor the CSRF token is in the database, the audit log or the logs.
    const stored = await query(t.database.url, 'SELECT * FROM console_sessions');
    const audit = await query(t.database.url, "SELECT * FROM audit_events WHERE type LIKE 'session.%'");
    for (const text of [JSON.stringify(stored), JSON.stringify(audit), t.logs.join('')]) {
      expect(text).not.toContain(secret);
      expect(text).not.toContain(officer.token);
      expect(text).not.toContain(body.csrfToken);
    }
    expect(audit.find((row) => row.type === 'session.created')).toMatchObject({
      data: { tokenName: 'officer-cookie', role: 'security-officer' },
    });
    // The session answers GET /v1/sessions/current with the same CSRF token (a reloaded page gets it back).
    const current = await call('GET', '/v1/sessions/current', { cookie: setCookie.split(';')[0] });
    expect(current.statusCode).toBe(200);
    expect(current.json().csrfToken).toBe(body.csrfToken);
  });

  it('refuses a bad, revoked or signer token (401, 401, 403) and gives no cookie', async () => {
    const ip = '192.0.2.2';
    const bad = await call('POST', '/v1/sessions', { payload: { token: 'sgt_' + 'A'.repeat(43) }, ip });
    expect(bad.statusCode).toBe(401);
    expect(bad.headers['set-cookie']).toBeUndefined();
    const revoked = await createToken({ name: 'revoked-before', role: 'auditor' });
    expect((await call('DELETE', `/v1/tokens/${revoked.id}`, { bearer: admin })).statusCode).toBe(200);
    expect((await call('POST', '/v1/sessions', { payload: { token: revoked.token }, ip })).statusCode).toBe(401);
    const signer = await createToken({ name: 'pipeline', role: 'signer' });
    const refused = await call('POST', '/v1/sessions', { payload: { token: signer.token }, ip });
    expect(refused.statusCode).toBe(403);
    expect(refused.json().error.code).toBe('FORBIDDEN');
    expect(refused.headers['set-cookie']).toBeUndefined();
    expect((await call('POST', '/v1/sessions', { payload: {}, ip })).statusCode).toBe(400);
  });

  it('needs X-CSRF-Token equal to the session token on cookie writes (403 CSRF_TOKEN_INVALID), not on reads nor on bearer requests', async () => {
    const { cookie, body } = await signIn(admin);
    const write = { name: 'csrf-made', role: 'auditor' };
    for (const csrf of [undefined, 'wrong', body.csrfToken.slice(0, -1) + (body.csrfToken.endsWith('A') ? 'B' : 'A')]) {
      const refused = await call('POST', '/v1/tokens', { cookie, csrf, payload: write });
      expect(refused.statusCode).toBe(403);
      expect(refused.json().error.code).toBe('CSRF_TOKEN_INVALID');
    }
    expect(
      (await call('GET', '/v1/tokens', { bearer: admin })).json().tokens.map((token: { name: string }) => token.name),
    ).not.toContain('csrf-made');
    expect((await call('GET', '/v1/tokens', { cookie })).statusCode).toBe(200);
    const made = await call('POST', '/v1/tokens', { cookie, csrf: body.csrfToken, payload: write });
    expect(made.statusCode).toBe(201);
    // The row is audited as made by the session's token.
    const [row] = await query<{ actor: unknown }>(
      t.database.url,
      "SELECT actor FROM audit_events WHERE type = 'token.created' AND data->>'name' = 'csrf-made'",
    );
    expect(row.actor).toMatchObject({ tokenName: 'bootstrap-admin', role: 'admin' });
    // Bearer requests never need it, even with a cookie beside them.
    expect(
      (await call('POST', '/v1/tokens', { bearer: admin, cookie, payload: { name: 'bearer-made', role: 'auditor' } }))
        .statusCode,
    ).toBe(201);
    // Another session's CSRF token does not fit this one.
    const other = await signIn(admin);
    expect((await call('DELETE', '/v1/sessions', { cookie, csrf: other.body.csrfToken })).statusCode).toBe(403);
  });

  it('grants through the cookie exactly what the token grants (roles and key scope)', async () => {
    const auditor = await createToken({ name: 'auditor-cookie', role: 'auditor' });
    const { cookie, body } = await signIn(auditor.token);
    expect((await call('GET', '/v1/audit?limit=1', { cookie })).statusCode).toBe(200);
    expect((await call('GET', '/v1/keys', { cookie })).statusCode).toBe(200);
    for (const [method, url, payload] of [
      ['GET', '/v1/tokens', undefined],
      ['POST', '/v1/keys', { name: 'nope', keySpec: 'EC-256', subject: { C: 'US', ST: 'WA', O: 'X', CN: 'nope' } }],
      ['POST', '/v1/distribution/sync', {}],
    ] as Array<[Method, string, unknown]>) {
      const bearer = await call(method, url, { bearer: auditor.token, payload });
      const viaCookie = await call(method, url, { cookie, csrf: body.csrfToken, payload });
      expect([url, viaCookie.statusCode]).toEqual([url, bearer.statusCode]);
      expect(viaCookie.statusCode).toBe(403);
    }
  });

  it('signs out with DELETE /v1/sessions (cookie cleared, session dead, session.ended audited); bearer callers have no session', async () => {
    const { cookie, body } = await signIn(admin);
    const out = await call('DELETE', '/v1/sessions', { cookie, csrf: body.csrfToken });
    expect(out.statusCode).toBe(204);
    expect(String(out.headers['set-cookie'])).toMatch(
      /^signet_session=; Path=\/; HttpOnly; SameSite=Strict; Max-Age=0/,
    );
    const after = await call('GET', '/v1/sessions/current', { cookie });
    expect(after.statusCode).toBe(401);
    const [ended] = await query<{ data: unknown }>(
      t.database.url,
      "SELECT data FROM audit_events WHERE type = 'session.ended' ORDER BY seq DESC LIMIT 1",
    );
    expect(ended.data).toMatchObject({ reason: 'signed-out' });
    expect((await call('GET', '/v1/sessions/current', { bearer: admin })).statusCode).toBe(404);
  });

  it('refuses the cookie on requests a browser marks as from another origin (a sibling subdomain is same-site), reads included', async () => {
    const { cookie } = await signIn(admin);
    for (const site of ['same-site', 'cross-site']) {
      const answer = await call('GET', '/v1/audit?limit=1', { cookie, headers: { 'sec-fetch-site': site } });
      expect([site, answer.statusCode, answer.json().error.code]).toEqual([site, 403, 'CSRF_TOKEN_INVALID']);
    }
    // The console's own calls (same-origin), a typed URL (none) and clients that send no such header still work.
    for (const headers of [{ 'sec-fetch-site': 'same-origin' }, { 'sec-fetch-site': 'none' }, {}] as Array<
      Record<string, string>
    >) {
      expect((await call('GET', '/v1/audit?limit=1', { cookie, headers })).statusCode).toBe(200);
    }
    // A bearer request is not a browser's ambient credential: unaffected.
    expect(
      (await call('GET', '/v1/audit?limit=1', { bearer: admin, headers: { 'sec-fetch-site': 'cross-site' } }))
        .statusCode,
    ).toBe(200);
  });

  it('never moves the audit export watermark (which retention consults) on a cookie read; a bearer export does', async () => {
    const watermark = async () =>
      (
        await query<{ through: string }>(
          t.database.url,
          'SELECT exported_through_seq::text AS through FROM audit_export_watermark',
        )
      )[0].through;
    const { cookie } = await signIn(admin);
    const before = await watermark();
    for (const accept of ['application/x-ndjson', 'application/json']) {
      const answer = await t.app.inject({
        method: 'GET',
        url: `/v1/audit?after=${before}`,
        headers: { cookie, accept },
      });
      expect(answer.statusCode).toBe(200);
      expect(answer.body.length).toBeGreaterThan(10);
    }
    expect(await watermark()).toBe(before);
    const exported = await t.app.inject({
      method: 'GET',
      url: `/v1/audit?after=${before}`,
      headers: { authorization: `Bearer ${admin}`, accept: 'application/x-ndjson' },
    });
    expect(exported.statusCode).toBe(200);
    expect(BigInt(await watermark())).toBeGreaterThan(BigInt(before));
  });

  it('says why a session is dead on every later request too (signed-out, token-revoked), not just the first', async () => {
    const out = await signIn(admin);
    expect((await call('DELETE', '/v1/sessions', { cookie: out.cookie, csrf: out.body.csrfToken })).statusCode).toBe(
      204,
    );
    for (let i = 0; i < 2; i++) {
      const answer = await call('GET', '/v1/sessions/current', { cookie: out.cookie });
      expect([answer.statusCode, answer.json().error.message]).toEqual([401, expect.stringMatching(/signed-out/)]);
    }
    const officer = await createToken({ name: 'officer-reason', role: 'security-officer' });
    const revoked = await signIn(officer.token);
    expect((await call('DELETE', `/v1/tokens/${officer.id}`, { bearer: admin })).statusCode).toBe(200);
    const answer = await call('GET', '/v1/sessions/current', { cookie: revoked.cookie });
    expect([answer.statusCode, answer.json().error.message]).toEqual([401, expect.stringMatching(/token-revoked/)]);
  });

  it('does not count the live fleet stream reconnecting as use: an unattended page still reaches the idle timeout', async () => {
    const { cookie } = await signIn(admin);
    const route = { method: 'GET', url: '/v1/distribution/events' };
    // The page's EventSource reconnecting every second, for longer than the idle timeout (3 s).
    const statuses: number[] = [];
    for (let second = 0; second < 5; second++) {
      statuses.push(
        (
          await injectAnswer(t.app, route, {
            method: 'GET',
            url: route.url,
            headers: { cookie, accept: 'text/event-stream' },
          })
        ).statusCode,
      );
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
    // Streams open while the session lives, and are refused once it has been idle for 3 s.
    expect(statuses[0]).toBe(200);
    expect(statuses[statuses.length - 1]).toBe(401);
    const answer = await call('GET', '/v1/sessions/current', { cookie });
    expect([answer.statusCode, answer.json().error.message]).toEqual([401, expect.stringMatching(/idle-timeout/)]);
  });

  it('ends a session unused for the idle timeout, and a busy one at the absolute timeout', async () => {
    const idle = await signIn(admin);
    const busy = await signIn(admin);
    // Keep `busy` alive past the idle timeout (3 s) by using it every second.
    for (let second = 0; second < 4; second++) {
      expect((await call('GET', '/v1/sessions/current', { cookie: busy.cookie })).statusCode).toBe(200);
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
    const idleAnswer = await call('GET', '/v1/sessions/current', { cookie: idle.cookie });
    expect(idleAnswer.statusCode).toBe(401);
    expect(idleAnswer.json().error.message).toMatch(/idle-timeout/);
    // `busy` keeps working until its absolute deadline (6 s after sign-in), however busy.
    const deadline = Date.parse(busy.body.expiresAt);
    while (Date.now() < deadline - 300) {
      expect((await call('GET', '/v1/sessions/current', { cookie: busy.cookie })).statusCode).toBe(200);
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, deadline - Date.now()) + 100));
    const absolute = await call('GET', '/v1/sessions/current', { cookie: busy.cookie });
    expect(absolute.statusCode).toBe(401);
    expect(absolute.json().error.message).toMatch(/absolute-timeout/);
  });

  it('ends the sessions of a revoked token at once, and of an expired token', async () => {
    const officer = await createToken({ name: 'officer-revoked', role: 'security-officer' });
    const { cookie } = await signIn(officer.token);
    expect((await call('GET', '/v1/sessions/current', { cookie })).statusCode).toBe(200);
    expect((await call('DELETE', `/v1/tokens/${officer.id}`, { bearer: admin })).statusCode).toBe(200);
    expect((await call('GET', '/v1/sessions/current', { cookie })).statusCode).toBe(401);
    const [ended] = await query<{ data: unknown }>(
      t.database.url,
      "SELECT data FROM audit_events WHERE type = 'session.ended' AND data->>'tokenId' = $1",
      [officer.id],
    );
    expect(ended.data).toMatchObject({ reason: 'token-revoked' });
    // A token that expires takes its session with it, on the next request.
    const auditor = await createToken({ name: 'auditor-expiring', role: 'auditor', expiresInDays: 1 });
    const session = await signIn(auditor.token);
    const tokenExpiry = Date.now() + 1500;
    expect(
      (
        await call('PATCH', `/v1/tokens/${auditor.id}`, {
          bearer: admin,
          payload: { expiresAt: new Date(tokenExpiry).toISOString() },
        })
      ).statusCode,
    ).toBe(200);
    expect((await call('GET', '/v1/sessions/current', { cookie: session.cookie })).statusCode).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, tokenExpiry - Date.now() + 100));
    const expired = await call('GET', '/v1/sessions/current', { cookie: session.cookie });
    expect(expired.statusCode).toBe(401);
    expect(expired.json().error.message).toMatch(/token-expired/);
  });

  it('limits sign-in attempts per client address (429 with Retry-After), other addresses unaffected', async () => {
    const ip = '198.51.100.7';
    const answers: number[] = [];
    for (let i = 0; i < 6; i++)
      answers.push(
        (await call('POST', '/v1/sessions', { payload: { token: 'sgt_' + 'B'.repeat(43) }, ip })).statusCode,
      );
    expect(answers).toEqual([401, 401, 401, 401, 401, 429]);
    const limited = await call('POST', '/v1/sessions', { payload: { token: admin }, ip });
    expect(limited.statusCode).toBe(429);
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    expect((await call('POST', '/v1/sessions', { payload: { token: admin }, ip: '198.51.100.8' })).statusCode).toBe(
      201,
    );
  });
});
