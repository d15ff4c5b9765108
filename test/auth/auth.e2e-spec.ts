import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ModulesContainer } from '@nestjs/core';
import { AuditCheckpointSigners } from '../../src/audit/audit-checkpoint-signer';
import { PUBLIC_METADATA, ROLES_METADATA } from '../../src/common/access.decorators';
import { ADMIN_TOKEN_FILE } from '../../src/auth/admin-token.bootstrap';
import { createNodeSigner } from '../support/node-signer';
import { query } from '../support/database';
import { startTestApp, TestApp } from '../support/test-app';

/** The route table of API.md on the whole application, through its HTTP interface. */
describe('authentication and authorisation (HTTP)', () => {
  let t: TestApp;
  let admin: string;

  const call = (
    method: 'GET' | 'POST' | 'PATCH' | 'DELETE',
    url: string,
    token?: string,
    payload?: unknown,
    headers: Record<string, string> = {},
  ) =>
    t.app.inject({
      method,
      url,
      payload: payload as object,
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers },
    });

  async function createToken(body: Record<string, unknown>): Promise<{ id: string; token: string }> {
    const response = await call('POST', '/v1/tokens', admin, body);
    expect(response.statusCode).toBe(201);
    return response.json();
  }

  beforeAll(async () => {
    t = await startTestApp({ SIGNET_AUDIT_CHECKPOINT_INTERVAL_SECONDS: '0' });
    admin = fs.readFileSync(path.join(t.config.dataDir, ADMIN_TOKEN_FILE), 'utf8').trim();
  });
  afterAll(async () => {
    await t.close();
  });

  it('writes the first-start admin token to a 0600 file in the data dir and logs only its path', async () => {
    const file = path.join(t.config.dataDir, ADMIN_TOKEN_FILE);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(admin).toMatch(/^sgt_[A-Za-z0-9_-]{43}$/);
    expect((await call('GET', '/v1/tokens', admin)).statusCode).toBe(200);
    const logs = t.logs.join('');
    expect(logs).toContain(file);
    expect(logs).not.toContain(admin);
  });

  it('finds an access rule (@Roles or @Public) on every route of every controller', () => {
    const undeclared: string[] = [];
    let routes = 0;
    for (const module of t.app.get(ModulesContainer).values()) {
      for (const { metatype } of module.controllers.values()) {
        const controller = metatype as new () => object;
        for (const name of Object.getOwnPropertyNames(controller.prototype)) {
          const handler = (controller.prototype as Record<string, unknown>)[name];
          if (
            name === 'constructor' ||
            typeof handler !== 'function' ||
            Reflect.getMetadata('method', handler) === undefined
          )
            continue;
          routes++;
          const declared = [handler, controller].some(
            (target) => Reflect.getMetadata(ROLES_METADATA, target) || Reflect.getMetadata(PUBLIC_METADATA, target),
          );
          if (!declared) undeclared.push(`${controller.name}.${name}`);
        }
      }
    }
    expect(routes).toBeGreaterThan(10);
    expect(undeclared).toEqual([]);
  });

  it('answers 401 without a token, with a malformed header, an unknown token, an expired or a revoked one', async () => {
    const none = await call('GET', '/v1/tokens');
    expect(none.statusCode).toBe(401);
    expect(none.json().error.code).toBe('UNAUTHENTICATED');
    expect(none.headers['www-authenticate']).toMatch(/^Bearer/);
    expect(
      (await call('GET', '/v1/tokens', undefined, undefined, { authorization: 'Basic YWRtaW46YWRtaW4=' })).statusCode,
    ).toBe(401);
    expect((await call('GET', '/v1/tokens', 'sgt_' + 'A'.repeat(43))).statusCode).toBe(401);
    expect((await call('GET', '/v1/tokens', 'not-a-signet-token')).statusCode).toBe(401);

    const expiring = await createToken({ name: 'expiring', role: 'auditor', expiresInDays: 1 });
    expect((await call('GET', '/v1/audit', expiring.token)).statusCode).toBe(200);
    expect(
      (await call('PATCH', `/v1/tokens/${expiring.id}`, admin, { expiresAt: '2001-01-01T00:00:00Z' })).statusCode,
    ).toBe(200);
    const expired = await call('GET', '/v1/audit', expiring.token);
    expect(expired.statusCode).toBe(401);
    expect(expired.json().error.message).toMatch(/expired/);

    const revoking = await createToken({ name: 'revoking', role: 'auditor' });
    expect((await call('GET', '/v1/audit', revoking.token)).statusCode).toBe(200);
    const revoked = await call('DELETE', `/v1/tokens/${revoking.id}`, admin);
    expect(revoked.statusCode).toBe(200);
    expect(revoked.json()).toMatchObject({ state: 'revoked', revokedAt: expect.any(String) });
    // Effective at once on the replica that revoked it, despite the token cache.
    expect((await call('GET', '/v1/audit', revoking.token)).statusCode).toBe(401);
  });

  it('answers 403 for a role the route does not list', async () => {
    const auditor = await createToken({ name: 'auditor-403', role: 'auditor' });
    const signer = await createToken({ name: 'signer-403', role: 'signer', keys: ['release'] });
    const officer = await createToken({ name: 'officer-403', role: 'security-officer' });
    expect((await call('POST', '/v1/tokens', auditor.token, { name: 'x', role: 'admin' })).statusCode).toBe(403);
    expect((await call('GET', '/v1/tokens', officer.token)).statusCode).toBe(403);
    const forbidden = await call('GET', '/v1/audit', signer.token);
    expect(forbidden.statusCode).toBe(403);
    expect(forbidden.json().error.code).toBe('FORBIDDEN');
    expect((await call('POST', '/v1/audit/checkpoints', auditor.token)).statusCode).toBe(403);
    expect((await call('GET', '/v1/audit/verify', officer.token)).statusCode).toBe(200);
  });

  it('serves /healthz and /readyz to anyone and /metrics only to admin, security-officer and auditor', async () => {
    expect((await call('GET', '/healthz')).statusCode).toBe(200);
    expect((await call('GET', '/readyz')).statusCode).toBe(200);
    expect((await call('GET', '/metrics')).statusCode).toBe(401);
    const auditor = await createToken({ name: 'metrics-auditor', role: 'auditor' });
    const signer = await createToken({ name: 'metrics-signer', role: 'signer' });
    expect((await call('GET', '/metrics', auditor.token)).statusCode).toBe(200);
    expect((await call('GET', '/metrics', signer.token)).statusCode).toBe(403);
  });

  it('answers 404 to a signer for a key it was not granted, like for a key that does not exist', async () => {
    const signer = await createToken({ name: 'signer-404', role: 'signer', keys: ['granted'] });
    const ungranted = await call('GET', '/v1/keys/not-granted', signer.token);
    const missingForAdmin = await call('GET', '/v1/keys/not-granted', admin);
    expect(ungranted.statusCode).toBe(404);
    expect(ungranted.json().error.code).toBe('NOT_FOUND');
    expect(missingForAdmin.statusCode).toBe(404);
    // Word for word the same answer: a signer cannot tell an ungranted key from a missing one.
    expect(ungranted.json()).toEqual(missingForAdmin.json());
  });

  it('shows a token once, stores only its SHA-256, and never returns or audits it', async () => {
    const response = await call('POST', '/v1/tokens', admin, {
      name: 'ci-release',
      role: 'signer',
      keys: ['release', 'staging', 'release'],
      expiresInDays: 30,
    });
    expect(response.statusCode).toBe(201);
    const created = response.json();
    expect(created).toMatchObject({
      id: expect.any(String),
      name: 'ci-release',
      role: 'signer',
      keys: ['release', 'staging'],
      state: 'active',
      token: expect.stringMatching(/^sgt_/),
    });

    const listed = await call('GET', '/v1/tokens', admin);
    expect(listed.body).not.toContain(created.token);
    expect(listed.json().tokens.find((x: { id: string }) => x.id === created.id)).not.toHaveProperty('token');
    expect((await call('GET', `/v1/tokens/${created.id}`, admin)).json()).not.toHaveProperty('token');

    const [row] = await query<{ token_hash: Buffer }>(
      t.database.url,
      'SELECT token_hash FROM api_tokens WHERE id = $1',
      [created.id],
    );
    expect(row.token_hash.equals(createHash('sha256').update(created.token).digest())).toBe(true);
    const dump = await query<{ dump: string }>(
      t.database.url,
      `SELECT string_agg(t::text, ' ') AS dump FROM (SELECT * FROM api_tokens) t`,
    );
    expect(dump[0].dump).not.toContain(created.token);
    const audit = await query<{ dump: string }>(
      t.database.url,
      `SELECT string_agg(e::text, ' ') AS dump FROM audit_events e`,
    );
    expect(audit[0].dump).not.toContain(created.token);
    expect(t.logs.join('')).not.toContain(created.token);

    const duplicate = await call('POST', '/v1/tokens', admin, { name: 'ci-release', role: 'auditor' });
    expect(duplicate.statusCode).toBe(409);
    const grantsForAuditor = await call('POST', '/v1/tokens', admin, {
      name: 'bad-grants',
      role: 'auditor',
      keys: ['release'],
    });
    expect(grantsForAuditor.statusCode).toBe(400);
    const unknownField = await call('POST', '/v1/tokens', admin, { name: 'x1', role: 'auditor', isAdmin: true });
    expect(unknownField.statusCode).toBe(400);
  });

  it('edits grants and expiry, and audits every token change with the acting token', async () => {
    const signer = await createToken({ name: 'grants', role: 'signer', keys: ['a'] });
    const patched = await call('PATCH', `/v1/tokens/${signer.id}`, admin, { keys: ['b', 'a'], expiresInDays: 7 });
    expect(patched.statusCode).toBe(200);
    expect(patched.json()).toMatchObject({ keys: ['a', 'b'], expiresAt: expect.any(String) });
    const cleared = await call('PATCH', `/v1/tokens/${signer.id}`, admin, { expiresAt: null });
    expect(cleared.json()).toMatchObject({ keys: ['a', 'b'], expiresAt: null });
    expect((await call('PATCH', `/v1/tokens/${signer.id}`, admin, {})).statusCode).toBe(400);
    expect(
      (await call('PATCH', '/v1/tokens/00000000-0000-0000-0000-000000000000', admin, { keys: [] })).statusCode,
    ).toBe(404);
    expect((await call('DELETE', '/v1/tokens/not-a-uuid', admin)).statusCode).toBe(404);
    await call('DELETE', `/v1/tokens/${signer.id}`, admin);
    expect((await call('PATCH', `/v1/tokens/${signer.id}`, admin, { keys: ['c'] })).statusCode).toBe(409);

    const events = (await call('GET', '/v1/audit?limit=1000', admin))
      .json()
      .events.filter((e: { subject: string }) => e.subject === signer.id);
    expect(events.map((e: { type: string }) => e.type)).toEqual([
      'token.created',
      'token.updated',
      'token.updated',
      'token.revoked',
    ]);
    const adminId = (await call('GET', '/v1/tokens', admin))
      .json()
      .tokens.find((x: { name: string }) => x.name === 'bootstrap-admin').id;
    expect(events[1]).toMatchObject({
      actor: { tokenId: adminId, tokenName: 'bootstrap-admin', role: 'admin', address: expect.any(String) },
      data: { changes: { keys: ['a', 'b'] } },
    });
  });

  it('refuses to revoke the last usable admin token', async () => {
    const adminId = (await call('GET', '/v1/tokens', admin))
      .json()
      .tokens.find((x: { name: string }) => x.name === 'bootstrap-admin').id;
    const refused = await call('DELETE', `/v1/tokens/${adminId}`, admin);
    expect(refused.statusCode).toBe(409);
    const second = await createToken({ name: 'second-admin', role: 'admin' });
    expect((await call('DELETE', `/v1/tokens/${second.id}`, admin)).statusCode).toBe(200);
  });

  it('limits requests per token with 429 and Retry-After, without affecting other tokens', async () => {
    const limited = await createToken({ name: 'limited', role: 'auditor', rateLimitPerSecond: 1 });
    const statuses: number[] = [];
    let rejected;
    for (let i = 0; i < 5; i++) {
      const response = await call('GET', '/v1/audit/checkpoints', limited.token);
      statuses.push(response.statusCode);
      if (response.statusCode === 429) rejected = response;
    }
    expect(statuses).toContain(429);
    expect(rejected!.headers['retry-after']).toMatch(/^[1-9]\d*$/);
    expect(rejected!.json().error.code).toBe('RATE_LIMITED');
    expect((await call('GET', '/v1/audit/checkpoints', admin)).statusCode).toBe(200);
  });

  it('exports the audit log as JSON and NDJSON, verifies it and serves signed checkpoints', async () => {
    const signer = createNodeSigner('EC-256');
    t.app.get(AuditCheckpointSigners).bind(async () => signer);
    try {
      const officer = await createToken({ name: 'officer', role: 'security-officer' });
      const checkpoint = await call('POST', '/v1/audit/checkpoints', officer.token);
      expect(checkpoint.statusCode).toBe(201);
      expect(checkpoint.json()).toMatchObject({
        seq: expect.stringMatching(/^\d+$/),
        hash: expect.stringMatching(/^[0-9a-f]{64}$/),
        signature: expect.any(String),
        keySpec: 'EC-256',
      });
      const listed = await call('GET', '/v1/audit/checkpoints', admin);
      expect(listed.json().checkpoints).toContainEqual(checkpoint.json());
      // Newest first on request (the console shows the newest 20 however many there are); oldest first by default.
      await createToken({ name: 'between-checkpoints', role: 'auditor' });
      const newer = await call('POST', '/v1/audit/checkpoints', officer.token);
      expect(newer.statusCode).toBe(201);
      const newestFirst = (await call('GET', '/v1/audit/checkpoints?order=desc&limit=1', admin)).json().checkpoints;
      expect(newestFirst).toEqual([newer.json()]);
      const oldestFirst = (await call('GET', '/v1/audit/checkpoints?limit=1000', admin)).json().checkpoints;
      expect(oldestFirst[oldestFirst.length - 1]).toEqual(newer.json());
      expect(oldestFirst[0]).not.toEqual(newer.json());
      expect((await call('GET', '/v1/audit/checkpoints?order=sideways', admin)).statusCode).toBe(400);

      const page = await call('GET', '/v1/audit?limit=2', admin);
      expect(page.statusCode).toBe(200);
      expect(page.json()).toMatchObject({ events: [{ seq: '1' }, { seq: '2' }], next: '2' });
      expect((await call('GET', '/v1/audit?limit=5000', admin)).statusCode).toBe(400);
      expect((await call('GET', '/v1/audit?after=abc', admin)).statusCode).toBe(400);

      const ndjson = await call('GET', '/v1/audit?after=1', admin, undefined, { accept: 'application/x-ndjson' });
      expect(ndjson.statusCode).toBe(200);
      expect(ndjson.headers['content-type']).toMatch(/^application\/x-ndjson/);
      const lines = ndjson.body
        .trimEnd()
        .split('\n')
        .map((line) => JSON.parse(line));
      expect(lines[0].seq).toBe('2');
      lines.slice(1).forEach((event, i) => expect(event.prevHash).toBe(lines[i].hash));

      const verify = await call('GET', '/v1/audit/verify', admin);
      expect(verify.json()).toMatchObject({ ok: true, mode: 'incremental', lastCheckpoint: { seq: newer.json().seq } });
      expect((await call('GET', '/v1/audit/verify?full=true', admin)).json()).toMatchObject({
        ok: true,
        mode: 'full',
        from: '0',
      });
      const ready = (await call('GET', '/readyz')).json();
      expect(ready.checks.auditCheckpoints).toMatchObject({ ok: true, signer: 'bound' });
    } finally {
      t.app.get(AuditCheckpointSigners).bind(undefined);
    }
    expect((await call('POST', '/v1/audit/checkpoints', admin)).statusCode).toBe(503);
    expect((await call('GET', '/readyz')).json().checks.auditCheckpoints).toMatchObject({
      ok: true,
      signer: 'unavailable',
    });
  });
});
