import { NestFastifyApplication } from '@nestjs/platform-fastify';
import { Writable } from 'node:stream';
import { createApp } from '../../src/app.factory';
import { loadConfig } from '../../src/config/config';
import { createLogger } from '../../src/observability/logger';
import { createTestDatabase, TestDatabase } from '../support/database';
import { createTestToken } from '../support/softhsm';

describe('HTTP conventions (in-process app on a real PostgreSQL)', () => {
  let database: TestDatabase;
  let app: NestFastifyApplication;
  const logs: string[] = [];

  beforeAll(async () => {
    database = await createTestDatabase();
    const config = loadConfig({
      DATABASE_URL: database.url,
      SIGNET_BODY_LIMIT_BYTES: '4096',
      SIGNET_LOG_LEVEL: 'debug',
      SIGNET_METRICS_PUBLIC: 'true',
    });
    const sink = new Writable({ write: (chunk, _e, done) => (logs.push(chunk.toString()), done()) });
    const token = await createTestToken('http');
    app = await createApp(
      {
        config,
        databaseUrl: database.url,
        hsm: { modulePath: token.modulePath, tokenLabel: token.tokenLabel, pin: token.pin, poolSize: 2 },
      },
      createLogger('debug', sink),
    );
  });
  afterAll(async () => {
    await app.close();
    await database.drop();
  });

  it('answers an unknown route with 404 in the error shape', async () => {
    const response = await app.inject({ method: 'GET', url: '/v1/does-not-exist' });
    expect(response.statusCode).toBe(404);
    expect(response.json()).toEqual({ error: { code: 'ROUTE_NOT_FOUND', message: expect.any(String) } });
  });

  it('answers a body over the configured limit with 413 in the error shape', async () => {
    const response = await app.inject({
      method: 'POST',
      url: '/healthz',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ x: 'a'.repeat(10_000) }),
    });
    expect(response.statusCode).toBe(413);
    expect(response.json().error.code).toBe('PAYLOAD_TOO_LARGE');
  });

  it('answers malformed JSON with 400 in the error shape', async () => {
    const response = await app.inject({
      method: 'POST',
      url: '/healthz',
      headers: { 'content-type': 'application/json' },
      payload: '{nope',
    });
    expect(response.statusCode).toBe(400);
    expect(response.json().error).toEqual({ code: 'VALIDATION_ERROR', message: expect.any(String) });
  });

  it('logs each request with its request id when request logging is on (SIGNET_LOG_REQUESTS default)', async () => {
    const response = await app.inject({ method: 'GET', url: '/healthz?request-log-probe' });
    expect(response.statusCode).toBe(200);
    const lines = logs
      .filter((line) => line.includes('request-log-probe'))
      .map((line) => JSON.parse(line) as { reqId?: string; msg?: string });
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) expect(line.reqId).toEqual(expect.any(String));
  });

  it('reports readiness with the database check', async () => {
    const response = await app.inject({ method: 'GET', url: '/readyz' });
    expect(response.statusCode).toBe(200);
    expect(response.json().checks.database).toEqual({ ok: true });
    expect(response.json().checks.hsm).toMatchObject({ ok: true, state: 'ready' });
    expect((await app.inject({ method: 'GET', url: '/healthz' })).json()).toEqual({ status: 'ok' });
  });

  it('serves Prometheus metrics (anonymously when SIGNET_METRICS_PUBLIC) with request counts and latency histograms', async () => {
    await app.inject({ method: 'GET', url: '/healthz' });
    const response = await app.inject({ method: 'GET', url: '/metrics' });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toContain('text/plain');
    expect(response.body).toMatch(/signet_http_requests_total\{method="GET",route="\/healthz",status="200"/);
    expect(response.body).toContain('signet_http_request_duration_seconds_bucket');
  });

  it('serves the OpenAPI document and its UI', async () => {
    const doc = await app.inject({ method: 'GET', url: '/openapi.json' });
    expect(doc.statusCode).toBe(200);
    expect(doc.json().paths['/readyz']).toBeDefined();
    const ui = await app.inject({ method: 'GET', url: '/docs' });
    expect(ui.statusCode).toBe(200);
    expect(ui.body).toContain('swagger');
  });

  it('never logs the Authorization header of a request', async () => {
    await app.inject({ method: 'GET', url: '/healthz', headers: { authorization: 'Bearer sgt_supersecret' } });
    expect(logs.join('')).not.toContain('sgt_supersecret');
  });

  it('sends security headers on every response, errors included', async () => {
    for (const url of ['/healthz', '/v1/does-not-exist', '/v1/keys']) {
      const response = await app.inject({ method: 'GET', url });
      expect(response.headers['x-content-type-options']).toBe('nosniff');
      expect(response.headers['x-frame-options']).toBe('DENY');
      expect(response.headers['content-security-policy']).toContain("default-src 'none'");
      expect(response.headers['referrer-policy']).toBe('no-referrer');
    }
  });
});
