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
const p11 = new pkcs11js.PKCS11();
p11.load(workerData.modulePath);
const out = Buffer.alloc(workerData.outputBufferSize);
const asBuffer = (u8) => Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength);
parentPort.on('message', (jobs) => {
  const results = new Array(jobs.length);
  for (let i = 0; i < jobs.length; i++) {
    const job = jobs[i];
    const session = asBuffer(job.session);
    let method = 'C_SignInit';
    try {
      p11.C_SignInit(session, job.mechanism, asBuffer(job.key));
      method = 'C_Sign';
      const signature = p11.C_Sign(session, asBuffer(job.data), out);
      results[i] = { id: job.id, signature: Uint8Array.prototype.slice.call(signature) };
    } catch (e) {
      results[i] = { id: job.id, error: { message: String(e && e.message), code: e && e.code, method: (e && e.method) || method } };
    }
  }
  parentPort.postMessage(results);
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

interface WorkerResult {
  id: number;
  signature?: Uint8Array;
  error?: { message: string; code?: number; method: string };
}

interface Pending {
  resolve: (signature: Buffer) => void;
  reject: (error: Error) => void;
}

/** Batches one thread may have in flight: two keeps it busy while the next batch is on its way. */
const MAX_BATCHES_IN_FLIGHT = 2;
const RESPAWN_DELAY_MS = 1000;

class SignThread {
  readonly pending = new Map<number, Pending>();
  queued: Job[] = [];
  batchesInFlight = 0;
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
    // Structured clone copies the handles and data: nothing here is shared with the thread.
    thread.worker.postMessage(batch);
  }

  private spawn(): SignThread {
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { pkcs11jsPath: require.resolve('pkcs11js'), modulePath: this.modulePath, outputBufferSize: this.outputBufferSize },
      // The thread holds no JS state worth a large heap.
      resourceLimits: { maxOldGenerationSizeMb: 32, maxYoungGenerationSizeMb: 8 },
    });
    worker.unref();
    const thread = new SignThread(worker, (t, reason) => this.onThreadExit(t, reason));
    worker.on('message', (message: WorkerResult[] | 'ready') => {
      if (message === 'ready') return;
      thread.batchesInFlight--;
      for (const result of message) {
        const pending = thread.pending.get(result.id);
        if (!pending) continue;
        thread.pending.delete(result.id);
        if (result.signature) {
          pending.resolve(Buffer.from(result.signature.buffer, result.signature.byteOffset, result.signature.byteLength));
        } else {
          const { message: text, code, method } = result.error ?? { message: 'unknown error', method: 'C_Sign' };
          pending.reject(Object.assign(new Error(text), { code, method }));
        }
      }
      this.send(thread);
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
