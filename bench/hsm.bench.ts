/**
 * HSM signing benchmark: the key store (pooled sessions, async C_Sign on libuv's pool) against raw
 * synchronous pkcs11js signing in two worker threads, OpenSSL's CLI and Node's crypto, for EC-256
 * and RSA-3072, on a throw-away SoftHSM2 token.
 *
 *   UV_THREADPOOL_SIZE=16 npx ts-node --transpile-only bench/hsm.bench.ts
 *
 * Prints a Markdown section and writes it to .bench-out/hsm.md. Bounded: about two minutes on two cores.
 * Then the same for RSA-3072 on openCryptoki's soft token (.bench-out/hsm-opencryptoki.md); one
 * section alone: SIGNET_BENCH_HSM=softhsm or SIGNET_BENCH_HSM=opencryptoki.
 */
import { execFileSync } from 'node:child_process';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { KEY_SPEC_INFO, nodeHashName } from '../src/pki/key-spec';
import type { KeyInfo } from '../src/hsm/key-store';
import { Pkcs11KeyStore } from '../src/hsm/pkcs11-key-store';
import { ensureSoftHsmDevToken, readPinFile } from '../src/hsm/softhsm-dev-token';
import { createOpenCryptokiToken, startOpenCryptoki, stopOpenCryptoki } from '../test/support/opencryptoki';

type BenchSpec = 'EC-256' | 'RSA-3072';
const SPECS: BenchSpec[] = ['EC-256', 'RSA-3072'];
const POOL_SIZES = [1, 2, 4, 8, 16];
const RAW_THREADS = 2;
/** Measurement window per row; RSA needs longer windows for a stable p99 at ~1k ops/s. */
const WINDOW_MS: Record<BenchSpec, number> = { 'EC-256': 2000, 'RSA-3072': 3000 };
const WARMUP_MS = 300;

interface Row {
  spec: BenchSpec;
  path: string;
  concurrency: string;
  opsPerSecond: number;
  p50Ms?: number;
  p99Ms?: number;
  /** Process CPU time (all threads: main, libuv pool, workers) per signature; robust to other load on the machine. */
  cpuUsPerOp?: number;
}

type Measurement = Omit<Row, 'spec' | 'path' | 'concurrency'>;

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function cpuMicros(usage: NodeJS.CpuUsage): number {
  return usage.user + usage.system;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

function digestFor(spec: BenchSpec): Buffer {
  return createHash(nodeHashName(KEY_SPEC_INFO[spec].hash)).update(`bench ${spec}`).digest();
}

/** Closed loop: `concurrency` callers sign back to back for `windowMs`; latency per call. */
async function benchKeyStore(
  store: Pkcs11KeyStore,
  key: KeyInfo,
  concurrency: number,
  windowMs: number,
): Promise<Measurement> {
  const digest = digestFor(key.spec as BenchSpec);
  const hash = KEY_SPEC_INFO[key.spec].hash;
  const run = async (ms: number, latencies?: number[]): Promise<number> => {
    const deadline = performance.now() + ms;
    let ops = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (performance.now() < deadline) {
          const start = performance.now();
          await store.sign(key.uri, digest, { hash });
          latencies?.push(performance.now() - start);
          ops++;
        }
      }),
    );
    return ops;
  };
  await run(WARMUP_MS);
  const latencies: number[] = [];
  const cpu = process.cpuUsage();
  const start = performance.now();
  const ops = await run(windowMs, latencies);
  const elapsed = (performance.now() - start) / 1000;
  const cpuUsPerOp = cpuMicros(process.cpuUsage(cpu)) / ops;
  const sorted = Float64Array.from(latencies).sort();
  return { opsPerSecond: ops / elapsed, p50Ms: percentile(sorted, 50), p99Ms: percentile(sorted, 99), cpuUsPerOp };
}

/**
 * Worker body for the comparisons, plain JavaScript (eval'd). Raw pkcs11js: each thread loads the
 * module and calls C_Initialize, which the main thread already did (CKR_CRYPTOKI_ALREADY_INITIALIZED:
 * threads share the process's library, and its login), opens its own session and signs
 * synchronously. It never finalises: that would pull the library from under the other threads.
 */
