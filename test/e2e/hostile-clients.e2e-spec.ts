import * as fs from 'node:fs';
import * as path from 'node:path';
import { ADMIN_TOKEN_FILE } from '../../src/auth/admin-token.bootstrap';
import { KEY_STORE, KeyStore } from '../../src/hsm/key-store';
import { query } from '../support/database';
import { startTestApp, TestApp } from '../support/test-app';

/**
 * Issue #17, findings 5–9 (hostile clients and insiders), on the whole application in-process:
 * real PostgreSQL, a real SoftHSM2 token, the dev CA, request logging on and its output captured.
 * (TLS suites: test/e2e/tls.e2e-spec.ts, on a real server process. The last-admin race across
 * replicas: test/auth/auth-services.int-spec.ts.)
 */
describe('hostile clients and insiders (issue #17, findings 5–9)', () => {
  let t: TestApp;
  let admin: string;
  const subject = (cn: string) => ({ C: 'US', ST: 'Washington', O: 'Example Corp', CN: cn });
  const digestBody = (label: string, idempotencyKey?: string) => ({
    digest: Buffer.alloc(32, label.length).toString('base64'),
    hashAlgorithm: 'SHA-256',
    ...(idempotencyKey ? { idempotencyKey } : {}),
  });

  const call = (
    method: 'GET' | 'POST' | 'PATCH' | 'DELETE',
    url: string,
    body?: unknown,
    headers: Record<string, string> = {},
    token = admin,
  ) =>
    t.app.inject({
      method,
      url,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...headers,
      },
      ...(body !== undefined ? { payload: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
    });

  beforeAll(async () => {
    t = await startTestApp({ SIGNET_LOG_REQUESTS: 'true', SIGNET_AUDIT_CHECKPOINT_INTERVAL_SECONDS: '0' });
    admin = fs.readFileSync(path.join(t.config.dataDir, ADMIN_TOKEN_FILE), 'utf8').trim();
  }, 300_000);
  afterAll(() => t?.close());

  describe('5: rotation schedules have a floor (SIGNET_ROTATION_MIN_INTERVAL_HOURS, default 24)', () => {
    it.each([
      ['* * * * * *', 1],
      ['* * * * *', 60],
      ['0 */6 * * *', 6 * 3600],
      ['0 1,23 * * *', 22 * 3600],
    ])(
      'refuses %s (400 ROTATION_TOO_FREQUENT), creating no key and no HSM key pair',
      async (schedule, shortestIntervalSeconds) => {
        const name = `too-often-${shortestIntervalSeconds}`;
        const keysBefore = (await t.app.get<KeyStore>(KEY_STORE).listKeys()).length;
        const response = await call('POST', '/v1/keys', {
          name,
          keySpec: 'EC-256',
          subject: subject(name),
          rotation: { schedule },
        });
        expect(response.statusCode).toBe(400);
        expect(response.json().error).toMatchObject({
          code: 'ROTATION_TOO_FREQUENT',
          details: { field: 'rotation.schedule', shortestIntervalSeconds, minIntervalHours: 24 },
        });
        expect((await call('GET', `/v1/keys/${name}`)).statusCode).toBe(404);
        expect((await t.app.get<KeyStore>(KEY_STORE).listKeys()).length).toBe(keysBefore);
      },
    );

    it('accepts daily, weekly and quarterly schedules', async () => {
      for (const [name, schedule] of [
        ['daily-key', '0 3 * * *'],
        ['weekly-key', '30 2 * * 1'],
        ['quarterly-key', 'quarterly'],
      ]) {
        const response = await call('POST', '/v1/keys', {
          name,
          keySpec: 'EC-256',
          subject: subject(name),
          rotation: { schedule },
        });
        expect([name, response.statusCode]).toEqual([name, 201]);
      }
    });
  });

  describe('7: secrets in query strings never reach the logs', () => {
    it('scrubs token-shaped values and secret-named parameters from request log lines, and still logs the request', async () => {
      const jwt =
        'eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJpc3MiOiJodHRwczovL2lkcCIsInN1YiI6ImNpIn0.c2lnbmF0dXJlLWJ5dGVz';
      const secrets = {
        access_token: admin,
        id_token: jwt,
        token: 'plain-token-value-1',
        code: 'oauth-code-value-2',
        password: 'hunter2-password-3',
        secret: 'shared-secret-value-4',
      };
      const refused = await t.app.inject({ method: 'GET', url: `/v1/cas?access_token=${admin}` });
      expect(refused.statusCode).toBe(401);
      const queryString = Object.entries(secrets)
        .map(([name, value]) => `${name}=${encodeURIComponent(value)}`)
        .join('&');
      await call('GET', `/v1/certificates?key=daily-key&${queryString}&marker=visible-parameter`);
      await call('GET', `/v1/certificates?ACCESS%5FTOKEN=${admin}&other=${encodeURIComponent(jwt)}&marker=visible-2`);
      await call('GET', `/v1/keys/${admin}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
      const logs = t.logs.join('');
      // The requests were logged, with what is not secret.
      expect(logs).toContain('marker=visible-parameter');
      expect(logs).toContain('marker=visible-2');
      const leaked = Object.entries(secrets).filter(
        ([, value]) => logs.includes(value) || logs.includes(encodeURIComponent(value)),
      );
      expect(leaked.map(([name]) => name)).toEqual([]);
      expect(logs).not.toContain(admin.slice(4));
      expect(logs).not.toContain('eyJpc3Mi');
    });
  });

  describe('8: an idempotent replay never returns the answer of a version that may no longer sign', () => {
    it('answers 409 VERSION_CANNOT_SIGN to a replay after the version was revoked and replaced, without the old signature', async () => {
      expect(
        (await call('POST', '/v1/keys', { name: 'replayed', keySpec: 'EC-256', subject: subject('replayed') }))
          .statusCode,
      ).toBe(201);
      const body = digestBody('replay-after-revocation', 'build-77/sign');
      const first = await call('POST', '/v1/keys/replayed/sign', body);
      expect(first.statusCode).toBe(200);
      expect(first.json().keyVersion).toBe(1);
      const again = await call('POST', '/v1/keys/replayed/sign', body);
      expect(again.body).toBe(first.body); // an ordinary replay: the same answer

      const serial = (await call('GET', '/v1/keys/replayed')).json().versions[0].serial;
      expect((await call('POST', `/v1/certificates/${serial}/revoke`, { reason: 'keyCompromise' })).statusCode).toBe(
        200,
      );
      // The revocation starts an emergency rotation; wait for its new active version.
      let active: number | null = null;
      for (let i = 0; i < 300 && active !== 2; i++) {
        active = (await call('GET', '/v1/keys/replayed')).json().activeVersion;
        if (active !== 2) await new Promise((resolve) => setTimeout(resolve, 200));
      }
      expect(active).toBe(2);

      const replay = await call('POST', '/v1/keys/replayed/sign', body);
      expect(replay.statusCode).toBe(409);
      expect(replay.json().error).toMatchObject({
        code: 'VERSION_CANNOT_SIGN',
        details: { version: 1, activeVersion: 2 },
      });
      expect(replay.body).not.toContain(first.json().signature);
      // A new idempotencyKey signs with the new version.
      const fresh = await call(
        'POST',
        '/v1/keys/replayed/sign',
        digestBody('replay-after-revocation', 'build-77/sign-2'),
      );
      expect(fresh.statusCode).toBe(200);
      expect(fresh.json().keyVersion).toBe(2);
    });

    it('answers 409 to a replay after a rotation retired the version that signed', async () => {
      expect(
        (await call('POST', '/v1/keys', { name: 'rotated', keySpec: 'EC-256', subject: subject('rotated') }))
          .statusCode,
      ).toBe(201);
      const body = digestBody('replay-after-rotation', 'deploy-5');
      expect((await call('POST', '/v1/keys/rotated/sign', body)).statusCode).toBe(200);
      expect((await call('POST', '/v1/keys/rotated/rotate', {})).statusCode).toBe(202);
      let active: number | null = null;
      for (let i = 0; i < 300 && active !== 2; i++) {
        active = (await call('GET', '/v1/keys/rotated')).json().activeVersion;
        if (active !== 2) await new Promise((resolve) => setTimeout(resolve, 200));
      }
      expect(active).toBe(2);
      const replay = await call('POST', '/v1/keys/rotated/sign', body);
      expect([replay.statusCode, replay.json().error?.code]).toEqual([409, 'VERSION_CANNOT_SIGN']);
    });
  });

  describe('9: only JSON on JSON routes; no bidi or format characters in subjects', () => {
    it('refuses form, text and other non-JSON bodies on JSON routes with 415 UNSUPPORTED_MEDIA_TYPE, before anything is created', async () => {
      const cases: Array<[string, string, string]> = [
        ['POST', '/v1/tokens', 'application/x-www-form-urlencoded'],
        ['POST', '/v1/tokens', 'text/plain'],
        ['POST', '/v1/tokens', 'multipart/form-data; boundary=x'],
        ['POST', '/v1/tokens', 'application/ocsp-request'],
        ['POST', '/v1/tokens', 'application/timestamp-query'],
        ['POST', '/v1/tokens', 'application/json; charset=iso-8859-1'],
        ['POST', '/v1/keys/daily-key/sign', 'application/x-www-form-urlencoded'],
      ];
      for (const [method, url, type] of cases) {
        const payload = type.startsWith('application/json')
          ? JSON.stringify({ name: 'form-token', role: 'admin' })
          : 'name=form-token&role=admin';
        const response = await call(method as 'POST', url, payload, { 'content-type': type });
        expect([url, type, response.statusCode, response.json().error?.code]).toEqual([
          url,
          type,
          415,
          'UNSUPPORTED_MEDIA_TYPE',
        ]);
      }
      // A body without any content type is refused too.
      const untyped = await t.app.inject({
        method: 'POST',
        url: '/v1/tokens',
        headers: { authorization: `Bearer ${admin}` },
        payload: Buffer.from('name=form-token&role=admin'),
      });
      expect(untyped.statusCode).toBe(415);
      expect((await call('GET', '/v1/tokens')).json().tokens.map((x: { name: string }) => x.name)).not.toContain(
        'form-token',
      );
    });

    it('accepts application/json with or without charset=utf-8', async () => {
      for (const [name, type] of [
        ['json-plain', 'application/json'],
        ['json-utf8', 'application/json; charset=utf-8'],
        ['json-upper', 'Application/JSON; Charset="UTF-8"'],
      ]) {
        const response = await call('POST', '/v1/tokens', JSON.stringify({ name, role: 'auditor' }), {
          'content-type': type,
        });
        expect([type, response.statusCode]).toEqual([type, 201]);
      }
      const signed = await call('POST', '/v1/keys/daily-key/sign', JSON.stringify(digestBody('utf8')), {
        'content-type': 'application/json; charset=utf-8',
      });
      expect(signed.statusCode).toBe(200);
    });

    it('keeps /ocsp and /tsa answering other bodies in their own protocols', async () => {
      const ocsp = await t.app.inject({
        method: 'POST',
        url: '/ocsp/signet-dev-issuing-g1',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        payload: 'a=b',
      });
      expect(ocsp.statusCode).toBe(200);
      expect(ocsp.headers['content-type']).toBe('application/ocsp-response');
      const tsa = await t.app.inject({
        method: 'POST',
        url: '/tsa',
        headers: { 'content-type': 'text/plain' },
        payload: 'hello',
      });
      expect(tsa.headers['content-type']).toBe('application/timestamp-reply');
    });

    it.each([
      ['U+202E RIGHT-TO-LEFT OVERRIDE', 'CN', 'release\u202Egpj.exe'],
      ['U+2066 LEFT-TO-RIGHT ISOLATE', 'O', 'Example\u2066 Corp'],
      ['U+200B ZERO WIDTH SPACE', 'OU', 'Re\u200Blease'],
      ['U+00AD SOFT HYPHEN', 'ST', 'Wash\u00ADington'],
      ['U+0085 NEXT LINE (C1)', 'CN', 'a\u0085b'],
    ])('refuses %s in a key subject (400 INVALID_SUBJECT) and in a CA subject', async (_label, field, value) => {
      const key = await call('POST', '/v1/keys', {
        name: 'bidi-key',
        keySpec: 'EC-256',
        subject: { ...subject('bidi-key'), [field]: value },
      });
      expect([key.statusCode, key.json().error.code, key.json().error.details?.field]).toEqual([
        400,
        'INVALID_SUBJECT',
        field,
      ]);
      const ca = await call('POST', '/v1/cas', {
        name: 'bidi-root',
        kind: 'root',
        keySpec: 'EC-256',
        subject: { ...subject('Bidi Root'), [field]: value },
        validityDays: 365,
      });
      expect([ca.statusCode, ca.json().error.code]).toEqual([400, 'INVALID_SUBJECT']);
    });

    it('refuses bidi characters in key, CA and token names (names are ASCII-only)', async () => {
      expect(
        (await call('POST', '/v1/keys', { name: 'release\u202Ekey', keySpec: 'EC-256', subject: subject('x') }))
          .statusCode,
      ).toBe(400);
      expect(
        (
          await call('POST', '/v1/cas', {
            name: 'root\u202E',
            kind: 'root',
            keySpec: 'EC-256',
            subject: subject('Root'),
            validityDays: 365,
          })
        ).statusCode,
      ).toBe(400);
      expect((await call('POST', '/v1/tokens', { name: 'ci\u202Eadmin', role: 'auditor' })).statusCode).toBe(400);
    });
  });
  // Last: on code without the guard, these lock the bootstrap admin out, and every later call would answer 401.
  describe('6: no change leaves the service without a usable admin token', () => {
    const bootstrapAdminId = async () =>
      (await call('GET', '/v1/tokens')).json().tokens.find((x: { name: string }) => x.name === 'bootstrap-admin')
        .id as string;

    it('refuses an expiry in the past or minutes away on the last admin token (409), and a role change (400); the admin keeps working', async () => {
      const id = await bootstrapAdminId();
      for (const expiresAt of [
        new Date(Date.now() - 60_000).toISOString(),
        new Date(Date.now() + 5 * 60_000).toISOString(),
      ]) {
        const refused = await call('PATCH', `/v1/tokens/${id}`, { expiresAt });
        expect([expiresAt, refused.statusCode, refused.json().error?.code]).toEqual([expiresAt, 409, 'CONFLICT']);
        expect(refused.json().error.details).toMatchObject({ reason: 'last-admin-token' });
      }
      const role = await call('PATCH', `/v1/tokens/${id}`, { role: 'auditor' });
      expect(role.statusCode).toBe(400);
      expect((await call('DELETE', `/v1/tokens/${id}`)).statusCode).toBe(409);
      const [row] = await query<{ expires_at: Date | null; role: string; revoked_at: Date | null }>(
        t.database.url,
        'SELECT expires_at, role, revoked_at FROM api_tokens WHERE id = $1',
        [id],
      );
      expect(row).toEqual({ expires_at: null, role: 'admin', revoked_at: null });
      expect((await call('GET', '/v1/tokens')).statusCode).toBe(200);
      // Shortening that still leaves a usable admin is fine, and so is lengthening.
      expect((await call('PATCH', `/v1/tokens/${id}`, { expiresInDays: 30 })).statusCode).toBe(200);
      expect((await call('PATCH', `/v1/tokens/${id}`, { expiresAt: null })).statusCode).toBe(200);
    });

    it('lets an admin token expire or be revoked while another admin token stays usable', async () => {
      const second = (await call('POST', '/v1/tokens', { name: 'second-admin', role: 'admin' })).json();
      expect(
        (await call('PATCH', `/v1/tokens/${second.id}`, { expiresAt: new Date(Date.now() - 1000).toISOString() }))
          .statusCode,
      ).toBe(200);
      expect((await call('GET', '/v1/tokens', undefined, {}, second.token)).statusCode).toBe(401);
      // The second admin is expired now: the bootstrap admin is the last usable one again.
      expect((await call('PATCH', `/v1/tokens/${await bootstrapAdminId()}`, { expiresInDays: 1 })).statusCode).toBe(
        200,
      );
      expect(
        (
          await call('PATCH', `/v1/tokens/${await bootstrapAdminId()}`, {
            expiresAt: new Date(Date.now() + 30 * 60_000).toISOString(),
          })
        ).statusCode,
      ).toBe(409);
    });
  });
});
