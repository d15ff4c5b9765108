import { Worker } from 'node:worker_threads';
import type { HsmLogger } from './hsm-logger';
import type { Handle, Mechanism } from './pkcs11-api';
import { hsmUnavailable } from './pkcs11-errors';
import { markSessionSuspect } from './session-pool';

/**
 * Worker body, plain JavaScript (eval'd, so it runs the same from dist/ and under ts-jest). Each
 * thread loads the PKCS#11 module through its own pkcs11js object — dlopen and C_GetFunctionList
 * only: the library, its C_Initialize and the login belong to the process, which the main thread
 * manages. It never initialises or finalises the library and never opens or closes sessions: the
 * main thread's session pool hands it a session handle per job, one job per session at a time.
 * A job is C_SignInit + C_Sign, synchronously, back to back.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const pkcs11js = require(workerData.pkcs11jsPath);
// Below the event loop (and PostgreSQL) in the scheduler: the event loop feeds these threads and
// commits what they sign; when the CPU is short, it goes first. Linux only; elsewhere, or if the
// kernel refuses, the thread keeps the process's priority.
if (workerData.nice > 0) {
  try {
    const tid = Number(require('node:fs').readlinkSync('/proc/thread-self').split('/').pop());
    const os = require('node:os');
    // Relative to what the thread inherited (the event loop's niceness).
    os.setPriority(tid, Math.min(19, os.getPriority(tid) + workerData.nice));
  } catch {}
}
const p11 = new pkcs11js.PKCS11();
p11.load(workerData.modulePath);
const out = Buffer.alloc(workerData.outputBufferSize);
const EMPTY = Buffer.alloc(0);
const mechanisms = [];
parentPort.on('message', ({ newMechanisms, jobs, count }) => {
  if (newMechanisms) mechanisms.push(...newMechanisms);
  const input = Buffer.from(jobs);
  const signatures = new Array(count);
  const errors = [];
  let size = 0;
  let o = 0;
  for (let i = 0; i < count; i++) {
    const id = input.readUInt32LE(o);
    const mechanism = mechanisms[input[o + 4]];
    const sessionLength = input[o + 5];
    const session = input.subarray(o + 6, o + 6 + sessionLength);
    o += 6 + sessionLength;
    const key = input.subarray(o + 1, o + 1 + input[o]);
    o += 1 + input[o];
    const data = input.subarray(o + 2, o + 2 + input.readUInt16LE(o));
    o += 2 + data.length;
    let method = 'C_SignInit';
    let signature = EMPTY;
    try {
      p11.C_SignInit(session, mechanism, key);
      method = 'C_Sign';
      signature = Buffer.from(p11.C_Sign(session, data, out));
    } catch (e) {
      errors.push({ id, message: String(e && e.message), code: e && e.code, method: (e && e.method) || method });
    }
    signatures[i] = { id, signature };
    size += 6 + signature.length;
  }
  // Exactly sized, so the transferred buffer holds nothing but this batch's answers.
  const results = Buffer.allocUnsafeSlow(size);
  let r = 0;
  for (const { id, signature } of signatures) {
    r = results.writeUInt32LE(id, r);
    r = results.writeUInt16LE(signature.length, r);
    r += signature.copy(results, r);
  }
  parentPort.postMessage({ results: results.buffer, count, errors }, [results.buffer]);
});
parentPort.postMessage('ready');
`;

interface Job {
  id: number;
  session: Handle;
  key: Handle;
  mechanism: Mechanism;
  data: Buffer;
}

/** A batch's results: per job id (u32), signature length (u16, 0 on error), signature; errors beside. */
interface BatchResult {
  results: ArrayBuffer;
  count: number;
  errors: Array<{ id: number; message: string; code?: number; method: string }>;
}

interface Pending {
  resolve: (signature: Buffer) => void;
  reject: (error: Error) => void;
}