const WORKER_SOURCE = `
const { parentPort, workerData: w } = require('node:worker_threads');
const crypto = require('node:crypto');
let signOnce;
let cleanup = () => {};
if (w.mode === 'pkcs11') {
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
  const mechanism = w.ec
    ? { mechanism: pkcs11js.CKM_ECDSA }
    : { mechanism: pkcs11js.CKM_RSA_PKCS_PSS, parameter: { type: pkcs11js.CK_PARAMS_RSA_PSS, hashAlg: pkcs11js.CKM_SHA384, mgf: pkcs11js.CKG_MGF1_SHA384, saltLen: 48 } };
  const digest = Buffer.from(w.digest, 'hex');
  const out = Buffer.alloc(512);
  signOnce = () => { p.C_SignInit(session, mechanism, key); p.C_Sign(session, digest, out); };
  cleanup = () => p.C_CloseSession(session);
} else {
  const key = crypto.createPrivateKey(w.pem);
  const message = Buffer.from('bench message');
  const options = w.ec ? { key } : { key, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: 48 };
  signOnce = () => crypto.sign(w.hash, message, options);
}
parentPort.once('message', () => {
  const warmupEnd = performance.now() + w.warmupMs;
  while (performance.now() < warmupEnd) signOnce();
  parentPort.postMessage('warm');
  parentPort.once('message', (windowMs) => {
    const latencies = [];
    const start = performance.now();
    const deadline = start + windowMs;
    let ops = 0;
    while (performance.now() < deadline) {
      const t = performance.now();
      signOnce();
      latencies.push(performance.now() - t);
      ops++;
    }
    const elapsed = performance.now() - start;
    cleanup();
    parentPort.postMessage({ ops, elapsed, latencies: Float64Array.from(latencies) });
  });
});
parentPort.postMessage('ready');
`;

/** Runs `threads` workers in parallel (started together) and sums their throughput. */
async function benchThreads(
  threads: number,
  workerData: Record<string, unknown>,
  windowMs: number,
): Promise<Measurement> {
  const workers: Worker[] = [];
  // One after the other: a thread with its own module instance initialises it and logs in.
  for (let i = 0; i < threads; i++) {
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { ...workerData, warmupMs: WARMUP_MS } });
    workers.push(worker);
    await new Promise<void>((resolve, reject) => {
      worker.once('message', () => resolve());
      worker.once('error', reject);
    });
  }
  const next = <T>(worker: Worker, send?: unknown): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      worker.once('error', reject);
      worker.once('message', (message: T) => {
        worker.off('error', reject);
        resolve(message);
      });
      if (send !== undefined) worker.postMessage(send);
    });
  await Promise.all(workers.map((worker) => next(worker, 'warm up')));
  // Everything is warm: the CPU measured from here on is the measured window's.
  const cpu = process.cpuUsage();
  const results = await Promise.all(
    workers.map((worker) => next<{ ops: number; elapsed: number; latencies: Float64Array }>(worker, windowMs)),
  );
  const cpuUsed = cpuMicros(process.cpuUsage(cpu));
  // One at a time: a thread's exit unloads its own module instance, and two SoftHSM2 instances must
  // not tear down at once (they share OpenSSL's state; the key store serialises the same way).
  for (const worker of workers) await worker.terminate();
  const opsPerSecond = results.reduce((sum, r) => sum + r.ops / (r.elapsed / 1000), 0);
  const ops = results.reduce((sum, r) => sum + r.ops, 0);
  const all = Float64Array.from(results.flatMap((r) => Array.from(r.latencies))).sort();
  return { opsPerSecond, p50Ms: percentile(all, 50), p99Ms: percentile(all, 99), cpuUsPerOp: cpuUsed / ops };
}

