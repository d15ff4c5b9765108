import * as fs from 'node:fs';
import * as https from 'node:https';
import * as path from 'node:path';
import { DEV_ROOT_CA } from '../../src/ca/dev-hierarchy.bootstrap';
import { FAST_DISTRIBUTION_ENV } from '../distribution/distribution-helpers';
import { SignetProcess, startSignet } from '../rotation/rotation-process';
import { createTestDatabase, TestDatabase } from '../support/database';
import { TestRegistry } from '../support/registry';
import { ensureBuilt, tempDir } from '../support/server-process';
import { startTlsServer, TlsServer } from '../support/tls-server';

interface ServerEvent {
  event: string;
  data: Record<string, unknown>;
}

/** A text/event-stream read with fetch: waits for events matching a predicate. */
class EventStream {
  private readonly events: ServerEvent[] = [];
  private readonly waiters = new Set<() => void>();
  private readonly controller = new AbortController();
  status = 0;
  contentType = '';

  static async open(url: string, headers: Record<string, string>): Promise<EventStream> {
    const stream = new EventStream();
    const response = await fetch(url, { headers, signal: stream.controller.signal });
    stream.status = response.status;
    stream.contentType = response.headers.get('content-type') ?? '';
    if (response.body) void stream.read(response.body);
    return stream;
  }

  private async read(body: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true });
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const event = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (event && data) this.events.push({ event, data: JSON.parse(data) });
          for (const wake of this.waiters) wake();
        }
      }
    } catch {
      // aborted by close()
    }
  }

  /** The first event (already received or to come) that `match` accepts. */
  async next(match: (event: ServerEvent) => boolean, timeoutMs = 60_000): Promise<ServerEvent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.events.find(match);
      if (found) return found;
      if (Date.now() > deadline)
        throw new Error(
          `no matching event within ${timeoutMs} ms; got ${JSON.stringify(this.events.map((e) => e.event))}`,
        );
      await new Promise<void>((resolve) => {
        const wake = () => (this.waiters.delete(wake), resolve());
        this.waiters.add(wake);
        setTimeout(wake, 500);
      });
    }
  }

  close(): void {
    this.controller.abort();
  }
}

/**
 * Console sessions and the distribution event stream across two real Signet processes on one
 * database, with a real docker-registry target: a token revoked through one replica ends its
 * session on the other at once; a stream opened on one replica reports the target changes the
 * other replica's reconciler makes. And the cookie is Secure under TLS.
 */
