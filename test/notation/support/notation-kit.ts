import { ChildProcess, execFile, execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { buildPlugin } from '../../notation-plugin/support/notation-driver';
import { skopeo, TestRegistry } from '../../support/registry';
import { ensureBuilt, freePort, PROJECT_ROOT, ServerProcess, tempDir } from '../../support/server-process';

/**
 * The real `notation` CLI against a real Signet server process, a real `docker-registry` on
 * 127.0.0.1 and images pushed there with skopeo from OCI layouts made on disk (no network).
 *
 * The binary: `NOTATION_BIN`, else `notation` on PATH, else `../shared/tools/notation` beside the
 * project. Without one the tier is skipped with one line saying how to get Notation; with `CI=true`
 * a missing binary fails the run instead.
 */
export const NOTATION_HOW_TO_GET =
  'install Notation 1.x (https://notaryproject.dev/docs/user-guides/installation/cli/) and put it on PATH or set NOTATION_BIN';

export interface NotationBinary {
  path: string;
  version: string;
}

let located: NotationBinary | null | undefined;

/** Finds the binary once per test file; copies it to a temp dir and makes it executable when it is not. */
export function locateNotation(): NotationBinary | null {
  if (located !== undefined) return located;
  const candidates: string[] = [];
  if (process.env.NOTATION_BIN) candidates.push(path.resolve(process.env.NOTATION_BIN));
  for (const dir of (process.env.PATH ?? '').split(path.delimiter))
    if (dir) candidates.push(path.join(dir, 'notation'));
  candidates.push(path.resolve(PROJECT_ROOT, '..', 'shared', 'tools', 'notation'));
  located = null;
  for (const candidate of candidates) {
    if (!fs.existsSync(candidate) || !fs.statSync(candidate).isFile()) continue;
    let bin = candidate;
    try {
      fs.accessSync(bin, fs.constants.X_OK);
    } catch {
      const copy = path.join(tempDir('notation-bin-'), 'notation');
      fs.copyFileSync(candidate, copy);
      fs.chmodSync(copy, 0o755);
      bin = copy;
    }
    const version = /Version:\s*(\S+)/.exec(execFileSync(bin, ['version'], { encoding: 'utf8' }))?.[1] ?? 'unknown';
    located = { path: bin, version };
    break;
  }
  return located;
}

/**
 * `describe` when the binary is there. Otherwise: with CI=true one failing test naming what is
 * missing; elsewhere the block is skipped and one line says how to get Notation.
 */
export function describeWithNotation(name: string, body: (notation: NotationBinary) => void): void {
  const binary = locateNotation();
  if (binary) {
    describe(name, () => body(binary));
    return;
  }
  if (process.env.CI === 'true') {
    describe(name, () => {
      it('needs the notation CLI', () => {
        throw new Error(`notation not found (NOTATION_BIN, PATH, ../shared/tools/notation): ${NOTATION_HOW_TO_GET}`);
      });
    });
    return;
  }
  process.stderr.write(`[notation tier skipped] no notation binary: ${NOTATION_HOW_TO_GET}\n`);
  describe.skip(name, () => body({ path: 'notation', version: 'missing' }));
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** stdout + stderr, for messages Notation prints on either. */
  output: string;
}

/** Asserts exit 0; on failure the message carries what the command printed. */
export function expectSuccess(result: RunResult): void {
  expect(result.code === 0 ? 'exit 0' : `exit ${String(result.code)}\n${result.output}`).toBe('exit 0');
}

/** Runs a command (bounded), never throws on a non-zero exit. */
export function run(
  file: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number; input?: string } = {},
): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = execFile(
      file,
      args,
      {
        env: options.env,
        cwd: options.cwd,
        timeout: options.timeoutMs ?? 120_000,
        maxBuffer: 16 * 1024 * 1024,
        encoding: 'utf8',
      },
      (error, stdout, stderr) => {
        const code = error
          ? typeof (error as { code?: unknown }).code === 'number'
            ? (error as { code: number }).code
            : null
          : 0;
        resolve({ code, stdout, stderr, output: `${stdout}${stderr}` });
      },
    );
    if (options.input !== undefined) child.stdin!.end(options.input);
  });
}

