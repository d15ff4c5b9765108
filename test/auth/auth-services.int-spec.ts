import { createHash } from 'node:crypto';
import { ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { DataSource } from 'typeorm';
import { AuditService } from '../../src/audit/audit.service';
import { Public, Roles } from '../../src/common/access.decorators';
import { AuthGuard } from '../../src/auth/auth.guard';
import { TokenPrincipal } from '../../src/auth/principal';
import { RateLimiter } from '../../src/auth/rate-limiter';
import { ConnectionTokenMemo, TokenService } from '../../src/auth/token.service';
import { TokensRepository } from '../../src/auth/tokens.repository';
import { DomainError, ErrorCode } from '../../src/common/errors';
import { loadConfig } from '../../src/config/config';
import { dataSourceOptions } from '../../src/database/data-source-options';
import { createTestDatabase, query, TestDatabase } from '../support/database';

describe(TokenService.name, () => {
  let database: TestDatabase;
  let dataSource: DataSource;
  let audit: AuditService;

  const service = (env: Record<string, string> = {}, auditService: AuditService = audit) =>
    new TokenService(
      dataSource,
      new TokensRepository(dataSource),
      auditService,
      loadConfig({ DATABASE_URL: database.url, ...env }),
    );

  beforeAll(async () => {
    database = await createTestDatabase();
    dataSource = new DataSource(dataSourceOptions(database.url, 4));
    await dataSource.initialize();
    audit = new AuditService(dataSource);
  });
  afterAll(async () => {
    await audit.close();
    await dataSource.destroy();
    await database.drop();
  });

  it('reaches another replica within the token cache time, and at once where it was revoked', async () => {
    const a = service({ SIGNET_TOKEN_CACHE_SECONDS: '1' });
    const b = service({ SIGNET_TOKEN_CACHE_SECONDS: '1' });
    const created = await a.create({ name: 'replicated', role: 'auditor' }, undefined);
    expect((await b.authenticate(created.token, '10.0.0.1')).tokenId).toBe(created.id);
    await a.create({ name: 'keeps-an-admin', role: 'admin' }, undefined);
    await a.revoke(created.id, undefined);
    await expect(Promise.resolve().then(() => a.authenticate(created.token, '10.0.0.2'))).rejects.toMatchObject({
      code: ErrorCode.UNAUTHENTICATED,
    });
    // Replica b answers from its cache until the entry is older than SIGNET_TOKEN_CACHE_SECONDS.
    expect((b.authenticate(created.token, '10.0.0.1') as TokenPrincipal).tokenId).toBe(created.id);
    await new Promise((resolve) => setTimeout(resolve, 1100));
    await expect(Promise.resolve().then(() => b.authenticate(created.token, '10.0.0.1'))).rejects.toMatchObject({
      code: ErrorCode.UNAUTHENTICATED,
      message: 'the token was revoked',
    });
  });

  it('does not create, change or revoke a token whose audit record cannot be written', async () => {
    const failingAudit = {
      record: () => Promise.reject(new DomainError(ErrorCode.DATABASE_UNAVAILABLE, 'down')),
    } as unknown as AuditService;
    const tokens = service({}, failingAudit);
    await expect(tokens.create({ name: 'unaudited', role: 'auditor' }, undefined)).rejects.toMatchObject({
      code: ErrorCode.DATABASE_UNAVAILABLE,
    });
    expect(await query(database.url, `SELECT 1 FROM api_tokens WHERE name = 'unaudited'`)).toEqual([]);

    const created = await service().create({ name: 'audited', role: 'signer', keys: ['a'] }, undefined);
    await expect(tokens.update(created.id, { keys: ['b'] }, undefined)).rejects.toMatchObject({
      code: ErrorCode.DATABASE_UNAVAILABLE,
    });
    await expect(tokens.revoke(created.id, undefined)).rejects.toMatchObject({ code: ErrorCode.DATABASE_UNAVAILABLE });
    expect((await service().get(created.id)).keys).toEqual(['a']);
    expect((await service().get(created.id)).state).toBe('active');
  });

  it('authenticates each request by its own token when one connection switches tokens (the per-connection hash memo)', async () => {
    const tokens = service({});
    const a = await tokens.create({ name: 'conn-a', role: 'signer', keys: ['x'] }, undefined);
    const b = await tokens.create({ name: 'conn-b', role: 'auditor' }, undefined);
    const connection: ConnectionTokenMemo = { token: '', hash: '' };
    for (const [token, expected] of [
      [a.token, a.id],
      [a.token, a.id],
      [b.token, b.id],
      [a.token, a.id],
    ] as const) {
      expect((await tokens.authenticate(token, '::1', connection)).tokenId).toBe(expected);
      expect(connection).toEqual({ token, hash: createHash('sha256').update(token).digest('hex') });
    }
    // A malformed or unknown token after a good one is refused, and does not replace the memo.
    expect(() => tokens.authenticate('sgt_short', '::1', connection)).toThrow(
      expect.objectContaining({ code: ErrorCode.UNAUTHENTICATED }),
    );
    expect(connection.token).toBe(a.token);
    await expect(
      Promise.resolve().then(() => tokens.authenticate(`sgt_${'A'.repeat(43)}`, '::1', connection)),
    ).rejects.toMatchObject({ code: ErrorCode.UNAUTHENTICATED });
    // Revocation still wins over the memo.
    await tokens.revoke(a.id, undefined);
    await expect(Promise.resolve().then(() => tokens.authenticate(a.token, '::1', connection))).rejects.toMatchObject({
      code: ErrorCode.UNAUTHENTICATED,
    });
  });

  it('keeps a usable admin token when two replicas at once revoke one admin and expire the other (one change wins, the other gets 409)', async () => {
    // Two replicas: each its own TokenService on its own connection pool, one database.
    const replicaPools = [
      new DataSource(dataSourceOptions(database.url, 2)),
      new DataSource(dataSourceOptions(database.url, 2)),
    ];
    await Promise.all(replicaPools.map((pool) => pool.initialize()));
    const replicaAudits = replicaPools.map((pool) => new AuditService(pool));
    const [a, b] = replicaPools.map(
      (pool, i) =>
        new TokenService(
          pool,
          new TokensRepository(pool),
          replicaAudits[i],
          loadConfig({ DATABASE_URL: database.url }),
        ),
    );
    const usableAdmins = async () =>
      (
        await query<{ n: number }>(
          database.url,
          `SELECT count(*)::int AS n FROM api_tokens WHERE role = 'admin' AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())`,
        )
      )[0].n;
    try {
      for (let round = 0; round < 6; round++) {
        // Only this round's two admin tokens are usable.
        await query(
          database.url,
          `UPDATE api_tokens SET revoked_at = now() WHERE role = 'admin' AND revoked_at IS NULL`,
        );
        const first = await a.create({ name: `race-admin-a${round}`, role: 'admin' }, undefined);
        const second = await a.create({ name: `race-admin-b${round}`, role: 'admin' }, undefined);
        const changes = [
          () => a.revoke(first.id, undefined),
          () => b.update(second.id, { expiresAt: new Date(Date.now() - 1000).toISOString() }, undefined),
        ];
        const outcomes = await Promise.allSettled(
          round % 2 === 0 ? changes.map((change) => change()) : changes.reverse().map((change) => change()),
        );
        expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
        expect(
          outcomes.filter((o) => o.status === 'rejected').map((o) => (o as PromiseRejectedResult).reason.code),
        ).toEqual([ErrorCode.CONFLICT]);
        expect(await usableAdmins()).toBe(1);
      }
    } finally {
      await Promise.all(replicaAudits.map((service) => service.close()));
      await Promise.all(replicaPools.map((pool) => pool.destroy()));
    }
  });

  it('records use coarsely, not on every request', async () => {
    const tokens = service({ SIGNET_TOKEN_CACHE_SECONDS: '0' });
    const created = await tokens.create({ name: 'used', role: 'auditor' }, undefined);
    await tokens.authenticate(created.token, '::1');
    await new Promise((resolve) => setTimeout(resolve, 100));
    const [first] = await query<{ last_used_at: Date }>(
      database.url,
      'SELECT last_used_at FROM api_tokens WHERE id = $1',
      [created.id],
    );
    expect(first.last_used_at).toBeInstanceOf(Date);
    for (let i = 0; i < 5; i++) await tokens.authenticate(created.token, '::1');
    await new Promise((resolve) => setTimeout(resolve, 100));
    const [second] = await query<{ last_used_at: Date }>(
      database.url,
      'SELECT last_used_at FROM api_tokens WHERE id = $1',
      [created.id],
    );
    expect(second.last_used_at.getTime()).toBe(first.last_used_at.getTime());
  });
});

describe(TokenPrincipal.name, () => {
  it('lets admins use every key, signers their granted keys, and other roles none, answering 404 otherwise', () => {
    const admin = new TokenPrincipal('1', 'admin', 'admin', [], '::1');
    const signer = new TokenPrincipal('2', 'ci', 'signer', ['release'], '::1');
    const auditor = new TokenPrincipal('3', 'audit', 'auditor', ['release'], '::1');
    expect(admin.canUseKey('anything')).toBe(true);
    expect(signer.canUseKey('release')).toBe(true);
    expect(signer.canUseKey('staging')).toBe(false);
    expect(auditor.canUseKey('release')).toBe(false);
    expect(() => signer.assertCanUseKey('staging')).toThrow(
      expect.objectContaining({ code: ErrorCode.NOT_FOUND, message: "no key named 'staging'" }),
    );
    expect(signer.auditActor).toEqual({ tokenId: '2', tokenName: 'ci', role: 'signer', address: '::1' });
  });
});

describe(RateLimiter.name, () => {
  it('allows the burst, then refuses with the seconds until the next request is allowed', () => {
    const limiter = new RateLimiter(loadConfig({ SIGNET_RATE_LIMIT_PER_SECOND: '1', SIGNET_RATE_LIMIT_BURST: '2' }));
    expect(limiter.take('t')).toBe(0);
    expect(limiter.take('t')).toBe(0);
    const wait = limiter.take('t');
    expect(wait).toBeGreaterThan(0.5);
    expect(wait).toBeLessThanOrEqual(1);
    expect(limiter.take('other')).toBe(0);
    expect(new RateLimiter(loadConfig({ SIGNET_RATE_LIMIT_PER_SECOND: '0' })).take('t')).toBe(0);
  });
});

describe(AuthGuard.name, () => {
  class Routes {
    undeclared(): void {}
    @Roles('auditor')
    auditorsOnly(): void {}
    @Public()
    open(): void {}
  }
  const config = loadConfig({});
  const tokens = {
    authenticate: () => new TokenPrincipal('1', 'admin', 'admin', [], '::1'),
    rateLimitFor: () => null,
  } as unknown as TokenService;
  const guard = new AuthGuard(new Reflector(), tokens, new RateLimiter(config), config);
  const context = (handler: keyof Routes, authorization?: string) =>
    ({
      getType: () => 'http',
      getHandler: () => Routes.prototype[handler],
      getClass: () => Routes,
      switchToHttp: () => ({
        getRequest: () => ({ headers: { authorization }, ip: '::1' }),
        getResponse: () => ({ header: () => undefined }),
      }),
    }) as unknown as ExecutionContext;

  it('refuses every caller, even an admin, on a route that declares no access rule (fail closed)', () => {
    expect(() => guard.canActivate(context('undeclared', 'Bearer sgt_x'))).toThrow(
      expect.objectContaining({ code: ErrorCode.FORBIDDEN }),
    );
    expect(() => guard.canActivate(context('auditorsOnly', 'Bearer sgt_x'))).toThrow(
      expect.objectContaining({ code: ErrorCode.FORBIDDEN }),
    );
    expect(guard.canActivate(context('open'))).toBe(true);
  });
});