describe('console sessions and events across replicas (two real processes, one database)', () => {
  let database: TestDatabase;
  let registry: TestRegistry;
  let a: SignetProcess | undefined;
  let b: SignetProcess | undefined;

  async function call(
    replica: SignetProcess,
    method: string,
    url: string,
    options: { body?: unknown; bearer?: string; cookie?: string; csrf?: string } = {},
  ) {
    const response = await fetch(`${replica.server.url}${url}`, {
      method,
      headers: {
        ...(options.cookie
          ? { cookie: options.cookie }
          : { authorization: `Bearer ${options.bearer ?? replica.adminToken}` }),
        ...(options.csrf ? { 'x-csrf-token': options.csrf } : {}),
        ...(options.body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      body: options.body !== undefined ? JSON.stringify(options.body) : undefined,
    });
    const text = await response.text();
    return { status: response.status, headers: response.headers, body: text ? JSON.parse(text) : {} };
  }

  async function signIn(replica: SignetProcess, token: string): Promise<{ cookie: string; csrfToken: string }> {
    const response = await fetch(`${replica.server.url}/v1/sessions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token }),
    });
    expect(response.status).toBe(201);
    return {
      cookie: response.headers.getSetCookie()[0].split(';')[0],
      csrfToken: ((await response.json()) as { csrfToken: string }).csrfToken,
    };
  }

  beforeAll(async () => {
    ensureBuilt();
    registry = await TestRegistry.start({ auth: 'none' });
    database = await createTestDatabase({ migrate: false });
    const env = {
      DATABASE_URL: database.url,
      SIGNET_MIGRATION_DATABASE_URL: database.ownerUrl,
      SIGNET_DATA_DIR: tempDir('console-replicas-'),
      ...FAST_DISTRIBUTION_ENV,
      SIGNET_DISTRIBUTION_ATTEMPT_TIMEOUT_MS: '5000',
    };
    // The first process migrates and bootstraps; the second joins the same database.
    a = await startSignet(env);
    b = await startSignet(env);
  });

  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    await database?.drop();
    await registry?.dispose();
  });

  it('a token revoked through one replica ends its session on the other at the next request (no cache)', async () => {
    const officer = await call(a!, 'POST', '/v1/tokens', { body: { name: 'officer', role: 'security-officer' } });
    expect(officer.status).toBe(201);
    const session = await signIn(b!, officer.body.token);
    expect((await call(b!, 'GET', '/v1/sessions/current', session)).status).toBe(200);
    // The session also works on A (shared in PostgreSQL).
    expect((await call(a!, 'GET', '/v1/distribution', session)).status).toBe(200);
    expect((await call(a!, 'DELETE', `/v1/tokens/${officer.body.id}`)).status).toBe(200);
    const after = await call(b!, 'GET', '/v1/sessions/current', session);
    expect(after.status).toBe(401);
    expect(after.body.error.code).toBe('UNAUTHENTICATED');
  });

  it('GET /v1/distribution/events on one replica streams the target changes made through and by the other, up to converged', async () => {
    const auditor = await call(a!, 'POST', '/v1/tokens', { body: { name: 'auditor', role: 'auditor' } });
    const session = await signIn(b!, auditor.body.token);
    const events = await EventStream.open(`${b!.server.url}/v1/distribution/events`, { cookie: session.cookie });
    try {
      expect(events.status).toBe(200);
      expect(events.contentType).toMatch(/^text\/event-stream/);
      await events.next((e) => e.event === 'ready');
      expect((await call(a!, 'POST', '/v1/truststores', { body: { name: 'fleet', cas: [DEV_ROOT_CA] } })).status).toBe(
        201,
      );
      expect((await call(a!, 'POST', '/v1/regions', { body: { name: 'eu' } })).status).toBe(201);
      const created = await call(a!, 'POST', '/v1/regions/eu/targets', {
        body: {
          name: 'registry',
          kind: 'oci-registry',
          endpoint: registry.url,
          repository: 'signet/truststore',
          truststore: 'fleet',
        },
      });
      expect(created.status).toBe(201);
      const isTarget = (state?: string) => (e: ServerEvent) =>
        e.event === 'target' &&
        e.data.region === 'eu' &&
        (e.data.target as { name: string; state: string }).name === 'registry' &&
        (state === undefined || (e.data.target as { state: string }).state === state);
      const first = await events.next(isTarget());
      expect(first.data.target).toMatchObject({
        name: 'registry',
        kind: 'oci-registry',
        truststore: 'fleet',
        desired: { version: 1 },
      });
      // Delivered by whichever replica's reconciler claimed it; B's stream hears it either way.
      const converged = await events.next(isTarget('converged'));
      expect(converged.data.target).toMatchObject({ delivered: { version: 1 }, convergedAt: expect.any(String) });
      // The same answer GET /v1/distribution gives.
      const status = await call(a!, 'GET', '/v1/distribution');
      expect(status.body.regions.find((r: { name: string }) => r.name === 'eu').targets[0]).toMatchObject({
        state: 'converged',
        delivered: { version: 1 },
      });
    } finally {
      events.close();
    }
  });

  it('ends an event stream when its console session ends (sign-out on the other replica)', async () => {
    const auditor = await call(a!, 'POST', '/v1/tokens', { body: { name: 'auditor-2', role: 'auditor' } });
    const session = await signIn(a!, auditor.body.token);
    const events = await EventStream.open(`${b!.server.url}/v1/distribution/events`, { cookie: session.cookie });
    try {
      await events.next((e) => e.event === 'ready');
      expect(
        (await call(a!, 'DELETE', '/v1/sessions', { cookie: session.cookie, csrf: session.csrfToken })).status,
      ).toBe(204);
      // Checked at each heartbeat (15 s).
      await events.next((e) => e.event === 'session-ended', 30_000);
    } finally {
      events.close();
    }
  });
});

describe('console session cookie under TLS (real server process)', () => {
  let tls: TlsServer | undefined;
  let database: TestDatabase;
  const dataDir = tempDir('console-tls-data-');

  beforeAll(async () => {
    database = await createTestDatabase();
    tls = await startTlsServer('console-tls', {
      DATABASE_URL: database.url,
      SIGNET_DEV_BOOTSTRAP: 'true',
      SIGNET_DATA_DIR: dataDir,
    });
  });
  afterAll(async () => {
    tls?.server.kill('SIGTERM');
    await tls?.server.exited;
    await database?.drop();
  });

  it('is Secure and __Host- prefixed over HTTPS, and the plain-HTTP cookie name is not accepted there', async () => {
    const adminToken = fs.readFileSync(path.join(dataDir, 'admin.token'), 'utf8').trim();
    const answer = await httpsRequest(
      tls!,
      'POST',
      '/v1/sessions',
      { 'content-type': 'application/json' },
      JSON.stringify({ token: adminToken }),
    );
    expect(answer.status).toBe(201);
    const setCookie = String(answer.headers['set-cookie']);
    expect(setCookie).toMatch(/^__Host-signet_session=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Strict; Secure$/);
    const value = setCookie.split(';')[0].split('=')[1];
    expect(
      (await httpsRequest(tls!, 'GET', '/v1/sessions/current', { cookie: `__Host-signet_session=${value}` })).status,
    ).toBe(200);
    // A cookie planted without the prefix (e.g. over plain HTTP by a network attacker) is not read over HTTPS.
    expect(
      (await httpsRequest(tls!, 'GET', '/v1/sessions/current', { cookie: `signet_session=${value}` })).status,
    ).toBe(401);
  });
});

function httpsRequest(
  tls: TlsServer,
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: string,
): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const request = https.request(
      `https://127.0.0.1:${tls.server.port}${path}`,
      { method, headers, ca: tls.cert },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
      },
    );
    request.on('error', reject);
    request.end(body);
  });
}