/** `openssl speed -multi N -mr`: sign/s summed over N processes (OpenSSL's own timing, no latency). */
function benchOpenSsl(spec: BenchSpec, processes: number): number {
  const algorithm = spec === 'EC-256' ? 'ecdsap256' : 'rsa3072';
  const output = execFileSync('openssl', ['speed', '-seconds', '2', '-multi', String(processes), '-mr', algorithm], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  // Summary lines: "+F2:<n>:<bits>:<sign/s>:<verify/s>" (RSA), "+F4:..." (ECDSA), the last one summed over processes.
  const tag = spec === 'EC-256' ? '+F4:' : '+F2:';
  const line = output
    .split('\n')
    .filter((l) => l.startsWith(tag))
    .pop();
  if (!line) throw new Error(`unexpected openssl speed output for ${algorithm}`);
  return Number(line.split(':')[3]);
}

function sh(command: string, args: string[]): string {
  try {
    return execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return 'unknown';
  }
}

function fmt(value: number | undefined, digits: number): string {
  return value === undefined || Number.isNaN(value) ? '–' : value.toFixed(digits);
}

/** The key store's two signing paths (SIGNET_HSM_SIGN_WORKERS): its default for SoftHSM2 first. */
const SIGNING_MODES = [
  {
    path: `key store, ${RAW_THREADS} signing threads, each on its own module instance (default for SoftHSM2)`,
    signWorkers: RAW_THREADS,
    signThreadModule: 'own',
  },
  {
    path: `key store, ${RAW_THREADS} signing threads sharing the process's module instance (SIGNET_HSM_SIGN_THREAD_MODULE=shared)`,
    signWorkers: RAW_THREADS,
    signThreadModule: 'shared',
  },
  {
    path: "key store, pkcs11js's async C_Sign on libuv's pool (SIGNET_HSM_SIGN_WORKERS=0)",
    signWorkers: 0,
    signThreadModule: 'auto',
  },
] as const;

/** Pool sizes of the openCryptoki sweep (its soft token signs RSA-3072 in a few ms: fewer rows than SoftHSM2's). */
const OCK_POOL_SIZES = [1, 2, 4, 8];
const OCK_SIGNING_MODES = SIGNING_MODES.filter((mode) => mode.signThreadModule !== 'own');

/**
 * openCryptoki's soft token, RSA-3072 only (it has no EC): the key store against raw synchronous
 * pkcs11js in two worker threads, same run. pkcsslotd is started and stopped as in the tests
 * (test/support/opencryptoki.ts: the system token is wiped before and after). No own-instance rows:
 * copies of libopencryptoki share one token library (docs/hsm.md).
 */
async function benchOpenCryptoki(): Promise<string> {
  const started = Date.now();
  const loadBefore = loadavg()[0];
  const spec: BenchSpec = 'RSA-3072';
  const rows: Row[] = [];
  startOpenCryptoki();
  try {
    const token = createOpenCryptokiToken();
    const base = { modulePath: token.modulePath, tokenLabel: token.tokenLabel, pin: token.pin };
    const owner = new Pkcs11KeyStore({ ...base, poolSize: 1, signWorkers: 0 });
    await owner.open();
    const key = await owner.createKey({ spec, label: 'bench-ock-RSA-3072' });
    const rawData = {
      mode: 'pkcs11',
      pkcs11jsPath: require.resolve('pkcs11js'),
      modulePath: token.modulePath,
      tokenLabel: token.tokenLabel,
      pin: token.pin,
      keyId: key.id,
      ec: false,
      digest: digestFor(spec).toString('hex'),
    };
    const rawRuns: Measurement[] = [];
    const rawRun = async (): Promise<void> => {
      rawRuns.push(await benchThreads(RAW_THREADS, rawData, WINDOW_MS[spec]));
      process.stderr.write(
        `openCryptoki ${spec} raw run ${rawRuns.length}: ${rawRuns[rawRuns.length - 1].opsPerSecond.toFixed(0)} ops/s\n`,
      );
    };
    await rawRun();
    for (const mode of OCK_SIGNING_MODES) {
      for (const poolSize of OCK_POOL_SIZES) {
        const store = new Pkcs11KeyStore({
          ...base,
          poolSize,
          signWorkers: mode.signWorkers,
          signThreadModule: mode.signThreadModule,
        });
        await store.open();
        const result = await benchKeyStore(store, key, poolSize, WINDOW_MS[spec]);
        await store.close();
        rows.push({
          spec,
          path: mode.path.replace(
            ' (SIGNET_HSM_SIGN_WORKERS=0)',
            ' (SIGNET_HSM_SIGN_WORKERS=0; default for vendor modules)',
          ),
          concurrency: `${poolSize} session${poolSize > 1 ? 's' : ''}`,
          ...result,
        });
        process.stderr.write(
          `openCryptoki ${spec} ${mode.path}, pool ${poolSize}: ${result.opsPerSecond.toFixed(0)} ops/s\n`,
        );
      }
      await rawRun();
    }
    await owner.close();
    const rawMedian = rawRuns.find((r) => r.opsPerSecond === median(rawRuns.map((x) => x.opsPerSecond))) as Measurement;
    rows.push({
      spec,
      path: `raw pkcs11js, synchronous (median of ${rawRuns.length} runs: ${rawRuns.map((r) => r.opsPerSecond.toFixed(0)).join(' / ')})`,
      concurrency: `${RAW_THREADS} worker threads`,
      ...rawMedian,
    });
  } finally {
    stopOpenCryptoki();
  }
  const best = rows.filter((r) => r.path.startsWith('key store')).sort((a, b) => b.opsPerSecond - a.opsPerSecond)[0];
  const raw = rows[rows.length - 1];
  const lines = ['## HSM signing on openCryptoki (`bench/hsm.bench.ts`, section `opencryptoki`)', ''];
  lines.push(
    `Machine: ${sh('sh', ['-c', "lscpu | sed -n 's/^Model name: *//p'"])}, ${availableParallelism()} cores, Node ${process.version}, ` +
      `openCryptoki ${sh('sh', ['-c', "dpkg-query -W -f='${Version}' opencryptoki"])} soft token (libopencryptoki.so, pkcsslotd), RSA-3072 (the token has no EC); ` +
      `UV_THREADPOOL_SIZE=${process.env.UV_THREADPOOL_SIZE ?? '(unset: 4)'}; ${new Date().toISOString().slice(0, 10)}. Load average (1 min) ${loadBefore.toFixed(1)} at the start, ${loadavg()[0].toFixed(1)} at the end` +
      (Math.max(loadBefore, loadavg()[0]) > availableParallelism() / 2
        ? ' — **the machine was busy with other work: treat absolute figures with care; CPU µs per op is less sensitive**.'
        : '.'),
    '',
    "Same measurement as the SoftHSM2 section: key-store rows with as many callers as sessions, raw rows `C_SignInit` + `C_Sign` back to back in two worker threads sharing the process's instance, interleaved with the sweep (before it and after each mode).",
    '',
    '| key | path | parallelism | sign ops/s | p50 ms | p99 ms | CPU µs/op |',
    '|---|---|---|---:|---:|---:|---:|',
  );
  for (const row of rows) {
    lines.push(
      `| ${row.spec} | ${row.path} | ${row.concurrency} | ${row.opsPerSecond.toFixed(0)} | ${fmt(row.p50Ms, 3)} | ${fmt(row.p99Ms, 3)} | ${fmt(row.cpuUsPerOp, 0)} |`,
    );
  }
  lines.push(
    '',
    `- RSA-3072 on openCryptoki: key store best ${best.opsPerSecond.toFixed(0)} ops/s (${best.path.replace(/^key store, /, '')}, ${best.concurrency}) = **${(best.opsPerSecond / raw.opsPerSecond).toFixed(2)}** × raw pkcs11js median ${raw.opsPerSecond.toFixed(0)} ops/s.`,
    '',
    `Run time ${((Date.now() - started) / 1000).toFixed(0)} s.`,
    '',
  );
  return lines.join('\n');
}

/**
 * Sections: SIGNET_BENCH_HSM=softhsm or opencryptoki runs one of them (default: both). Each writes
 * its own file under .bench-out/, so bench/run.ts replaces only that section of docs/benchmarks.md.
 */
async function main(): Promise<void> {
  const only = process.env.SIGNET_BENCH_HSM;
  if (only !== undefined && only !== 'softhsm' && only !== 'opencryptoki')
    throw new Error("SIGNET_BENCH_HSM must be 'softhsm' or 'opencryptoki'");
  if (only !== 'opencryptoki') await benchSoftHsm();
  if (only !== 'softhsm') {
    const markdown = await benchOpenCryptoki();
    process.stdout.write(markdown);
    mkdirSync('.bench-out', { recursive: true });
    writeFileSync(join('.bench-out', 'hsm-opencryptoki.md'), markdown);
  }
}

async function benchSoftHsm(): Promise<void> {
  const started = Date.now();
  const loadBefore = loadavg()[0];
  const uvThreads = process.env.UV_THREADPOOL_SIZE ?? '(unset: 4)';
  const dataDir = mkdtempSync(join(tmpdir(), 'signet-bench-'));
  const rows: Row[] = [];
  try {
    const dev = await ensureSoftHsmDevToken({ dataDir, label: 'signet-bench' });
    const pin = readPinFile(dev.pinFile);
    const base = { modulePath: dev.modulePath, tokenLabel: dev.tokenLabel, pin };
    // This store keeps the token logged in for the whole run and owns the keys.
    const owner = new Pkcs11KeyStore({ ...base, poolSize: 1 });
    await owner.open();
    const keys = {} as Record<BenchSpec, KeyInfo>;
    for (const spec of SPECS) keys[spec] = await owner.createKey({ spec, label: `bench-${spec}` });

    for (const spec of SPECS) {
      const rawData = {
        mode: 'pkcs11',
        pkcs11jsPath: require.resolve('pkcs11js'),
        modulePath: dev.modulePath,
        tokenLabel: dev.tokenLabel,
        pin,
        keyId: keys[spec].id,
        ec: spec === 'EC-256',
        digest: digestFor(spec).toString('hex'),
      };
      // Raw runs interleaved with the pool sweep, so load from elsewhere on the machine hits both alike.
      // Two kinds: the baseline (threads sharing the process's module instance) and threads
      // each on their own instance, which is what the key store's default now does.
      const rawRuns: Measurement[] = [];
      const ownRuns: Measurement[] = [];
      const rawRun = async (): Promise<void> => {
        const result = await benchThreads(RAW_THREADS, rawData, WINDOW_MS[spec]);
        rawRuns.push(result);
        const own = await benchThreads(RAW_THREADS, { ...rawData, ownModule: true }, WINDOW_MS[spec]);
        ownRuns.push(own);
        process.stderr.write(
          `${spec} raw run ${rawRuns.length}: ${result.opsPerSecond.toFixed(0)} ops/s shared, ${own.opsPerSecond.toFixed(0)} own instances\n`,
        );
      };
      await rawRun();
      for (const [modeIndex, mode] of SIGNING_MODES.entries()) {
        for (const [index, poolSize] of POOL_SIZES.entries()) {
          const store = new Pkcs11KeyStore({
            ...base,
            poolSize,
            signWorkers: mode.signWorkers,
            signThreadModule: mode.signThreadModule,
          });
          await store.open();
          // As many callers as sessions: latency is service time, not queueing behind the pool.
          const result = await benchKeyStore(store, keys[spec], poolSize, WINDOW_MS[spec]);
          await store.close();
          rows.push({ spec, path: mode.path, concurrency: `${poolSize} session${poolSize > 1 ? 's' : ''}`, ...result });
          process.stderr.write(`${spec} ${mode.path}, pool ${poolSize}: ${result.opsPerSecond.toFixed(0)} ops/s\n`);
          // Three raw runs in all (median of 3): before the sweeps, after the second and after the last.
          if (index === POOL_SIZES.length - 1 && modeIndex > 0) await rawRun();
        }
      }
      const rawMedian = rawRuns.find(
        (r) => r.opsPerSecond === median(rawRuns.map((x) => x.opsPerSecond)),
      ) as Measurement;
      rows.push({
        spec,
        path: `raw pkcs11js, synchronous (median of ${rawRuns.length} runs: ${rawRuns.map((r) => r.opsPerSecond.toFixed(0)).join(' / ')})`,
        concurrency: `${RAW_THREADS} worker threads`,
        ...rawMedian,
      });
      const ownMedian = ownRuns.find(
        (r) => r.opsPerSecond === median(ownRuns.map((x) => x.opsPerSecond)),
      ) as Measurement;
      rows.push({
        spec,
        path: `raw pkcs11js, synchronous, each thread on its own module instance (median of ${ownRuns.length} runs: ${ownRuns.map((r) => r.opsPerSecond.toFixed(0)).join(' / ')})`,
        concurrency: `${RAW_THREADS} worker threads`,
        ...ownMedian,
      });

      const pem = (
        spec === 'EC-256'
          ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
          : generateKeyPairSync('rsa', { modulusLength: 3072 })
      ).privateKey.export({ type: 'pkcs8', format: 'pem' });
      const nodeResult = await benchThreads(
        RAW_THREADS,
        { mode: 'node', pem, ec: spec === 'EC-256', hash: nodeHashName(KEY_SPEC_INFO[spec].hash) },
        WINDOW_MS[spec],
      );
      rows.push({
        spec,
        path: 'Node crypto.sign, synchronous (key in memory)',
        concurrency: `${RAW_THREADS} worker threads`,
        ...nodeResult,
      });
      rows.push({
        spec,
        path: 'OpenSSL CLI `openssl speed -multi 2` (key in memory)',
        concurrency: `${RAW_THREADS} processes`,
        opsPerSecond: benchOpenSsl(spec, RAW_THREADS),
      });
    }
    await owner.close();
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }

  const lines: string[] = [];
  lines.push('## HSM signing (`bench/hsm.bench.ts`)', '');
  lines.push(
    `Machine: ${sh('sh', ['-c', "lscpu | sed -n 's/^Model name: *//p'"])}, ${availableParallelism()} cores, Node ${process.version}, ` +
      `${sh('softhsm2-util', ['--version']).replace(/^/, 'SoftHSM2 ')}, ${sh('openssl', ['version'])}; UV_THREADPOOL_SIZE=${uvThreads}; ` +
      `${new Date().toISOString().slice(0, 10)}. Load average (1 min) ${loadBefore.toFixed(1)} at the start, ${loadavg()[0].toFixed(1)} at the end` +
      (Math.max(loadBefore, loadavg()[0]) > availableParallelism() / 2
        ? ' — **the machine was busy with other work: treat absolute figures with care; CPU µs per op is less sensitive**.'
        : '.'),
    '',
  );
  lines.push(
    'Key store rows: as many concurrent callers as sessions, each `sign()` timed end to end (URI lookup, session, then either a job to a signing thread ' +
      'doing C_SignInit + C_Sign synchronously, gathered into batches while the thread is busy, or C_SignInit on the event loop and the async C_Sign). ' +
      "Raw rows: `C_SignInit` + `C_Sign` back to back in worker threads, three runs interleaved with the key-store sweep: the baseline shares the process's " +
      "initialised module (one SoftHSM2 instance: its threads queue on its process-wide mutexes); the second row gives each thread its own instance (a private copy of the module file), as the key store's signing threads now do. " +
      'Keys in SoftHSM2 for all but the last two rows of each key. CPU µs/op: process CPU time (all threads) per signature.',
    '',
  );
  lines.push(
    '| key | path | parallelism | sign ops/s | p50 ms | p99 ms | CPU µs/op |',
    '|---|---|---|---:|---:|---:|---:|',
  );
  for (const row of rows) {
    lines.push(
      `| ${row.spec} | ${row.path} | ${row.concurrency} | ${row.opsPerSecond.toFixed(0)} | ${fmt(row.p50Ms, 3)} | ${fmt(row.p99Ms, 3)} | ${fmt(row.cpuUsPerOp, 0)} |`,
    );
  }
  lines.push('');
  for (const [spec, target] of [
    ['EC-256', 0.75],
    ['RSA-3072', 0.9],
  ] as const) {
    const best = rows
      .filter((r) => r.spec === spec && r.path.startsWith('key store'))
      .sort((a, b) => b.opsPerSecond - a.opsPerSecond)[0];
    const raw = rows.find((r) => r.spec === spec && r.path.startsWith('raw pkcs11js, synchronous (')) as Row;
    const own = rows.find((r) => r.spec === spec && r.path.startsWith('raw pkcs11js, synchronous, each thread')) as Row;
    const ratio = best.opsPerSecond / raw.opsPerSecond;
    const ownRatio = best.opsPerSecond / own.opsPerSecond;
    lines.push(
      `- ${spec}: key store best ${best.opsPerSecond.toFixed(0)} ops/s (${best.path.replace(/^key store, /, '')}, ${best.concurrency}) = **${ratio.toFixed(2)}** × raw pkcs11js median ` +
        `${raw.opsPerSecond.toFixed(0)} ops/s (target ≥ ${target.toFixed(2)}: ${ratio >= target ? 'met' : 'NOT met'}); ` +
        `${ownRatio.toFixed(2)} × raw with each thread on its own module instance (${own.opsPerSecond.toFixed(0)} ops/s; ${ownRatio >= target ? 'also' : 'not'} ≥ ${target.toFixed(2)}).`,
    );
  }
  lines.push('', `Run time ${((Date.now() - started) / 1000).toFixed(0)} s.`, '');
  const markdown = lines.join('\n');
  process.stdout.write(markdown);
  mkdirSync('.bench-out', { recursive: true });
  writeFileSync(join('.bench-out', 'hsm.md'), markdown);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
