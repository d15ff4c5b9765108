/**
 * Signing API benchmark: a real Signet server process (built dist/, embedded PostgreSQL, SoftHSM2
 * token, auth and the durable audit log on) driven by wrk (autocannon when wrk is not installed) on the same machine with
 * `POST /v1/keys/{name}/sign` (EC-256 digests) at 32 and 64 connections; beside it, in the same
 * run, raw synchronous pkcs11js C_Sign in two worker threads on an EC-256 key (median of 3 runs).
 *
 *   npm run build && UV_THREADPOOL_SIZE=16 npx ts-node --transpile-only bench/signing.bench.ts
 *   (or: npm run bench -- signing)
 *
 * Also reports PostgreSQL's fsync / synchronous_commit, the data disk's write+fdatasync latency,
 * Signet's peak RSS (PostgreSQL's memory separately), the CPU other processes used during each
 * run, and checks afterwards that audit sign rows ≥ 2xx responses. Prints a Markdown section and
 * writes it to .bench-out/signing.md. Bounded to about three minutes.
 */
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { Client } from 'pg';
import { Writable } from 'node:stream';
import { createApp } from '../src/app.factory';
import { AuditService } from '../src/audit/audit.service';
import { SignEventData } from '../src/audit/sign-event';
import { TokenPrincipal } from '../src/auth/principal';
import { loadConfig } from '../src/config/config';
import { resolveHsmOptions, resolveSignWorkers } from '../src/hsm/hsm-options';
import { KEY_STORE, KeyStore } from '../src/hsm/key-store';
import { createLogger } from '../src/observability/logger';
import { startPlatform } from '../src/platform';
import { ActiveKeyCache } from '../src/signing/active-key-cache';
import { SigningService } from '../src/signing/signing.service';
import { freePort, postgresProcessesFor, PROJECT_ROOT, ServerProcess } from '../test/support/server-process';

interface AutocannonHistogram {
  average: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}
interface AutocannonResult {
  duration: number;
  latency: AutocannonHistogram;
  requests: AutocannonHistogram & { total: number };
  '2xx': number;
  non2xx: number;
  errors: number;
  timeouts: number;
  statusCodeStats: Record<string, { count: number }>;
}
// autocannon ships no types; this is the part used here.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const autocannon = require('autocannon') as (options: Record<string, unknown>) => Promise<AutocannonResult>;

/** One load window, whichever generator ran it. */
interface LoadResult {
  duration: number;
  ok: number;
  p50: number;
  p99: number;
  /** Non-2xx answers and transport errors, as text for the table. */
  other: string[];
}

interface LoadRequest {
  url: string;
  method: string;
  headers: Record<string, string>;
  body: string;
}

function haveWrk(): boolean {
  try {
    execFileSync('wrk', ['--version'], { stdio: 'ignore' });
    return true;
  } catch (error) {
    // wrk --version exits 1 after printing its version.
    return (error as { status?: number }).status === 1;
  }
}

/** The load generator: wrk (C, cheap per request) when installed, else autocannon in this process. */
const LOAD_GENERATOR = haveWrk() ? 'wrk' : 'autocannon';

/**
 * wrk with a Lua script for the POST and a done() hook printing one JSON line (latency
 * percentiles in µs, requests, errors). Runs as a child of this process: its CPU shows up in
 * this process's children time.
 */