/**
 * One Notation configuration: `XDG_CONFIG_HOME` (plugins, keys, trust store, trust policy) and
 * `XDG_CACHE_HOME` (Notation 1.3 caches CRLs there) in a temp dir, node on PATH for the plugin.
 */
export class NotationHome {
  readonly dir: string;
  readonly config: string;
  readonly cache: string;
  constructor(
    readonly binary: NotationBinary,
    prefix = 'notation-home-',
  ) {
    this.dir = tempDir(prefix);
    this.config = path.join(this.dir, 'config');
    this.cache = path.join(this.dir, 'cache');
    fs.mkdirSync(path.join(this.config, 'notation'), { recursive: true });
    fs.mkdirSync(this.cache, { recursive: true });
  }

  /** `{config}/notation`, where trustpolicy.json and truststore/ go. */
  get notationDir(): string {
    return path.join(this.config, 'notation');
  }

  env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
    return {
      PATH: [path.dirname(process.execPath), path.dirname(this.binary.path), process.env.PATH ?? ''].join(
        path.delimiter,
      ),
      HOME: this.dir,
      XDG_CONFIG_HOME: this.config,
      XDG_CACHE_HOME: this.cache,
      ...extra,
    };
  }

  notation(args: string[], extraEnv: Record<string, string> = {}, timeoutMs = 120_000): Promise<RunResult> {
    return run(this.binary.path, args, { env: this.env(extraEnv), cwd: this.dir, timeoutMs });
  }

  /** Unpacks Signet's `notation` bundle into the configuration directory (trust policy and stores). */
  installBundle(tar: Buffer): void {
    fs.rmSync(path.join(this.notationDir, 'truststore'), { recursive: true, force: true });
    const file = path.join(this.dir, `bundle-${randomBytes(4).toString('hex')}.tar`);
    fs.writeFileSync(file, tar);
    execFileSync('tar', ['-xf', file, '-C', this.notationDir]);
  }

  /** Forgets cached CRLs, so the next verify fetches them again. */
  clearCache(): void {
    fs.rmSync(this.cache, { recursive: true, force: true });
    fs.mkdirSync(this.cache, { recursive: true });
  }
}

/** Builds dist/ (server) and the single-file plugin dist/notation-signet; returns the plugin's path. */
export function buildServerAndPlugin(): string {
  ensureBuilt();
  buildPlugin();
  const plugin = path.join(PROJECT_ROOT, 'dist', 'notation-signet');
  execFileSync(process.execPath, [path.join(PROJECT_ROOT, 'dist', 'src', 'notation-plugin', 'standalone.js'), plugin]);
  return plugin;
}

