import { existsSync, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { HsmLogger } from './hsm-logger';
import type { Mechanism } from './pkcs11-api';
import { moduleInstanceLockBuffer, sharedTokenLockFile } from './module-instance-lock';
import { hsmUnavailable } from './pkcs11-errors';
import { markSessionSuspect } from './session-pool';
import type {
  BatchMessage,
  BatchResult,
  FaultReply,
  FromSignThread,
  ReadyMessage,
  SignThreadKey,
  SignWorkerData,
  ThreadFault,
} from './sign-worker.protocol';

const THREAD_MODULE = 'sign-worker.thread';

/**
 * How to start a signing thread running sign-worker.thread.ts. From dist/, its compiled sibling
 * file. From src/ (ts-jest, ts-node: no .js beside this file), the thread module and the one module
 * of ours it imports (module-instance-lock.ts) transpiled to CommonJS by TypeScript, in-process,
 * and run as eval'd code whose other requires resolve from src/hsm/. Not esbuild: with its
 * buildSync (which runs a helper process) `npm run test:opencryptoki` aborted (SIGABRT) in three
 * runs of three, in the third suite; with the transpiler in-process it passes.
 */
let threadScript: { filename: string } | { code: string } | undefined;

/** The modules of ours the thread imports, by the specifier it uses. */
const THREAD_IMPORTS = { './module-instance-lock': 'module-instance-lock' } as const;

function signThreadScript(): { filename: string } | { code: string } {
  if (threadScript) return threadScript;
  const compiled = path.join(__dirname, `${THREAD_MODULE}.js`);
  if (existsSync(compiled)) return (threadScript = { filename: compiled });
  // A dev dependency, needed only where the TypeScript sources run directly.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const ts = require('typescript') as typeof import('typescript');
  const transpile = (name: string): string =>
    ts.transpileModule(readFileSync(path.join(__dirname, `${name}.ts`), 'utf8'), {
      compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
    }).outputText;
  const source = path.join(__dirname, `${THREAD_MODULE}.ts`);
  const wrap = (body: string, into: string): string =>
    `(function (exports, require, module) {\n${body}\n})(${into}.exports, load, ${into});`;
  const ours = Object.entries(THREAD_IMPORTS)
    .map(
      ([specifier, name]) =>
        `const m${name.replace(/\W/g, '_')} = { exports: {} };\nours.set(${JSON.stringify(specifier)}, m${name.replace(/\W/g, '_')});\n${wrap(transpile(name), `m${name.replace(/\W/g, '_')}`)}`,
    )
    .join('\n');
  const code =
    `const base = require('node:module').createRequire(${JSON.stringify(source)});\n` +
    `const ours = new Map();\n` +
    `const load = (id) => (ours.has(id) ? ours.get(id).exports : base(id));\n` +
    `const thread = { exports: {} };\n${ours}\n${wrap(transpile(THREAD_MODULE), 'thread')}`;
  return (threadScript = { code });
}

interface Job {
  id: number;
  key: number;
  mechanism: Mechanism;
  data: Buffer;
}

/** A token the threads sign on; the PIN goes only to threads with their own module instance. */
export interface SignThreadToken {
  label: string;
  pin: string;
}

/** A private key as the threads find it: token label, CKA_ID and, when the URI names one, CKA_LABEL. */
export interface SignKeyRef {
  token: string;
  id: Buffer;
  label?: string;
}

export interface SignWorkerPoolOptions {
  modulePath: string;
  threads: number;
  outputBufferSize: number;
  tokens: SignThreadToken[];
  /** Each thread maps its own instance of the module (see sign-worker.thread.ts). */
  ownModule: boolean;
  /** Where a thread puts its private copy of the module (default: the OS temp directory). */
  moduleCopyDir?: string;
  /**
   * Shared instance: the process's initialisation generation (Pkcs11Library.generation). Each batch
   * carries it; a thread that sees it change forgets its sessions and handles.
   */
  generation?: () => number;
  logger: HsmLogger;
}

interface Pending {
  resolve: (signature: Buffer) => void;
  reject: (error: Error) => void;
}

/** Batches one thread may have in flight: two keeps it busy while the next batch is on its way. */
const MAX_BATCHES_IN_FLIGHT = 2;
const RESPAWN_DELAY_MS = 1000;
const CLOSE_TIMEOUT_MS = 5000;
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
  /** Mechanisms and keys this thread has been sent (it keeps the lists; jobs carry indexes). */
  knownMechanisms = 0;
  knownKeys = 0;
  /** Whether the thread runs on its own instance of the module (known once it is ready). */
  ownModule = false;
  faultReply?: (reply: FaultReply) => void;
  closeReply?: () => void;
  private readonly ready: Promise<ReadyMessage>;

  constructor(
    readonly worker: Worker,
    private readonly onExit: (thread: SignThread, reason: Error) => void,
  ) {
    this.ready = new Promise((resolve, reject) => {
      worker.once('message', (message: ReadyMessage) =>
        message && message.ready === true
          ? resolve(message)
          : reject(new Error(`unexpected first message ${String(message)}`)),
      );
      worker.once('error', reject);
    });
    worker.on('error', (err) => this.onExit(this, err));
    worker.on('exit', (code) => this.onExit(this, new Error(`signing thread exited (${code})`)));
  }

  started(): Promise<ReadyMessage> {
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
 * batches of jobs (gathered while the thread is busy, like group commit; for callers that ask,
 * over a whole turn of the event loop) and takes results back.
 * The caller still holds one of the key store's sessions per job: the session pool stays the
 * bound on signatures in flight and the place where faults are counted and recovered.
 * Errors come back with the pkcs11js shape (CKR_ name in the message, code, C_ function), so the
 * key store maps them exactly as with the async path.
 */
export class SignWorkerPool {
  private readonly threads: SignThread[] = [];
  private nextId = 1;
  private flushScheduled = false;
  private checkPhaseFlushScheduled = false;
  private batchesSent = 0;
  private closed = false;
  /** Mechanism objects are the key store's constants: interned by identity, sent once per thread. */
  private readonly mechanisms: Mechanism[] = [];
  private readonly mechanismIndexes = new Map<Mechanism, number>();
  /** Keys by token, id and label: interned, sent once per thread. */
  private readonly keys: SignThreadKey[] = [];
  private readonly keyIndexes = new Map<string, number>();
  private readonly tokenIndexes: Map<string, number>;
  /** Private (#): holds the PINs, which must not show when the pool is inspected or logged. */
  readonly #options: SignWorkerPoolOptions;

  constructor(options: SignWorkerPoolOptions) {
    this.#options = options;
    this.tokenIndexes = new Map(options.tokens.map((token, index) => [token.label, index]));
  }

  get threadCount(): number {
    return this.threads.length;
  }

  /** Batches sent to the threads so far (each a message and, for a sleeping thread, a wake-up). */
  get batches(): number {
    return this.batchesSent;
  }

  /** Threads running on their own instance of the module. */
  get ownModuleThreads(): number {
    return this.threads.filter((thread) => thread.ownModule).length;
  }

  /**
   * One thread after the other: a thread with its own instance logs in, and SoftHSM2 writes the
   * token file on a login; POSIX file locks do not order two instances of one process.
   */
  async start(): Promise<void> {
    for (let i = 0; i < this.#options.threads; i++) await this.started(this.spawn());
  }

  /** The index jobs use for a key; the caller keeps it with its cached handle. */
  keyIndex(ref: SignKeyRef): number {
    const token = this.tokenIndexes.get(ref.token);
    if (token === undefined) throw new Error(`signing threads: unknown token '${ref.token}'`);
    const name = `${token}/${ref.id.toString('hex')}/${ref.label ?? ''}`;
    let index = this.keyIndexes.get(name);
    if (index === undefined) {
      index = this.keys.push({ token, id: new Uint8Array(ref.id), label: ref.label }) - 1;
      this.keyIndexes.set(name, index);
    }
    return index;
  }

  /**
   * Signs `data` with the key at `keyIndex`; the caller holds its pool session until this settles.
   * The job is sent in a microtask, or with `flushAtCheckPhase` in the check phase of the event
   * loop (SignerOptions.flushAtCheckPhase).
   */
  sign(keyIndex: number, mechanism: Mechanism, data: Buffer, flushAtCheckPhase = false): Promise<Buffer> {
    if (this.closed || this.threads.length === 0)
      return Promise.reject(hsmUnavailable('sign', undefined, 'signing threads stopped'));
    const id = this.nextId++;
    let thread = this.threads[0];
    for (let i = 1; i < this.threads.length; i++) if (this.threads[i].load < thread.load) thread = this.threads[i];
    return new Promise<Buffer>((resolve, reject) => {
      thread.pending.set(id, { resolve, reject });
      thread.queued.push({ id, key: keyIndex, mechanism, data });
      if (flushAtCheckPhase) {
        if (!this.checkPhaseFlushScheduled) {
          this.checkPhaseFlushScheduled = true;
          setImmediate(() => {
            this.checkPhaseFlushScheduled = false;
            this.flush();
          });
        }
      } else if (!this.flushScheduled) {
        this.flushScheduled = true;
        queueMicrotask(() => {
          this.flushScheduled = false;
          this.flush();
        });
      }
    });
  }

  /**
   * Test seam: a real fault on every thread's own module instance ('close-all-sessions', 'logout',
   * 'finalize'), as another application of the token or an operator could cause. Threads sharing
   * the process's instance refuse: the key store's pool owns that one.
   */
  async injectFault(fault: ThreadFault): Promise<void> {
    const replies = await Promise.all(
      this.threads.map(
        (thread) =>
          new Promise<FaultReply>((resolve) => {
            thread.faultReply = resolve;
            thread.worker.postMessage({ fault });
          }),
      ),
    );
    const failed = replies.find((reply) => reply.error);
    if (failed) throw new Error(`signing thread fault '${fault}': ${failed.error}`);
  }

  /**
   * Lets each thread finalise its own instance (bounded wait), then stops it; one thread at a time,
   * since a thread's exit unloads its copy of the module, and two SoftHSM2 instances must not set
   * up or tear down at once (they share OpenSSL's state: concurrent C_Finalize calls crashed).
   */
  async close(): Promise<void> {
    this.closed = true;
    const threads = this.threads.splice(0);
    for (const thread of threads) {
      await this.finalised(thread);
      await thread.worker.terminate();
    }
  }

  /** Asks a thread to finalise its own instance; resolves when it says so, exits, or after CLOSE_TIMEOUT_MS. */
  private finalised(thread: SignThread): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        thread.closeReply = undefined;
        resolve();
      };
      const timer = setTimeout(done, CLOSE_TIMEOUT_MS);
      thread.closeReply = done;
      thread.worker.once('exit', done);
      thread.worker.postMessage({ close: true });
    });
  }

  private flush(): void {
    for (const thread of this.threads) this.send(thread);
  }

  private send(thread: SignThread): void {
    if (thread.queued.length === 0 || thread.batchesInFlight >= MAX_BATCHES_IN_FLIGHT) return;
    const batch = thread.queued;
    thread.queued = [];
    thread.batchesInFlight++;
    this.batchesSent++;
    // One buffer per batch, transferred, not cloned: structured clone of a Buffer copies the whole
    // (pooled, 8 KiB) ArrayBuffer under it. Per job: id u32, mechanism index u8, key index u32,
    // data (u16 length + bytes).
    let size = 0;
    for (const job of batch) size += 11 + job.data.length;
    const packed = Buffer.allocUnsafeSlow(size);
    let o = 0;
    for (const job of batch) {
      o = packed.writeUInt32LE(job.id, o);
      o = packed.writeUInt8(this.mechanismIndex(job.mechanism), o);
      o = packed.writeUInt32LE(job.key, o);
      o = packed.writeUInt16LE(job.data.length, o);
      o += job.data.copy(packed, o);
    }
    const newMechanisms =
      this.mechanisms.length > thread.knownMechanisms ? this.mechanisms.slice(thread.knownMechanisms) : undefined;
    thread.knownMechanisms = this.mechanisms.length;
    const newKeys = this.keys.length > thread.knownKeys ? this.keys.slice(thread.knownKeys) : undefined;
    thread.knownKeys = this.keys.length;
    const generation = this.#options.generation?.();
    const message: BatchMessage = {
      newMechanisms,
      newKeys,
      jobs: packed.buffer as ArrayBuffer,
      count: batch.length,
      generation,
    };
    thread.worker.postMessage(message, [packed.buffer]);
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
      if (failure)
        pending.reject(Object.assign(new Error(failure.message), { code: failure.code, method: failure.method }));
      // A copy: a view would keep the whole batch's buffer alive for as long as the caller keeps its signature.
      else pending.resolve(Buffer.from(signature));
    }
    this.send(thread);
  }

  private spawn(): SignThread {
    const { modulePath, outputBufferSize, ownModule } = this.#options;
    // PINs only where the thread logs in itself.
    const tokens = this.#options.tokens.map((token) =>
      ownModule ? { label: token.label, pin: token.pin } : { label: token.label },
    );
    const workerData: SignWorkerData = {
      modulePath,
      outputBufferSize,
      nice: SIGN_THREAD_NICE,
      ownModule,
      tokens,
      tmpdir: this.#options.moduleCopyDir ?? os.tmpdir(),
      lock: moduleInstanceLockBuffer(),
      tokenLockFile: sharedTokenLockFile(),
    };
    const script = signThreadScript();
    const worker = new Worker('filename' in script ? script.filename : script.code, {
      eval: !('filename' in script),
      workerData,
      // Nothing from the parent's command line (a -r preload such as ts-node would load into every thread).
      execArgv: [],
      // The thread holds no JS state worth a large heap.
      resourceLimits: { maxOldGenerationSizeMb: 32, maxYoungGenerationSizeMb: 8 },
    });
    worker.unref();
    const thread = new SignThread(worker, (t, reason) => this.onThreadExit(t, reason));
    worker.on('message', (message: FromSignThread) => {
      if ('results' in message) this.settle(thread, message);
      else if ('closed' in message) thread.closeReply?.();
      else if ('faultApplied' in message) {
        const reply = thread.faultReply;
        thread.faultReply = undefined;
        reply?.(message);
      }
    });
    this.threads.push(thread);
    return thread;
  }

  private async started(thread: SignThread): Promise<void> {
    const ready = await thread.started();
    thread.ownModule = ready.ownModule;
    if (ready.note) this.#options.logger.warn(`hsm: signing thread: ${ready.note}`);
  }

  /** A thread that dies fails its jobs as retryable (503) and is replaced. */
  private onThreadExit(thread: SignThread, reason: Error): void {
    const index = this.threads.indexOf(thread);
    if (index < 0) return;
    this.threads.splice(index, 1);
    // Each job gets its own error: the session pool replaces every session the thread was using.
    for (const pending of thread.pending.values())
      pending.reject(markSessionSuspect(hsmUnavailable('sign', undefined, 'signing thread stopped')));
    thread.pending.clear();
    thread.faultReply?.({ faultApplied: 'none', error: 'signing thread stopped' });
    if (this.closed) return;
    this.#options.logger.error(
      `hsm: a signing thread stopped (${reason.message}); starting another in ${RESPAWN_DELAY_MS} ms`,
    );
    // Delayed, so a thread that cannot start does not spin; meanwhile the others sign (or none: 503).
    setTimeout(() => {
      if (this.closed) return;
      this.started(this.spawn()).catch((err: Error) =>
        this.#options.logger.error(`hsm: could not start a signing thread: ${err.message}`),
      );
    }, RESPAWN_DELAY_MS).unref();
  }
}
