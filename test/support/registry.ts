import { ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { createPrivateKey, KeyObject, randomBytes, sign, X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import { freePort, tempDir } from './server-process';

/**
 * Real registries for distribution tests: Debian's `docker-registry` (CNCF distribution 2.8) on
 * 127.0.0.1 with filesystem storage in a temp dir, in three variants —
 *   - `none`:     no auth
 *   - `htpasswd`: basic auth against a bcrypt file made by `htpasswd -Bbn`
 *   - `token`:    bearer-token auth; the token service is a double run by the test
 *                 (TokenIssuerDouble), signing ES256 JWTs whose `x5c` header carries a self-signed
 *                 certificate that the registry trusts through `rootcertbundle`.
 * Plus `startSilentServer` (accepts connections, never answers) and `skopeo`, the independent
 * client tests read back with.
 *
 *   const registry = await TestRegistry.start({ auth: 'token' });   // waits until /v2/ answers
 *   registry.url / registry.host / registry.username / registry.password / registry.tokenIssuer
 *   await registry.stop(); await registry.startProcess();          // down, then back (same port, same data)
 *   await registry.restart();
 *   await registry.dispose();                                       // in afterAll: process, issuer, temp dir
 */
export const DOCKER_REGISTRY_BIN = '/usr/bin/docker-registry';
export type RegistryAuthMode = 'none' | 'htpasswd' | 'token';

export interface TestRegistryOptions {
  auth?: RegistryAuthMode;
  username?: string;
  password?: string;
}

const liveChildren = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of liveChildren) child.kill('SIGKILL');
});

export class TestRegistry {
  readonly username: string;
  readonly password: string;
  private child?: ChildProcess;
  private output: string[] = [];

  private constructor(
    readonly auth: RegistryAuthMode,
    readonly port: number,
    readonly dir: string,
    private readonly configPath: string,
    credentials: { username: string; password: string },
    readonly tokenIssuer?: TokenIssuerDouble,
  ) {
    this.username = credentials.username;
    this.password = credentials.password;
  }