/** The HTTP API of a running Signet with the admin token (or another token). */
export function signetApi(baseUrl: string, token: string) {
  return async (
    method: string,
    route: string,
    body?: unknown,
    bearer = token,
  ): Promise<{ status: number; json: Record<string, unknown>; raw: Buffer }> => {
    const response = await fetch(`${baseUrl}${route}`, {
      method,
      headers: {
        authorization: `Bearer ${bearer}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const raw = Buffer.from(await response.arrayBuffer());
    let json: Record<string, unknown> = {};
    try {
      json = JSON.parse(raw.toString('utf8')) as Record<string, unknown>;
    } catch {
      // binary body (bundles, CRLs)
    }
    return { status: response.status, json, raw };
  };
}
export type SignetApi = ReturnType<typeof signetApi>;

export const SUBJECT = { C: 'DE', ST: 'Berlin', O: 'Signet Notation Tier' };

/** The trusted identity Notation matches for a key created with SUBJECT + CN (the leaf's subject). */
export function identityOf(cn: string): string {
  return `x509.subject: C=${SUBJECT.C}, ST=${SUBJECT.ST}, O=${SUBJECT.O}, CN=${cn}`;
}

/** A Signet server process on embedded defaults, its admin token and API. */
export async function startSignet(
  prefix: string,
  env: Record<string, string> = {},
  port?: number,
): Promise<{ server: ServerProcess; dir: string; admin: string; api: SignetApi }> {
  const dir = tempDir(prefix);
  const listen = port ?? (await freePort());
  const server = new ServerProcess(listen, {
    SIGNET_DATA_DIR: path.join(dir, 'data'),
    SIGNET_LOG_LEVEL: 'warn',
    SIGNET_AUDIT_CHECKPOINT_INTERVAL_SECONDS: '0',
    SIGNET_PUBLIC_URL: `http://127.0.0.1:${listen}`,
    ...env,
  });
  await server.waitReady(180_000);
  const admin = fs.readFileSync(path.join(dir, 'data', 'admin.token'), 'utf8').trim();
  return { server, dir, admin, api: signetApi(server.url, admin) };
}

export async function stopSignet(server: ServerProcess | undefined): Promise<void> {
  if (!server) return;
  server.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([server.exited, new Promise((resolve) => (timer = setTimeout(resolve, 30_000)))]);
  clearTimeout(timer);
}

/** Creates a signing key under the dev issuing CA; returns its leaf serial. */
export async function createKey(
  api: SignetApi,
  name: string,
  keySpec: string,
  extra: Record<string, unknown> = {},
): Promise<void> {
  const created = await api('POST', '/v1/keys', { name, keySpec, subject: { ...SUBJECT, CN: name }, ...extra });
  if (created.status !== 201) throw new Error(`create key ${name}: ${created.status} ${JSON.stringify(created.json)}`);
}

/** A signer token granted `keys`, written to a 0600 file; returns both. */
export async function signerToken(
  api: SignetApi,
  dir: string,
  name: string,
  keys: string[],
): Promise<{ token: string; file: string }> {
  const created = await api('POST', '/v1/tokens', { name, role: 'signer', keys });
  if (created.status !== 201)
    throw new Error(`create token ${name}: ${created.status} ${JSON.stringify(created.json)}`);
  const token = created.json.token as string;
  const file = path.join(dir, `${name}.token`);
  fs.writeFileSync(file, `${token}\n`, { mode: 0o600 });
  return { token, file };
}

/** The `notation` bundle of a truststore (tar). */
export async function notationBundle(api: SignetApi, truststore: string): Promise<Buffer> {
  const response = await api('GET', `/v1/truststores/${truststore}/bundle?format=notation`);
  if (response.status !== 200)
    throw new Error(`bundle ${truststore}: ${response.status} ${response.raw.toString('utf8').slice(0, 300)}`);
  return response.raw;
}

/** Signet's TSA root as a PEM file (what `--timestamp-root-cert` takes). */
export async function tsaRootPem(baseUrl: string, dir: string, generation = 'signet-dev-tsa-root-g1'): Promise<string> {
  const response = await fetch(`${baseUrl}/pki/${generation}.crt`);
  if (response.status !== 200) throw new Error(`TSA root ${generation}: ${response.status}`);
  const file = path.join(dir, 'tsa-root.pem');
  fs.writeFileSync(file, new X509Certificate(Buffer.from(await response.arrayBuffer())).toString());
  return file;
}

/**
 * Pushes a small distinct image (OCI layout written here, copied with skopeo) and returns
 * `host/repo@sha256:…`.
 */
export async function pushImage(
  registry: Pick<TestRegistry, 'host'>,
  repository: string,
  tag: string,
  workDir: string,
  tlsFlags: string[] = ['--dest-tls-verify=false'],
): Promise<string> {
  const layout = path.join(workDir, `layout-${randomBytes(4).toString('hex')}`);
  const blobs = path.join(layout, 'blobs', 'sha256');
  fs.mkdirSync(blobs, { recursive: true });
  const blob = (bytes: Buffer) => {
    const digest = createHash('sha256').update(bytes).digest('hex');
    fs.writeFileSync(path.join(blobs, digest), bytes);
    return { digest: `sha256:${digest}`, size: bytes.length };
  };
  const layer = blob(tarOfOneFile('hello.txt', `${repository}:${tag} ${randomBytes(8).toString('hex')}\n`));
  const config = blob(
    Buffer.from(
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        rootfs: { type: 'layers', diff_ids: [layer.digest] },
        config: {},
      }),
    ),
  );
  const manifestBytes = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...layer }],
    }),
  );
  const manifest = blob(manifestBytes);
  fs.writeFileSync(path.join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  fs.writeFileSync(
    path.join(layout, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          ...manifest,
          annotations: { 'org.opencontainers.image.ref.name': tag },
        },
      ],
    }),
  );
  const copied = await skopeo([
    'copy',
    '--preserve-digests',
    ...tlsFlags,
    `oci:${layout}:${tag}`,
    `docker://${registry.host}/${repository}:${tag}`,
  ]);
  if (copied.code !== 0) throw new Error(`skopeo copy: ${copied.stderr}`);
  return `${registry.host}/${repository}@${manifest.digest}`;
}