/** Batches one thread may have in flight: two keeps it busy while the next batch is on its way. */
const MAX_BATCHES_IN_FLIGHT = 2;
const RESPAWN_DELAY_MS = 1000;
/**
 * Niceness the signing threads add to the event loop's (capped at 19). Under the signing
 * bench on 2 cores this gave 6-8 % more signatures/s at 32 connections: the audit commits and the
 * request handling that gate every response get the CPU first, and the threads have slack.
 */
export const SIGN_THREAD_NICE = 10;

class SignThread {
  readonly pending = new Map<number, Pending>();
  queued: Job[] = [];
  batchesInFlight = 0;
  /** Mechanisms this thread has been sent (it keeps the list; jobs carry an index). */
  knownMechanisms = 0;
  private readonly ready: Promise<void>;

  constructor(
    readonly worker: Worker,
    private readonly onExit: (thread: SignThread, reason: Error) => void,
  ) {
    this.ready = new Promise((resolve, reject) => {
      worker.once('message', (message) => (message === 'ready' ? resolve() : reject(new Error(`unexpected first message ${String(message)}`))));
      worker.once('error', reject);
    });
    worker.on('error', (err) => this.onExit(this, err));
    worker.on('exit', (code) => this.onExit(this, new Error(`signing thread exited (${code})`)));
  }

  started(): Promise<void> {
    return this.ready;
  }

  get load(): number {
    return this.pending.size;
  }
}

/**
 * Signs on a few worker threads, each doing synchronous C_SignInit + C_Sign. With a local software
 * token (SoftHSM2) signing is CPU work, and the async C_Sign of pkcs11js costs the event loop a
 * synchronous C_SignInit plus two libuv hand-offs per signature; here the event loop only posts
 * batches of jobs (gathered while the thread is busy, like group commit) and takes results back.
 * Errors come back with the pkcs11js shape (CKR_ name in the message, code, C_ function), so the
 * key store maps them and the session pool recovers exactly as with the async path.
 */
export class SignWorkerPool {
  private readonly threads: SignThread[] = [];
  private nextId = 1;
  private flushScheduled = false;
  private closed = false;
  /** Mechanism objects are the key store's constants: interned by identity, sent once per thread. */
  private readonly mechanisms: Mechanism[] = [];
  private readonly mechanismIndexes = new Map<Mechanism, number>();

  constructor(
    private readonly modulePath: string,
    private readonly size: number,
    private readonly outputBufferSize: number,
    private readonly logger: HsmLogger,
  ) {}

  get threadCount(): number {
    return this.threads.length;
  }

  async start(): Promise<void> {
    const threads = Array.from({ length: this.size }, () => this.spawn());
    await Promise.all(threads.map((thread) => thread.started()));
  }