  /** Starts a registry of the given variant and waits (bounded) until it answers /v2/. */
  static async start(options: TestRegistryOptions = {}): Promise<TestRegistry> {
    if (!fs.existsSync(DOCKER_REGISTRY_BIN))
      throw new Error(`${DOCKER_REGISTRY_BIN} is missing: apt-get install docker-registry`);
    const auth = options.auth ?? 'none';
    const credentials = {
      username: options.username ?? 'signet',
      password: options.password ?? `pw-${randomBytes(6).toString('hex')}`,
    };
    const dir = tempDir(`registry-${auth}-`);
    const authLines: string[] = [];
    let tokenIssuer: TokenIssuerDouble | undefined;
    if (auth === 'htpasswd') {
      const htpasswd = execFileSync('htpasswd', ['-Bbn', credentials.username, credentials.password], {
        encoding: 'utf8',
      });
      fs.writeFileSync(path.join(dir, 'htpasswd'), htpasswd);
      authLines.push('auth:', '  htpasswd:', '    realm: signet-test', `    path: ${path.join(dir, 'htpasswd')}`);
    } else if (auth === 'token') {
      tokenIssuer = await TokenIssuerDouble.start({ dir, ...credentials });
      authLines.push(
        'auth:',
        '  token:',
        `    realm: ${tokenIssuer.realm}`,
        `    service: ${tokenIssuer.service}`,
        `    issuer: ${tokenIssuer.issuer}`,
        `    rootcertbundle: ${tokenIssuer.certPath}`,
      );
    }
    const storage = path.join(dir, 'storage');
    fs.mkdirSync(storage);
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const config = [
        'version: 0.1',
        'log:',
        '  level: info',
        '  accesslog:',
        '    disabled: true',
        'storage:',
        '  filesystem:',
        `    rootdirectory: ${storage}`,
        '  delete:',
        '    enabled: true',
        '  maintenance:',
        '    uploadpurging:',
        '      enabled: false',
        'http:',
        `  addr: 127.0.0.1:${port}`,
        `  secret: ${randomBytes(16).toString('hex')}`,
        ...authLines,
        '',
      ].join('\n');
      const configPath = path.join(dir, 'config.yml');
      fs.writeFileSync(configPath, config);
      const registry = new TestRegistry(auth, port, dir, configPath, credentials, tokenIssuer);
      try {
        await registry.startProcess();
      } catch (error) {
        // freePort's port can be taken by another process before the registry binds it: try another.
        if (attempt < 3 && registry.logs().includes('address already in use')) continue;
        throw error;
      }
      return registry;
    }
  }

  /** `127.0.0.1:port`, as in image references. */
  get host(): string {
    return `127.0.0.1:${this.port}`;
  }

  get url(): string {
    return `http://${this.host}`;
  }

  get running(): boolean {
    return this.child !== undefined;
  }

  logs(): string {
    return this.output.join('');
  }

  /** Starts the process again on the same port and storage (after `stop`). */
  async startProcess(readyTimeoutMs = 30_000): Promise<void> {
    if (this.child) return;
    const child = spawn(DOCKER_REGISTRY_BIN, ['serve', this.configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
    liveChildren.add(child);
    this.child = child;
    for (const stream of [child.stdout!, child.stderr!]) {
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => {
        this.output.push(chunk);
        if (this.output.length > 2000) this.output.splice(0, 1000);
      });
    }
    child.once('exit', () => {
      liveChildren.delete(child);
      if (this.child === child) this.child = undefined;
    });
    await this.waitReady(readyTimeoutMs);
  }

  /** Polls `GET /v2/` until the registry answers (200, or 401 with auth); fails early if the process exits. */
  async waitReady(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (!this.child) throw new Error(`docker-registry exited before becoming ready:\n${this.logs().slice(-3000)}`);
      try {
        const response = await fetch(`${this.url}/v2/`, { signal: AbortSignal.timeout(2000) });
        await response.arrayBuffer();
        if (response.status === 200 || response.status === 401) return;
      } catch {
        // not listening yet
      }
      await sleep(100);
    }
    throw new Error(`docker-registry not ready within ${timeoutMs} ms:\n${this.logs().slice(-3000)}`);
  }

  /** SIGTERM, then SIGKILL if it has not exited within `graceMs`. The storage stays. */
  async stop(graceMs = 10_000): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.startProcess();
  }

  /** Stops the registry and its token issuer and removes the temp dir. */
  async dispose(): Promise<void> {
    await this.stop();
    await this.tokenIssuer?.close();
    if (!process.env.SIGNET_TEST_KEEP) fs.rmSync(this.dir, { recursive: true, force: true });
  }

  /** `--creds user:pass` for skopeo when the registry needs them. */
  skopeoCreds(): string[] {
    return this.auth === 'none' ? [] : ['--creds', `${this.username}:${this.password}`];
  }
}

/** `docker-registry --version`, e.g. `docker-registry github.com/docker/distribution 2.8.2+ds1`. */
export function dockerRegistryVersion(): string {
  return execFileSync(DOCKER_REGISTRY_BIN, ['--version'], { encoding: 'utf8' }).trim();
}

export interface TokenIssuerOptions {
  dir: string;
  username: string;
  password: string;
}

/**
 * A token service double for distribution's `auth: token`: `GET /token?service=…&scope=…` with
 * basic credentials → `{token, access_token, expires_in, issued_at}`. The JWT is ES256 with an
 * `x5c` header holding a self-signed certificate (made with the openssl CLI) that the registry's
 * `rootcertbundle` trusts — the key-id alternative needs libtrust fingerprints, x5c does not.
 */
export class TokenIssuerDouble {
  readonly service = 'signet-test-registry';
  readonly issuer = 'signet-test-token-issuer';
  /** Requests received (every one, including refused ones). */
  requests: Array<{ scopes: string[]; authorized: boolean }> = [];
  /**
   * When set, `/token` answers `302 Location: <redirectTo>?<the request's query>` instead of issuing
   * a token. The issuer also issues tokens at `/issued`, so a redirect can lead back to it.
   */
  redirectTo?: string;
  /** Token lifetime the issuer announces and signs. */
  expiresInSeconds = 300;

  private constructor(
    private readonly server: http.Server,
    readonly port: number,
    readonly certPath: string,
    private readonly key: KeyObject,
    private readonly certDerBase64: string,
    private readonly credentials: { username: string; password: string },
  ) {}

