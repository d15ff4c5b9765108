import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import { PROJECT_ROOT } from '../support/server-process';
import { SignTransport, waitFor } from '../drills/drill-kit';

/**
 * Sign requests over node:http with a keep-alive agent, the way a balancer or a long-lived client
 * pools connections. A failure carries the socket error's code and `reusedSocket` (the request went
 * out on a pooled connection): a reset there is the rolling-restart loss the drain exists to prevent.
 * With `idempotent`, each request gets a fresh `idempotencyKey`, mirrored in the `Idempotency-Key`
 * header a balancer keys its retries on (deploy/nginx/signet.conf).
 */
export function keepAliveTransport(
  baseUrl: () => string,
  token: string,
  key: string,
  options: { agent: http.Agent; idempotent?: boolean },
): SignTransport {
  return (payload) =>
    new Promise((resolve, reject) => {
      const headers: Record<string, string> = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
      let body = payload;
      if (options.idempotent) {
        const idempotencyKey = randomUUID();
        body = JSON.stringify({ ...JSON.parse(payload), idempotencyKey });
        headers['idempotency-key'] = idempotencyKey;
      }
      const request = http.request(
        `${baseUrl()}/v1/keys/${key}/sign`,
        { method: 'POST', agent: options.agent, headers, timeout: 60_000 },
        (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('error', (error) => reject(Object.assign(error, { reusedSocket: request.reusedSocket })));
          response.on('end', () =>
            resolve({
              status: response.statusCode ?? 0,
              body: Buffer.concat(chunks).toString('utf8'),
              retryAfter: response.headers['retry-after'],
              connectionClose: /\bclose\b/i.test(response.headers.connection ?? ''),
            }),
          );
        },
      );
      request.on('timeout', () => request.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
      request.on('error', (error) => reject(Object.assign(error, { reusedSocket: request.reusedSocket })));
      request.end(body);
    });
}

/**
 * The distribution's PostgreSQL server binaries (Debian's `postgresql` package:
 * /usr/lib/postgresql/<major>/bin), newest major first; undefined when none is installed.
 */
export function distributionPostgresBinDir(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (!fs.existsSync(root)) return undefined;
  const majors = fs
    .readdirSync(root)
    .filter((d) => /^\d+$/.test(d))
    .sort((a, b) => Number(b) - Number(a));
  return majors
    .map((m) => path.join(root, m, 'bin'))
    .find((bin) => fs.existsSync(path.join(bin, 'initdb')) && fs.existsSync(path.join(bin, 'postgres')));
}

export function nginxBinary(): string | undefined {
  for (const candidate of [
    '/usr/sbin/nginx',
    ...(process.env.PATH ?? '').split(':').map((dir) => path.join(dir, 'nginx')),
  ]) {
    if (candidate && fs.existsSync(candidate)) return candidate;
  }
  return undefined;
}

/** deploy/nginx/signet.conf as committed, with its upstream servers and listen address replaced. */
export function signetNginxConf(listenPort: number, upstreamPorts: number[]): string {
  const committed = fs.readFileSync(path.join(PROJECT_ROOT, 'deploy', 'nginx', 'signet.conf'), 'utf8');
  const servers = committed.match(/^\s*server \d+\.\d+\.\d+\.\d+:\d+ .*;$/gm) ?? [];
  if (servers.length !== upstreamPorts.length)
    throw new Error(
      `deploy/nginx/signet.conf lists ${servers.length} upstream servers, the drill runs ${upstreamPorts.length}`,
    );
  let conf = committed;
  servers.forEach(
    (line, i) => (conf = conf.replace(line, line.replace(/\d+\.\d+\.\d+\.\d+:\d+/, `127.0.0.1:${upstreamPorts[i]}`))),
  );
  if (!/^\s*listen 8080;$/m.test(conf)) throw new Error('deploy/nginx/signet.conf no longer has `listen 8080;`');
  return conf.replace(/^(\s*)listen 8080;$/m, `$1listen 127.0.0.1:${listenPort};`);
}

/**
 * nginx as a child process (`nginx -p <dir> -c <conf> -g 'daemon off;'`): everything it writes —
 * pid file, error log, temp files — stays in `dir`; `http` includes `site` (an http-level file).
 */
export class NginxProcess {
  private constructor(
    private readonly child: ChildProcess,
    readonly dir: string,
    readonly port: number,
    readonly exited: Promise<unknown>,
  ) {}

  static async start(binary: string, dir: string, port: number, site: string): Promise<NginxProcess> {
    fs.writeFileSync(path.join(dir, 'signet.conf'), site);
    const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']
      .map((kind) => `  ${kind}_temp_path ${path.join(dir, `${kind}-temp`)};`)
      .join('\n');
    const runAsRoot = process.getuid?.() === 0 ? 'user root;\n' : '';
    fs.writeFileSync(
      path.join(dir, 'nginx.conf'),
      `${runAsRoot}worker_processes 1;\npid ${path.join(dir, 'nginx.pid')};\nerror_log ${path.join(dir, 'error.log')} warn;\n` +
        `events { worker_connections 4096; }\nhttp {\n  access_log off;\n${temp}\n  include ${path.join(dir, 'signet.conf')};\n}\n`,
    );
    const check = spawnSync(binary, ['-t', '-p', dir, '-c', path.join(dir, 'nginx.conf'), '-g', 'daemon off;'], {
      encoding: 'utf8',
    });
    if (check.status !== 0) throw new Error(`nginx -t failed: ${check.stderr}`);
    const child = spawn(binary, ['-p', dir, '-c', path.join(dir, 'nginx.conf'), '-g', 'daemon off;'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    const nginx = new NginxProcess(child, dir, port, exited);
    await waitFor('nginx to listen', () => canConnect(port), 20_000, 50);
    return nginx;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  errorLog(): string {
    return fs.readFileSync(path.join(this.dir, 'error.log'), 'utf8');
  }

  /** SIGQUIT: nginx's graceful stop. */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGQUIT');
    await this.exited;
  }
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });
}

/** An expand-only migration (a nullable column nothing reads yet): what the "newer build" of the drill adds. */
export const EXPAND_MIGRATION = 'DrillExpand1799000000000';
const EXPAND_MIGRATION_JS = `"use strict";
Object.defineProperty(exports, "__esModule", { value: true });
class ${EXPAND_MIGRATION} {
  constructor() { this.name = '${EXPAND_MIGRATION}'; }
  async up(queryRunner) { await queryRunner.query('ALTER TABLE signing_keys ADD COLUMN drill_release_note text'); }
  async down(queryRunner) { await queryRunner.query('ALTER TABLE signing_keys DROP COLUMN drill_release_note'); }
}
exports.${EXPAND_MIGRATION} = ${EXPAND_MIGRATION};
`;

/**
 * A newer build beside the current one: a copy of dist/ with one more migration (expand only),
 * resolving the same node_modules. Returns the path of its main.js.
 */
export function newerBuild(dir: string): string {
  fs.cpSync(path.join(PROJECT_ROOT, 'dist'), path.join(dir, 'dist'), { recursive: true });
  fs.symlinkSync(path.join(PROJECT_ROOT, 'node_modules'), path.join(dir, 'node_modules'));
  fs.writeFileSync(path.join(dir, 'dist', 'migrations', '1799000000000-DrillExpand.js'), EXPAND_MIGRATION_JS);
  return path.join(dir, 'dist', 'src', 'main.js');
}