  /** Signs `data` with `key` on `session`; the caller holds the session until this settles. */
  sign(session: Handle, key: Handle, mechanism: Mechanism, data: Buffer): Promise<Buffer> {
    if (this.closed || this.threads.length === 0) return Promise.reject(hsmUnavailable('sign', undefined, 'signing threads stopped'));
    const id = this.nextId++;
    let thread = this.threads[0];
    for (let i = 1; i < this.threads.length; i++) if (this.threads[i].load < thread.load) thread = this.threads[i];
    return new Promise<Buffer>((resolve, reject) => {
      thread.pending.set(id, { resolve, reject });
      thread.queued.push({ id, session, key, mechanism, data });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        queueMicrotask(() => this.flush());
      }
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    const threads = this.threads.splice(0);
    await Promise.all(threads.map((thread) => thread.worker.terminate()));
  }

  private flush(): void {
    this.flushScheduled = false;
    for (const thread of this.threads) this.send(thread);
  }

  private send(thread: SignThread): void {
    if (thread.queued.length === 0 || thread.batchesInFlight >= MAX_BATCHES_IN_FLIGHT) return;
    const batch = thread.queued;
    thread.queued = [];
    thread.batchesInFlight++;
    // One buffer per batch, transferred, not cloned: structured clone of a Buffer copies the whole
    // (pooled, 8 KiB) ArrayBuffer under it. Per job: id u32, mechanism index u8, session handle
    // (u8 length + bytes), key handle (same), data (u16 length + bytes).
    let size = 0;
    for (const job of batch) size += 4 + 1 + 1 + job.session.length + 1 + job.key.length + 2 + job.data.length;
    const packed = Buffer.allocUnsafeSlow(size);
    let o = 0;
    for (const job of batch) {
      o = packed.writeUInt32LE(job.id, o);
      o = packed.writeUInt8(this.mechanismIndex(job.mechanism), o);
      o = packed.writeUInt8(job.session.length, o);
      o += job.session.copy(packed, o);
      o = packed.writeUInt8(job.key.length, o);
      o += job.key.copy(packed, o);
      o = packed.writeUInt16LE(job.data.length, o);
      o += job.data.copy(packed, o);
    }
    const newMechanisms = this.mechanisms.length > thread.knownMechanisms ? this.mechanisms.slice(thread.knownMechanisms) : undefined;
    thread.knownMechanisms = this.mechanisms.length;
    thread.worker.postMessage({ newMechanisms, jobs: packed.buffer, count: batch.length }, [packed.buffer]);
  }

  private mechanismIndex(mechanism: Mechanism): number {
    let index = this.mechanismIndexes.get(mechanism);
    if (index === undefined) {
      index = this.mechanisms.push(mechanism) - 1;
      this.mechanismIndexes.set(mechanism, index);
    }
    return index;
  }

  private settle(thread: SignThread, batch: BatchResult): void {
    thread.batchesInFlight--;
    const failures = new Map(batch.errors.map((e) => [e.id, e]));
    const results = Buffer.from(batch.results);
    let o = 0;
    for (let i = 0; i < batch.count; i++) {
      const id = results.readUInt32LE(o);
      const length = results.readUInt16LE(o + 4);
      const signature = results.subarray(o + 6, o + 6 + length);
      o += 6 + length;
      const pending = thread.pending.get(id);
      if (!pending) continue;
      thread.pending.delete(id);
      const failure = failures.get(id);
      if (failure) pending.reject(Object.assign(new Error(failure.message), { code: failure.code, method: failure.method }));
      // A copy: a view would keep the whole batch's buffer alive for as long as the caller keeps its signature.
      else pending.resolve(Buffer.from(signature));
    }
    this.send(thread);
  }

  private spawn(): SignThread {
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { pkcs11jsPath: require.resolve('pkcs11js'), modulePath: this.modulePath, outputBufferSize: this.outputBufferSize, nice: SIGN_THREAD_NICE },
      // Nothing from the parent's command line (a -r preload such as ts-node would load into every thread).
      execArgv: [],
      // The thread holds no JS state worth a large heap.
      resourceLimits: { maxOldGenerationSizeMb: 32, maxYoungGenerationSizeMb: 8 },
    });
    worker.unref();
    const thread = new SignThread(worker, (t, reason) => this.onThreadExit(t, reason));
    worker.on('message', (message: BatchResult | 'ready') => {
      if (message !== 'ready') this.settle(thread, message);
    });
    this.threads.push(thread);
    return thread;
  }

  /** A thread that dies fails its jobs as retryable (503) and is replaced. */
  private onThreadExit(thread: SignThread, reason: Error): void {
    const index = this.threads.indexOf(thread);
    if (index < 0) return;
    this.threads.splice(index, 1);
    // Each job gets its own error: the session pool replaces every session the thread was using.
    for (const pending of thread.pending.values()) pending.reject(markSessionSuspect(hsmUnavailable('sign', undefined, 'signing thread stopped')));
    thread.pending.clear();
    if (this.closed) return;
    this.logger.error(`hsm: a signing thread stopped (${reason.message}); starting another in ${RESPAWN_DELAY_MS} ms`);
    // Delayed, so a thread that cannot start does not spin; meanwhile the others sign (or none: 503).
    setTimeout(() => {
      if (this.closed) return;
      this.spawn()
        .started()
        .catch((err: Error) => this.logger.error(`hsm: could not start a signing thread: ${err.message}`));
    }, RESPAWN_DELAY_MS).unref();
  }
}