/** A POSIX tar holding one regular file (enough for a layer). */
function tarOfOneFile(name: string, body: string): Buffer {
  const content = Buffer.from(body);
  const header = Buffer.alloc(512);
  header.write(name, 0);
  header.write('0000644\0', 100);
  header.write('0000000\0', 108);
  header.write('0000000\0', 116);
  header.write(`${content.length.toString(8).padStart(11, '0')}\0`, 124);
  header.write('00000000000\0', 136);
  header.write('        ', 148);
  header.write('0', 156);
  header.write('ustar\0' + '00', 257);
  let sum = 0;
  for (const byte of header) sum += byte;
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  const padding = Buffer.alloc((512 - (content.length % 512)) % 512);
  return Buffer.concat([header, content, padding, Buffer.alloc(1024)]);
}

/** openssl, synchronously; `ok` and the combined output. */
export function openssl(args: string[], cwd?: string): { ok: boolean; out: string } {
  const result = spawnSync('openssl', args, { cwd, encoding: 'utf8' });
  return { ok: result.status === 0, out: `${result.stdout}${result.stderr}` };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `check` until it returns true (bounded). */
export async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(250);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/**
 * A plain-HTTP proxy in front of Signet's public endpoints: the server's SIGNET_PUBLIC_URL, so every
 * certificate's CRL and OCSP URLs lead here. `blockOcsp` makes it drop OCSP connections without an
 * answer (a verifier whose OCSP responder is unreachable), while CRLs and everything else pass.
 */
export class PublicEndpointProxy {
  blockOcsp = false;
  readonly seen = { ocsp: 0, ocspRefused: 0, crl: 0 };
  private targetPort = 0;

  private constructor(
    private readonly server: http.Server,
    readonly port: number,
  ) {}

  static async start(): Promise<PublicEndpointProxy> {
    const port = await freePort();
    const server = http.createServer();
    const proxy = new PublicEndpointProxy(server, port);
    server.on('request', (req, res) => proxy.handle(req, res));
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    return proxy;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  forwardTo(port: number): void {
    this.targetPort = port;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const route = req.url ?? '/';
    if (route.startsWith('/ocsp/')) {
      this.seen.ocsp++;
      if (this.blockOcsp) {
        this.seen.ocspRefused++;
        req.socket.destroy();
        return;
      }
    }
    if (/^\/pki\/[^/]+\.crl$/.test(route)) this.seen.crl++;
    const upstream = http.request(
      { host: '127.0.0.1', port: this.targetPort, method: req.method, path: route, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  }
}

/**
 * Debian's docker-registry on 127.0.0.1 over TLS, with a CA made here: for the recipes users copy
 * (README walkthrough, CI files), which talk to HTTPS registries and so carry no
 * `--insecure-registry`. Clients trust the CA through `SSL_CERT_FILE` (Go's crypto/x509 and curl
 * read it) and skopeo through `--dest-cert-dir`.
 */
export class TlsRegistry {
  private child?: ChildProcess;
  private readonly output: string[] = [];
  private constructor(
    readonly dir: string,
    readonly port: number,
    /** PEM of the CA that issued the registry's certificate. */
    readonly caFile: string,
    /** Directory with ca.crt, for skopeo's --dest-cert-dir. */
    readonly certDir: string,
  ) {}

  static async start(): Promise<TlsRegistry> {
    const dir = tempDir('registry-tls-');
    const port = await freePort();
    const sh = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
    sh([
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      'ca.key',
      '-out',
      'ca.pem',
      '-days',
      '2',
      '-subj',
      '/CN=notation tier test registry CA',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ]);
    sh([
      'req',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      'registry.key',
      '-out',
      'registry.csr',
      '-subj',
      '/CN=127.0.0.1',
    ]);
    fs.writeFileSync(
      path.join(dir, 'registry.ext'),
      'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n',
    );
    sh([
      'x509',
      '-req',
      '-in',
      'registry.csr',
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      'registry.pem',
      '-days',
      '2',
      '-extfile',
      'registry.ext',
    ]);
    const certDir = path.join(dir, 'certs.d');
    fs.mkdirSync(certDir);
    fs.copyFileSync(path.join(dir, 'ca.pem'), path.join(certDir, 'ca.crt'));
    fs.mkdirSync(path.join(dir, 'storage'));
    const config = [
      'version: 0.1',
      'log:',
      '  accesslog:',
      '    disabled: true',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${path.join(dir, 'storage')}`,
      'http:',
      `  addr: 127.0.0.1:${port}`,
      `  secret: ${randomBytes(16).toString('hex')}`,
      '  tls:',
      `    certificate: ${path.join(dir, 'registry.pem')}`,
      `    key: ${path.join(dir, 'registry.key')}`,
      '',
    ].join('\n');
    fs.writeFileSync(path.join(dir, 'config.yml'), config);
    const registry = new TlsRegistry(dir, port, path.join(dir, 'ca.pem'), certDir);
    const child = spawn('/usr/bin/docker-registry', ['serve', path.join(dir, 'config.yml')], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    registry.child = child;
    for (const stream of [child.stdout!, child.stderr!])
      stream.setEncoding('utf8').on('data', (chunk: string) => registry.output.push(chunk));
    await waitFor('TLS registry', async () => {
      if (child.exitCode !== null) throw new Error(`docker-registry exited:\n${registry.output.join('').slice(-2000)}`);
      return (
        (await run('curl', ['-sf', '--cacert', registry.caFile, `https://${registry.host}/v2/`], { timeoutMs: 5000 }))
          .code === 0
      );
    });
    return registry;
  }

  get host(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Pushes a small distinct image (see pushImage) and returns `host/repo@sha256:…`. */
  async push(repository: string, tag: string, workDir: string): Promise<string> {
    return pushImage(this, repository, tag, workDir, ['--dest-cert-dir', this.certDir]);
  }

  async dispose(): Promise<void> {
    const child = this.child;
    if (child && child.exitCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    }
    if (!process.env.SIGNET_TEST_KEEP) fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** One signature in `notation inspect -o json` (Notation 1.x field names). */
export interface InspectedSignature {
  mediaType: string;
  signatureAlgorithm: string;
  signedAttributes: { signingScheme: string; signingTime: string };
  unsignedAttributes: {
    signingAgent: string;
    timestampSignature?: { timestamp: string; certificates: InspectedCertificate[] };
  };
  certificates: InspectedCertificate[];
  signedArtifact: { mediaType: string; digest: string; size: number };
}

export interface InspectedCertificate {
  SHA256Fingerprint: string;
  issuedTo: string;
  issuedBy: string;
  expiry: string;
}