  static async start(options: TokenIssuerOptions): Promise<TokenIssuerDouble> {
    const keyPath = path.join(options.dir, 'token-issuer.key');
    const certPath = path.join(options.dir, 'token-issuer.crt');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-keyout',
        keyPath,
        '-out',
        certPath,
        '-days',
        '2',
        '-subj',
        '/CN=signet-test-token-issuer',
      ],
      { stdio: 'ignore' },
    );
    const key = createPrivateKey(fs.readFileSync(keyPath));
    const certDerBase64 = new X509Certificate(fs.readFileSync(certPath)).raw.toString('base64');
    const port = await freePort();
    const server = http.createServer();
    const issuer = new TokenIssuerDouble(server, port, certPath, key, certDerBase64, options);
    server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => issuer.handle(req, res));
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    return issuer;
  }

  get realm(): string {
    return `http://127.0.0.1:${this.port}/token`;
  }

  get host(): string {
    return `127.0.0.1:${this.port}`;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', this.realm);
    const scopes = url.searchParams.getAll('scope');
    const authorized = this.checkBasic(req.headers.authorization);
    this.requests.push({ scopes, authorized });
    if (this.redirectTo && url.pathname === '/token') {
      res.writeHead(302, { location: `${this.redirectTo}${url.search}` }).end();
      return;
    }
    if ((url.pathname !== '/token' && url.pathname !== '/issued') || url.searchParams.get('service') !== this.service) {
      res.writeHead(400, { 'content-type': 'application/json' }).end('{"errors":[{"code":"BAD_REQUEST"}]}');
      return;
    }
    if (!authorized) {
      res
        .writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Basic realm="signet-test-token"' })
        .end('{"errors":[{"code":"UNAUTHORIZED"}]}');
      return;
    }
    const access = scopes.flatMap((scope) => {
      const match = /^(repository):(.+):([a-z*,]+)$/.exec(scope);
      return match
        ? [
            {
              type: match[1],
              name: match[2],
              actions: match[3].split(',').filter((a) => a === 'pull' || a === 'push' || a === '*'),
            },
          ]
        : [];
    });
    const now = Math.floor(Date.now() / 1000);
    const token = this.jwt({
      iss: this.issuer,
      sub: this.credentials.username,
      aud: this.service,
      exp: now + this.expiresInSeconds,
      nbf: now - 10,
      iat: now,
      jti: randomBytes(8).toString('hex'),
      access,
    });
    res.writeHead(200, { 'content-type': 'application/json' }).end(
      JSON.stringify({
        token,
        access_token: token,
        expires_in: this.expiresInSeconds,
        issued_at: new Date(now * 1000).toISOString(),
      }),
    );
  }

  private checkBasic(header: string | undefined): boolean {
    if (!header?.startsWith('Basic ')) return false;
    const decoded = Buffer.from(header.slice(6), 'base64').toString('utf8');
    return decoded === `${this.credentials.username}:${this.credentials.password}`;
  }

  private jwt(claims: Record<string, unknown>): string {
    const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
    const signingInput = `${encode({ typ: 'JWT', alg: 'ES256', x5c: [this.certDerBase64] })}.${encode(claims)}`;
    // JWS ES256 signatures are raw r‖s, not DER
    const signature = sign('sha256', Buffer.from(signingInput), { key: this.key, dsaEncoding: 'ieee-p1363' });
    return `${signingInput}.${signature.toString('base64url')}`;
  }
}

/** A TCP server that accepts connections and never answers: for per-request timeout tests. */
export async function startSilentServer(): Promise<{ port: number; url: string; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

export interface CommandResult {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

/** Runs `skopeo` (bounded) and returns its raw stdout; never throws on a non-zero exit. */
export function skopeo(args: string[], timeoutMs = 60_000): Promise<CommandResult> {
  return new Promise((resolve) => {
    execFile(
      'skopeo',
      args,
      { encoding: 'buffer', timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error
          ? typeof (error as { code?: unknown }).code === 'number'
            ? (error as { code: number }).code
            : null
          : 0;
        resolve({ code, stdout, stderr: stderr.toString('utf8') });
      },
    );
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