async function wrkLoad(request: LoadRequest, connections: number, durationS: number): Promise<LoadResult> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'signet-wrk-'));
  const script = path.join(dir, 'sign.lua');
  const headerLines = Object.entries(request.headers).map(
    ([name, value]) => `wrk.headers[${JSON.stringify(name)}] = ${JSON.stringify(value)}`,
  );
  fs.writeFileSync(
    script,
    [
      `wrk.method = ${JSON.stringify(request.method)}`,
      `wrk.body = ${JSON.stringify(request.body)}`,
      ...headerLines,
      'done = function(summary, latency, requests)',
      '  io.write(string.format([[WRKJSON {"requests":%d,"duration_us":%d,"status":%d,"connect":%d,"read":%d,"write":%d,"timeout":%d,"p50":%d,"p99":%d}]],',
      '    summary.requests, summary.duration, summary.errors.status, summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.timeout,',
      '    latency:percentile(50), latency:percentile(99)) .. string.char(10))',
      'end',
      '',
    ].join('\n'),
  );
  try {
    const output = await new Promise<string>((resolve, reject) => {
      const child = spawn(
        'wrk',
        ['-t', '2', '-c', String(connections), '-d', `${durationS}s`, '--timeout', '10s', '-s', script, request.url],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      let text = '';
      child.stdout.on('data', (chunk: Buffer) => (text += chunk.toString()));
      child.on('error', reject);
      child.on('exit', (code) => (code === 0 ? resolve(text) : reject(new Error(`wrk exited ${code}: ${text}`))));
    });
    const line = output.split('\n').find((l) => l.startsWith('WRKJSON '));
    if (!line) throw new Error(`wrk printed no summary: ${output}`);
    const r = JSON.parse(line.slice('WRKJSON '.length)) as Record<string, number>;
    const other = [
      ...(r.status ? [`${r.status} non-2xx`] : []),
      ...(r.connect + r.read + r.write ? [`${r.connect + r.read + r.write} socket errors`] : []),
      ...(r.timeout ? [`${r.timeout} timeouts`] : []),
    ];
    return { duration: r.duration_us / 1e6, ok: r.requests - r.status, p50: r.p50 / 1000, p99: r.p99 / 1000, other };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function autocannonLoad(request: LoadRequest, connections: number, durationS: number): Promise<LoadResult> {
  const result = await autocannon({ ...request, connections, duration: durationS });
  const statuses = Object.entries(result.statusCodeStats ?? {})
    .filter(([code]) => !code.startsWith('2'))
    .map(([code, { count }]) => `${count}×${code}`);
  return {
    duration: result.duration,
    ok: result['2xx'],
    p50: result.latency.p50,
    p99: result.latency.p99,
    other: [
      ...statuses,
      ...(result.errors ? [`${result.errors} errors`] : []),
      ...(result.timeouts ? [`${result.timeouts} timeouts`] : []),
    ],
  };
}

function runLoad(request: LoadRequest, connections: number, durationS: number): Promise<LoadResult> {
  return LOAD_GENERATOR === 'wrk'
    ? wrkLoad(request, connections, durationS)
    : autocannonLoad(request, connections, durationS);
}

const CONNECTIONS = [32, 64];
const WINDOW_S = Number(process.env.SIGNET_BENCH_WINDOW_S ?? 15);
const WARMUP_S = 4;
const RAW_THREADS = 2;
const RAW_RUNS = 3;
const RAW_WINDOW_MS = 3000;
/** libuv threads of the server: HSM sessions = threads − 2 (src/hsm/hsm-options.ts). */
const SERVER_UV_THREADS = process.env.SIGNET_BENCH_UV_THREADS ?? '6';
/** The V8 heap cap `npm start` and the image give the server (SIGNET_MAX_HEAP_MB's default). */
const SERVER_HEAP_MB = '512';
const SIGN_THREADS = resolveSignWorkers('auto', 'libsofthsm2.so');
const SIGN_SESSIONS = resolveHsmOptions(
  { modulePath: 'libsofthsm2.so', tokenLabel: 'x', pin: 'x' },
  { UV_THREADPOOL_SIZE: SERVER_UV_THREADS },
).signing.poolSize;
const TARGETS = { throughput: 5000, ratio: 0.3, p99Ms: 20, rssMb: 300 };

interface CpuSnapshot {
  totalBusy: number;
  signet: number;
  /** Signet's main (JavaScript) thread only: the one that cannot scale past one core. */
  signetMain: number;
  postgres: number;
  bench: number;
}

const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

function processCpuSeconds(pid: number, tid?: number): number {
  try {
    const fields = fs
      .readFileSync(tid === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${tid}/stat`, 'utf8')
      .split(') ')[1]
      .split(' ');
    // utime and stime are fields 14 and 15 of stat (index 11 and 12 after the command).
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
  } catch {
    return 0;
  }
}

/** The embedded postmaster of `dataDir` and its children (backends, WAL writer, checkpointer, …). */
function postgresTree(dataDir: string): number[] {
  const roots = new Set(postgresProcessesFor(dataDir));
  const pids = [...roots];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const ppid = Number(fs.readFileSync(`/proc/${entry}/stat`, 'utf8').split(') ')[1].split(' ')[1]);
      if (roots.has(ppid)) pids.push(Number(entry));
    } catch {
      // gone
    }
  }
  return pids;
}

function cpuSnapshot(signetPid: number, dataDir: string): CpuSnapshot {
  const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const idle = line[3] + line[4];
  const total = line.reduce((a, b) => a + b, 0);
  const usage = process.cpuUsage();
  // This process and its waited-for children (wrk): cutime and cstime are fields 16 and 17.
  const self = fs.readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ');
  const children = (Number(self[13]) + Number(self[14])) / CLK_TCK;
  return {
    totalBusy: (total - idle) / CLK_TCK,
    signet: processCpuSeconds(signetPid),
    signetMain: processCpuSeconds(signetPid, signetPid),
    postgres: postgresTree(dataDir).reduce((sum, pid) => sum + processCpuSeconds(pid), 0),
    bench: (usage.user + usage.system) / 1e6 + children,
  };
}

/** Kilobytes from a /proc status-like file. */
function procKb(file: string, field: string): number {
  try {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync(file, 'utf8'));
    return match ? Number(match[1]) : 0;
  } catch {
    return 0;
  }
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function median(values: number[]): number {
  return [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
}

/** write(8 KiB) + fdatasync in a loop, in the directory PostgreSQL writes its WAL to. */
function fsyncLatency(dir: string, iterations = 300): { p50Ms: number; p99Ms: number } {
  const file = path.join(dir, `.fsync-probe-${process.pid}`);
  const fd = fs.openSync(file, 'w');
  const block = Buffer.alloc(8192, 1);
  const samples: number[] = [];
  try {
    for (let i = 0; i < iterations; i++) {
      const start = performance.now();
      fs.writeSync(fd, block, 0, block.length, (i % 16) * block.length);
      fs.fdatasyncSync(fd);
      samples.push(performance.now() - start);
    }
  } finally {
    fs.closeSync(fd);
    fs.rmSync(file, { force: true });
  }
  samples.sort((a, b) => a - b);
  return { p50Ms: percentile(samples, 50), p99Ms: percentile(samples, 99) };
}

/**
 * SIGNET_BENCH_CPU_PROF=<dir>: the server runs under the V8 profiler (--cpu-prof is not allowed in
 * NODE_OPTIONS, so a launcher starts it through the inspector) and writes a .cpuprofile at exit.
 */
function profilingLauncher(dataDir: string, outDir: string): string {
  const launcher = path.join(dataDir, 'profiled-main.js');
  fs.mkdirSync(outDir, { recursive: true });
  fs.writeFileSync(
    launcher,
    `const inspector = require('node:inspector');
const fs = require('node:fs');
const session = new inspector.Session();
session.connect();
session.post('Profiler.enable');
session.post('Profiler.setSamplingInterval', { interval: 200 });
session.post('Profiler.start');
process.on('exit', () => session.post('Profiler.stop', (error, result) => {
  if (!error) fs.writeFileSync(${JSON.stringify(path.join(outDir, 'signet-'))} + process.pid + '.cpuprofile', JSON.stringify(result.profile));
}));
require(${JSON.stringify(path.join(PROJECT_ROOT, 'dist', 'src', 'main.js'))});
`,
  );
  return launcher;
}

async function http(
  url: string,
  token: string,
  body: unknown,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: response.status, json: (await response.json()) as Record<string, unknown> };
}

/** Raw pkcs11js, synchronous C_SignInit + C_Sign back to back, one session per worker thread. */
const RAW_WORKER = `
const { parentPort, workerData: w } = require('node:worker_threads');
const pkcs11js = require(w.pkcs11jsPath);
const p = new pkcs11js.PKCS11();
p.load(w.modulePath);
try { p.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK }); } catch (e) { if (!/ALREADY_INITIALIZED/.test(e.message)) throw e; }
const slot = p.C_GetSlotList(true).find((s) => p.C_GetTokenInfo(s).label.replace(/[\\s\\u0000]+$/, '') === w.tokenLabel);
const session = p.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION);
try { p.C_Login(session, pkcs11js.CKU_USER, w.pin); } catch (e) { if (!/ALREADY_LOGGED_IN/.test(e.message)) throw e; }
p.C_FindObjectsInit(session, [{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY }, { type: pkcs11js.CKA_ID, value: Buffer.from(w.keyId, 'hex') }]);
const key = p.C_FindObjects(session, 1)[0];
p.C_FindObjectsFinal(session);
const digest = Buffer.from(w.digest, 'hex');
const out = Buffer.alloc(128);
const signOnce = () => { p.C_SignInit(session, { mechanism: pkcs11js.CKM_ECDSA }, key); p.C_Sign(session, digest, out); };
parentPort.once('message', (windowMs) => {
  const warmupEnd = performance.now() + 300;
  while (performance.now() < warmupEnd) signOnce();
  const start = performance.now();
  const deadline = start + windowMs;
  let ops = 0;
  while (performance.now() < deadline) { signOnce(); ops++; }
  const elapsed = performance.now() - start;
  p.C_CloseSession(session);
  parentPort.postMessage({ ops, elapsed });
});
parentPort.postMessage('ready');
`;

async function rawPkcs11(workerData: Record<string, unknown>): Promise<number> {
  const workers = Array.from({ length: RAW_THREADS }, () => new Worker(RAW_WORKER, { eval: true, workerData }));
  await Promise.all(
    workers.map(
      (worker) =>
        new Promise<void>((resolve, reject) => (worker.once('error', reject), worker.once('message', () => resolve()))),
    ),
  );
  const results = await Promise.all(
    workers.map(
      (worker) =>
        new Promise<{ ops: number; elapsed: number }>(
          (resolve, reject) => (
            worker.once('error', reject),
            worker.once('message', resolve),
            worker.postMessage(RAW_WINDOW_MS)
          ),
        ),
    ),
  );
  await Promise.all(workers.map((worker) => worker.terminate()));
  return results.reduce((sum, r) => sum + r.ops / (r.elapsed / 1000), 0);
}

/** Main-thread CPU of this process, µs (for the in-process breakdown). */
function ownMainThreadCpuUs(): number {
  return processCpuSeconds(process.pid, process.pid) * 1e6;
}

interface Breakdown {
  name: string;
  perSecond: number;
  mainUs: number;
}

/**
 * Where a signature's main-thread time goes, measured in this process on a fresh Signet (same
 * HSM settings, 32 callers, no HTTP): the key store alone, the audit log alone, and the
 * signing service (validation + key store + audit + response text). The HTTP rows above add
 * Fastify/Nest, authentication, the rate limiter and request metrics on top.
 */
async function inProcessBreakdown(): Promise<{ breakdown: Breakdown[]; raw: number[] }> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'signet-bench-inproc-'));
  const config = loadConfig({
    SIGNET_DATA_DIR: dataDir,
    SIGNET_LOG_LEVEL: 'warn',
    SIGNET_AUDIT_CHECKPOINT_INTERVAL_SECONDS: '0',
  });
  const logger = createLogger('warn', new Writable({ write: (_chunk, _encoding, done) => done() }));
  const platform = await startPlatform(config, logger);
  const app = await createApp({ config, databaseUrl: platform.databaseUrl, hsm: platform.hsm, role: 'cli' }, logger);
  try {
    const admin = fs.readFileSync(path.join(dataDir, 'admin.token'), 'utf8').trim();
    const created = await app.inject({
      method: 'POST',
      url: '/v1/keys',
      headers: { authorization: `Bearer ${admin}` },
      payload: { name: 'inproc', keySpec: 'EC-256', subject: { C: 'US', ST: 'Washington', O: 'Bench', CN: 'inproc' } },
    });
    if (created.statusCode !== 201) throw new Error(`in-process key: ${created.statusCode} ${created.body}`);
    const key = await app.get(ActiveKeyCache).get('inproc');
    const keyStore = app.get<KeyStore>(KEY_STORE);
    const audit = app.get(AuditService);
    const signing = app.get(SigningService);
    const principal = new TokenPrincipal(
      '00000000-0000-4000-8000-000000000001',
      'bench',
      'signer',
      ['inproc'],
      '127.0.0.1',
    );
    const digest = createHash('sha256').update('in-process').digest();
    const body = { digest: digest.toString('base64'), hashAlgorithm: 'SHA-256' };
    const data: SignEventData = {
      version: 1,
      keySpec: 'EC-256',
      algorithm: 'ECDSA-SHA-256',
      digest: `sha256:${digest.toString('hex')}`,
      mode: 'digest',
      signatureFormat: 'raw',
      signature: 'A'.repeat(86) + '==',
      artifact: null,
    };
    const measure = async (name: string, operation: () => Promise<unknown>, count = 15_000): Promise<Breakdown> => {
      let started = 0;
      const loop = async () => {
        while (started < count) {
          started++;
          await operation();
        }
      };
      await Promise.all(Array.from({ length: 32 }, loop)); // warm-up with the same count
      started = 0;
      const cpu0 = ownMainThreadCpuUs();
      const t0 = performance.now();
      await Promise.all(Array.from({ length: 32 }, loop));
      const result = {
        name,
        perSecond: count / ((performance.now() - t0) / 1000),
        mainUs: (ownMainThreadCpuUs() - cpu0) / count,
      };
      process.stderr.write(
        `in-process ${name}: ${result.perSecond.toFixed(0)}/s, ${result.mainUs.toFixed(0)} µs main thread\n`,
      );
      return result;
    };
    const breakdown = [
      await measure('key store `sign()` (a job to a signing thread)', () =>
        keyStore.sign(key.keyUri, digest, { hash: 'SHA-256' }),
      ),
      await measure('audit `recordSign()` of a sign event (group commit; what SigningService calls)', () =>
        audit.recordSign(principal.auditActor, 'inproc', data),
      ),
      await measure('`SigningService.sign()` (checks + key store + audit + response text)', () =>
        signing.sign('inproc', body, principal),
      ),
    ];

    // Raw pkcs11js on the same token while this Signet idles (its module stays initialised and
    // logged in; the workers share it, as in bench/hsm.bench.ts).
    const rawKey = await keyStore.createKey({ spec: 'EC-256', label: 'bench-raw-ec256' });
    const workerData = {
      pkcs11jsPath: require.resolve('pkcs11js'),
      modulePath: platform.hsm.modulePath,
      tokenLabel: platform.hsm.tokenLabel,
      pin: platform.hsm.pin,
      keyId: rawKey.id,
      digest: createHash('sha256').update('raw').digest('hex'),
    };
    const raw: number[] = [];
    for (let run = 0; run < RAW_RUNS; run++) {
      raw.push(await rawPkcs11(workerData));
      process.stderr.write(`raw pkcs11js run ${run + 1}: ${raw[run].toFixed(0)} signatures/s\n`);
    }
    return { breakdown, raw };
  } finally {
    await app.close();
    await platform.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

interface Row {
  connections: number;
  throughput: number;
  p50: number;
  p99: number;
  ok: number;
  other: string;
  peakRssMb: number;
  cpu: { signet: number; postgres: number; bench: number; others: number; wall: number };
  /** Signet main-thread CPU per 2xx response, µs. */
  mainUsPerSign: number;
  /** CPU of the whole machine (every process) per 2xx response, µs. */
  totalUsPerSign: number;
}

async function main(): Promise<void> {
  const started = Date.now();
  if (!fs.existsSync(path.join(PROJECT_ROOT, 'dist', 'src', 'main.js')))
    throw new Error('dist/src/main.js is missing: run `npm run build` first (npm run bench does)');
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'signet-bench-signing-'));
  const loadBefore = fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  const port = await freePort();
  const server = new ServerProcess(
    port,
    {
      SIGNET_DATA_DIR: dataDir,
      SIGNET_LOG_LEVEL: 'warn',
      SIGNET_LOG_REQUESTS: 'false',
      UV_THREADPOOL_SIZE: SERVER_UV_THREADS,
      NODE_OPTIONS: `--max-old-space-size=${SERVER_HEAP_MB}`,
    },
    process.env.SIGNET_BENCH_CPU_PROF ? profilingLauncher(dataDir, process.env.SIGNET_BENCH_CPU_PROF) : undefined,
  );
  const rows: Row[] = [];
  const settings: Record<string, string> = {};
  let auditRows = 0;
  let totalOk = 0;
  let pgMemory = { rssMb: 0, pssMb: 0 };
  let fsync = { p50Ms: NaN, p99Ms: NaN };
  try {
    await server.waitReady(120_000);
    const admin = fs.readFileSync(path.join(dataDir, 'admin.token'), 'utf8').trim();
    const base = server.url;
    const key = await fetch(`${base}/v1/keys`, {
      method: 'POST',
      headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        name: 'bench-ec256',
        keySpec: 'EC-256',
        subject: { C: 'US', ST: 'Washington', O: 'Bench', CN: 'bench-ec256' },
      }),
    });
    if (key.status !== 201) throw new Error(`creating the key failed: ${key.status} ${await key.text()}`);
    const tokenResponse = await fetch(`${base}/v1/tokens`, {
      method: 'POST',
      headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'bench-signer', role: 'signer', keys: ['bench-ec256'] }),
    });
    const signer = ((await tokenResponse.json()) as { token: string }).token;
    const body = JSON.stringify({
      digest: createHash('sha256').update('bench artifact').digest('base64'),
      hashAlgorithm: 'SHA-256',
    });
    const probe = await http(`${base}/v1/keys/bench-ec256/sign`, signer, JSON.parse(body));
    if (probe.status !== 200) throw new Error(`probe sign failed: ${probe.status} ${JSON.stringify(probe.json)}`);
    totalOk++;

    const postgresDir = path.join(dataDir, 'postgres');
    const owner = JSON.parse(fs.readFileSync(path.join(postgresDir, 'owner.json'), 'utf8')) as { port: number };
    const password = fs.readFileSync(path.join(postgresDir, 'password'), 'utf8').trim();
    const pg = new Client({ host: '127.0.0.1', port: owner.port, user: 'signet', password, database: 'signet' });
    await pg.connect();
    for (const name of ['fsync', 'synchronous_commit', 'wal_sync_method', 'shared_buffers'])
      settings[name] = (await pg.query(`SHOW ${name}`)).rows[0][name];

    const request = {
      url: `${base}/v1/keys/bench-ec256/sign`,
      method: 'POST',
      headers: { authorization: `Bearer ${signer}`, 'content-type': 'application/json' },
      body,
    };
    const warm = await runLoad(request, 32, WARMUP_S);
    totalOk += warm.ok;
    process.stderr.write(`warm-up (${LOAD_GENERATOR}): ${(warm.ok / warm.duration).toFixed(0)} signatures/s\n`);

    for (const connections of CONNECTIONS) {
      let peakRssKb = 0;
      const sampler = setInterval(
        () => (peakRssKb = Math.max(peakRssKb, procKb(`/proc/${server.pid}/status`, 'VmRSS'))),
        250,
      );
      const before = cpuSnapshot(server.pid, dataDir);
      const wallStart = performance.now();
      const result = await runLoad(request, connections, WINDOW_S);
      const wall = (performance.now() - wallStart) / 1000;
      const after = cpuSnapshot(server.pid, dataDir);
      clearInterval(sampler);
      totalOk += result.ok;
      const cpu = {
        signet: (after.signet - before.signet) / wall,
        postgres: (after.postgres - before.postgres) / wall,
        bench: (after.bench - before.bench) / wall,
        others: 0,
        wall,
      };
      cpu.others = Math.max(0, (after.totalBusy - before.totalBusy) / wall - cpu.signet - cpu.postgres - cpu.bench);
      rows.push({
        connections,
        throughput: result.ok / result.duration,
        p50: result.p50,
        p99: result.p99,
        ok: result.ok,
        other: result.other.join(', ') || 'none',
        peakRssMb: peakRssKb / 1024,
        cpu,
        mainUsPerSign: ((after.signetMain - before.signetMain) * 1e6) / Math.max(1, result.ok),
        totalUsPerSign: ((after.totalBusy - before.totalBusy) * 1e6) / Math.max(1, result.ok),
      });
      process.stderr.write(
        `${connections} connections: ${(result.ok / result.duration).toFixed(0)} signatures/s, p50 ${result.p50} ms, p99 ${result.p99} ms\n`,
      );
    }

    const pgPids = postgresTree(dataDir);
    pgMemory = {
      rssMb: pgPids.reduce((sum, pid) => sum + procKb(`/proc/${pid}/status`, 'VmRSS'), 0) / 1024,
      pssMb: pgPids.reduce((sum, pid) => sum + procKb(`/proc/${pid}/smaps_rollup`, 'Pss'), 0) / 1024,
    };
    auditRows = Number((await pg.query(`SELECT count(*) AS n FROM audit_events WHERE type = 'sign'`)).rows[0].n);
    await pg.end();
    fsync = fsyncLatency(path.join(postgresDir, 'data', 'pg_wal'));
  } finally {
    server.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([server.exited, new Promise((resolve) => (timer = setTimeout(resolve, 30_000)))]);
    clearTimeout(timer);
  }

  fs.rmSync(dataDir, { recursive: true, force: true });

  // The server is stopped: in-process breakdown, then raw pkcs11js, on one SoftHSM2 token (SoftHSM2
  // reads its configuration once per process, so both use the same one).
  const { breakdown, raw } = await inProcessBreakdown();
  const rawMedian = median(raw);

  const at32 = rows.find((r) => r.connections === 32)!;
  const verdict = (ok: boolean) => (ok ? 'met' : '**NOT met**');
  const lines: string[] = [];
  lines.push('## Signing API (`bench/signing.bench.ts`)', '');
  lines.push(
    `${os.cpus()[0]?.model ?? 'CPU'}, ${os.availableParallelism()} cores, Node ${process.version}; ${new Date().toISOString().slice(0, 10)}. ` +
      `A real Signet process (dist/, embedded PostgreSQL, SoftHSM2 token, UV_THREADPOOL_SIZE=${SERVER_UV_THREADS}, V8 old space capped at ${SERVER_HEAP_MB} MB as \`npm start\` does, signatures on ${SIGN_THREADS} signing threads (SIGNET_HSM_SIGN_WORKERS=auto) with ${SIGN_SESSIONS} HSM sessions, ` +
      'log level warn, request logging off) with bearer-token auth, the per-token rate limiter and the hash-chained audit log (each signature returned only after its row committed). ' +
      `${LOAD_GENERATOR === 'wrk' ? 'wrk (2 threads, same machine, a child of this script)' : 'autocannon (same machine, same process as this script)'} sends \`POST /v1/keys/bench-ec256/sign\` with an EC-256 digest; ${WARMUP_S} s warm-up, then ${WINDOW_S} s per row. ` +
      `Load average before the run: ${loadBefore}.`,
    '',
  );
  lines.push(
    `| connections | signatures/s (2xx) | p50 ms | p99 ms | non-2xx / errors | Signet peak RSS MB | CPU cores used: Signet / PostgreSQL / ${LOAD_GENERATOR} / other processes | Signet main-thread CPU per signature | whole-machine CPU per signature |`,
    '|---:|---:|---:|---:|---|---:|---|---:|---:|',
  );
  for (const row of rows) {
    lines.push(
      `| ${row.connections} | ${row.throughput.toFixed(0)} | ${row.p50} | ${row.p99} | ${row.other} | ${row.peakRssMb.toFixed(0)} | ` +
        `${row.cpu.signet.toFixed(2)} / ${row.cpu.postgres.toFixed(2)} / ${row.cpu.bench.toFixed(2)} / ${row.cpu.others.toFixed(2)} | ${row.mainUsPerSign.toFixed(0)} µs | ${row.totalUsPerSign.toFixed(0)} µs |`,
    );
  }
  lines.push(
    `| raw pkcs11js, synchronous C_SignInit + C_Sign, ${RAW_THREADS} worker threads, Signet server stopped (median of ${RAW_RUNS}: ${raw.map((r) => r.toFixed(0)).join(' / ')}) | ${rawMedian.toFixed(0)} | – | – | – | – | – | – | – |`,
    '',
  );
  const ratio = at32.throughput / rawMedian;
  const peakRss = Math.max(...rows.map((r) => r.peakRssMb));
  lines.push(
    `- Targets at 32 connections: ${at32.throughput.toFixed(0)} signatures/s vs ≥ ${TARGETS.throughput} (${verdict(at32.throughput >= TARGETS.throughput)}); ` +
      `**${ratio.toFixed(2)}** × raw (≥ ${TARGETS.ratio}: ${verdict(ratio >= TARGETS.ratio)}); p99 ${at32.p99} ms (≤ ${TARGETS.p99Ms}: ${verdict(at32.p99 <= TARGETS.p99Ms)}); ` +
      `Signet peak RSS ${peakRss.toFixed(0)} MB (≤ ${TARGETS.rssMb}: ${verdict(peakRss <= TARGETS.rssMb)}).`,
    `- Embedded PostgreSQL after the runs: ${pgMemory.rssMb.toFixed(0)} MB RSS summed over its processes (shared buffers counted once per process), ${pgMemory.pssMb.toFixed(0)} MB PSS.`,
    `- PostgreSQL: fsync=${settings.fsync}, synchronous_commit=${settings.synchronous_commit}, wal_sync_method=${settings.wal_sync_method}, shared_buffers=${settings.shared_buffers}. ` +
      `Disk under the WAL: write 8 KiB + fdatasync p50 ${fsync.p50Ms.toFixed(3)} ms, p99 ${fsync.p99Ms.toFixed(3)} ms (300 iterations).`,
    `- Where the main thread goes (in-process on a fresh Signet, 32 callers, no HTTP, same run): ` +
      breakdown.map((b) => `${b.name}: ${b.mainUs.toFixed(0)} µs per call (${b.perSecond.toFixed(0)}/s)`).join('; ') +
      `. The rest of the ${at32.mainUsPerSign.toFixed(0)} µs per HTTP signature is the HTTP server (Node and Fastify; the sign route skips Nest's per-request pipeline, src/signing/sign-fast-path.ts), bearer-token authentication, the rate limiter, the request metrics and the kernel's loopback TCP (the response writev wakes the client). ` +
      'One JavaScript thread cannot go past ~1 s of CPU per second, so at ' +
      `${at32.mainUsPerSign.toFixed(0)} µs the ceiling is ~${(1e6 / at32.mainUsPerSign).toFixed(0)} signatures/s on an otherwise idle core; ` +
      `the whole machine (${os.availableParallelism()} cores: Signet's threads, PostgreSQL, the load generator, the kernel's loopback TCP) spent ${at32.totalUsPerSign.toFixed(0)} µs of CPU per signature, a ceiling of ~${((os.availableParallelism() * 1e6) / at32.totalUsPerSign).toFixed(0)} signatures/s.`,
    `- Audit check afterwards: ${auditRows} \`sign\` rows ≥ ${totalOk} 2xx responses (warm-up and probe included): ${auditRows >= totalOk ? 'holds' : '**VIOLATED**'}.`,
    '',
    `Run time ${((Date.now() - started) / 1000).toFixed(0)} s.`,
    '',
  );
  const markdown = lines.join('\n');
  process.stdout.write(markdown);
  fs.mkdirSync(path.join(PROJECT_ROOT, '.bench-out'), { recursive: true });
  fs.writeFileSync(path.join(PROJECT_ROOT, '.bench-out', 'signing.md'), markdown);
  if (auditRows < totalOk) process.exitCode = 1;
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
