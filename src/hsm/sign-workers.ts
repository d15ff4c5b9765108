import * as os from 'node:os';
import { Worker } from 'node:worker_threads';
import type { HsmLogger } from './hsm-logger';
import type { Mechanism } from './pkcs11-api';
import { moduleInstanceLockBuffer, sharedTokenLockFile } from './module-instance-lock';
import { hsmUnavailable } from './pkcs11-errors';
import { markSessionSuspect } from './session-pool';

/**
 * Worker body, plain JavaScript (eval'd, so it runs the same from dist/ and under ts-jest). A job
 * is C_SignInit + C_Sign, synchronously, on the thread's own session of the key's token, with the
 * thread's own handle for the key (looked up by CKA_ID and label, then cached).
 *
 * With `ownModule`, the thread maps a private copy of the module file: dlopen of another path gives
 * another instance of the library, with its own globals, locks and login, as another process would
 * have. SoftHSM2 serialises all threads of one instance on process-wide mutexes (two threads sharing
 * it measured ~23k EC-256 signatures/s here; two instances ~42k). The copy is deleted once mapped.
 * Such a thread initialises, logs in to and finalises its own instance, and recovers it by itself.
 * Without `ownModule` (vendor modules: one instance per process is what they expect) the thread
 * shares the process's instance: it opens its own sessions, but the main thread owns C_Initialize,
 * the login and the recovery, and the thread only reopens its sessions.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const pkcs11js = require(workerData.pkcs11jsPath);
// Below the event loop (and PostgreSQL) in the scheduler: the event loop feeds these threads and
// commits what they sign; when the CPU is short, it goes first. Linux only; elsewhere, or if the
// kernel refuses, the thread keeps the process's priority.
if (workerData.nice > 0) {
  try {
    const tid = Number(fs.readlinkSync('/proc/thread-self').split('/').pop());
    // Relative to what the thread inherited (the event loop's niceness).
    os.setPriority(tid, Math.min(19, os.getPriority(tid) + workerData.nice));
  } catch {}
}
const p11 = new pkcs11js.PKCS11();
let own = false;
let moduleNote;
if (workerData.ownModule) {
  let dir;
  try {
    // A private directory (mode 0700): nobody else can swap the file between copy and load.
    dir = fs.mkdtempSync(path.join(workerData.tmpdir, 'signet-pkcs11-'));
    const copy = path.join(dir, path.basename(workerData.modulePath));
    fs.copyFileSync(workerData.modulePath, copy);
    p11.load(copy);
    own = true;
  } catch (e) {
    moduleNote = 'could not map a private copy of the module (' + String(e && e.message) + '); sharing the process instance';
  } finally {
    if (dir) try { fs.rmSync(dir, { recursive: true, force: true }); } catch {}
  }
}
if (!own) p11.load(workerData.modulePath);

// The token lock (module-instance-lock.ts, same algorithm on the same memory), and the file lock
// other processes sharing the token files take too, through this thread's own descriptor.
const LOCK = new Int32Array(workerData.lock);
const fileLock = workerData.tokenLockFile === undefined ? undefined : require(workerData.fileLockModulePath);
const lockFd = fileLock && fs.openSync(workerData.tokenLockFile, 'a', 0o600);
function locked(fn) {
  while (Atomics.compareExchange(LOCK, 0, 0, 1) !== 0) Atomics.wait(LOCK, 0, 1, 50);
  try {
    if (fileLock) fileLock.waitForLockSync(lockFd);
    try {
      return fn();
    } finally {
      if (fileLock) fileLock.unlock(lockFd);
    }
  } finally {
    Atomics.store(LOCK, 0, 0);
    Atomics.notify(LOCK, 0, 1);
  }
}

const out = Buffer.alloc(workerData.outputBufferSize);
const EMPTY = Buffer.alloc(0);
const tokens = workerData.tokens;
const slots = new Array(tokens.length);
const sessions = new Array(tokens.length);
const mechanisms = [];
const keys = [];
const handles = [];
let initialized = false;
// Shared instance: the generation of the process's initialisation our sessions and handles belong to.
let generation;
// Codes after which the thread starts its sessions (own: its whole instance) afresh; on its own instance, it tries once more.
const RETRY = new Set(
  ['CKR_SESSION_HANDLE_INVALID', 'CKR_SESSION_CLOSED', 'CKR_USER_NOT_LOGGED_IN', 'CKR_DEVICE_REMOVED', 'CKR_TOKEN_NOT_PRESENT',
   'CKR_CRYPTOKI_NOT_INITIALIZED', 'CKR_DEVICE_ERROR', 'CKR_GENERAL_ERROR', 'CKR_OBJECT_HANDLE_INVALID', 'CKR_KEY_HANDLE_INVALID',
   'CKR_OPERATION_ACTIVE', 'CKR_OPERATION_NOT_INITIALIZED'].map((name) => pkcs11js[name]),
);

function pkcs11Error(name, method, text) {
  return Object.assign(new Error(name + ': ' + text), { code: pkcs11js[name], method });
}

function connect(t) {
  if (sessions[t] !== undefined) return sessions[t];
  // All of it under the process-wide module lock: slot and token info, opening a session and a
  // login read or write the token file, which one thread of a process at a time may touch.
  return locked(() => connectLocked(t));
}

function connectLocked(t) {
  if (own && !initialized) {
    try {
      p11.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
    } catch (e) {
      if (e.code !== pkcs11js.CKR_CRYPTOKI_ALREADY_INITIALIZED) throw e;
    }
    initialized = true;
  }
  const label = tokens[t].label;
  const slot = p11.C_GetSlotList(true).find((s) => p11.C_GetTokenInfo(s).label.replace(/[\\s\\u0000]+$/, '') === label);
  if (slot === undefined) throw pkcs11Error('CKR_TOKEN_NOT_PRESENT', 'C_GetSlotList', 'no token labelled ' + JSON.stringify(label));
  const session = p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION);
  if (own) {
    try {
      p11.C_Login(session, pkcs11js.CKU_USER, tokens[t].pin);
    } catch (e) {
      if (e.code !== pkcs11js.CKR_USER_ALREADY_LOGGED_IN) {
        try { p11.C_CloseSession(session); } catch {}
        throw e;
      }
    }
  }
  slots[t] = slot;
  sessions[t] = session;
  return session;
}

/** Forgets sessions and handles; an own instance is finalised, to be initialised again on next use. */
function reset() {
  // Closing a session and finalising touch the token file too: under the module lock.
  locked(() => {
    for (let t = 0; t < sessions.length; t++) {
      if (sessions[t] !== undefined) try { p11.C_CloseSession(sessions[t]); } catch {}
      sessions[t] = undefined;
    }
    if (own && initialized) {
      try { p11.C_Finalize(); } catch {}
      initialized = false;
    }
  });
  handles.length = 0;
}

function keyHandle(k, session) {
  const cached = handles[k];
  if (cached !== undefined) return cached;
  const key = keys[k];
  const template = [
    { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY },
    { type: pkcs11js.CKA_TOKEN, value: true },
    { type: pkcs11js.CKA_ID, value: key.id },
  ];
  if (key.label !== undefined) template.push({ type: pkcs11js.CKA_LABEL, value: key.label });
  p11.C_FindObjectsInit(session, template);
  let found;
  try {
    found = p11.C_FindObjects(session, 2);
  } finally {
    p11.C_FindObjectsFinal(session);
  }
  if (found.length !== 1) throw pkcs11Error('CKR_KEY_HANDLE_INVALID', 'C_FindObjects', 'the signing thread finds ' + found.length + ' private keys for this reference');
  handles[k] = found[0];
  return found[0];
}

function signOnce(k, mechanism, data) {
  const session = connect(keys[k].token);
  const key = keyHandle(k, session);
  let method = 'C_SignInit';
  try {
    p11.C_SignInit(session, mechanism, key);
    method = 'C_Sign';
    return Buffer.from(p11.C_Sign(session, data, out));
  } catch (e) {
    if (e && !e.method) e.method = method;
    throw e;
  }
}

/** Test seam: real faults on this thread's own instance (never on a shared one, which the main thread owns). */
function applyFault(fault) {
  if (!own) throw new Error('faults apply to an own module instance only');
  for (let t = 0; t < tokens.length; t++) connect(t);
  locked(() => {
    if (fault === 'close-all-sessions') for (const slot of slots) p11.C_CloseAllSessions(slot);
    else if (fault === 'logout') p11.C_Logout(sessions[0]);
    else if (fault === 'finalize') p11.C_Finalize();
    else throw new Error('unknown fault ' + fault);
  });
}

parentPort.on('message', (message) => {
  if (message.close) {
    // An own instance is finalised before the thread goes (its sessions close, its login ends).
    reset();
    // Descriptors belong to the process, not the thread: close ours before the thread goes.
    if (fileLock) try { fs.closeSync(lockFd); } catch {}
    parentPort.postMessage({ closed: true });
    return;
  }
  if (message.fault) {
    let error;
    try { applyFault(message.fault); } catch (e) { error = String(e && e.message); }
    parentPort.postMessage({ faultApplied: message.fault, error });
    return;
  }
  const { newMechanisms, newKeys, jobs, count } = message;
  if (!own && message.generation !== generation) {
    // The process finalised and initialised the shared instance since our last job (its pool
    // drained every job first): our session and object handles died with it, and their numbers may
    // now name sessions the process opened since. Forget them without closing anything.
    if (generation !== undefined) {
      sessions.fill(undefined);
      handles.length = 0;
    }
    generation = message.generation;
  }
  if (newMechanisms) mechanisms.push(...newMechanisms);
  if (newKeys) keys.push(...newKeys.map((k) => ({ token: k.token, id: Buffer.from(k.id), label: k.label })));
  const input = Buffer.from(jobs);
  const signatures = new Array(count);
  const errors = [];
  let size = 0;
  let o = 0;
  for (let i = 0; i < count; i++) {
    const id = input.readUInt32LE(o);
    const mechanism = mechanisms[input[o + 4]];
    const k = input.readUInt32LE(o + 5);
    const length = input.readUInt16LE(o + 9);
    const data = input.subarray(o + 11, o + 11 + length);
    o += 11 + length;
    let signature = EMPTY;
    for (let attempt = 0; ; attempt++) {
      try {
        signature = signOnce(k, mechanism, data);
        break;
      } catch (e) {
        if (e && RETRY.has(e.code)) {
          reset();
          // An own instance is this thread's to recover: once more, afresh. A shared one is the
          // main thread's: it hears the code, recovers its pool and runs the job again.
          if (own && attempt === 0) continue;
        }
        errors.push({ id, message: String(e && e.message), code: e && e.code, method: (e && e.method) || 'C_Sign' });
        break;
      }
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

// Sessions (and an own instance's login) before the first job; a token that is not there now is
// tried again by the first job that needs it.
let connectNote;
for (let t = 0; t < tokens.length; t++) {
  try { connect(t); } catch (e) { connectNote = 'token ' + JSON.stringify(tokens[t].label) + ': ' + String(e && e.message); }
}
parentPort.postMessage({ ready: true, ownModule: own, note: moduleNote || connectNote });
`;

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
  /** Each thread maps its own instance of the module (see WORKER_SOURCE). */
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

/** A batch's results: per job id (u32), signature length (u16, 0 on error), signature; errors beside. */
interface BatchResult {
  results: ArrayBuffer;
  count: number;
  errors: Array<{ id: number; message: string; code?: number; method: string }>;
}

interface ReadyMessage {
  ready: true;
  ownModule: boolean;
  note?: string;
}

interface FaultReply {
  faultApplied: string;
  error?: string;
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
        message && message.ready === true ? resolve(message) : reject(new Error(`unexpected first message ${String(message)}`)),
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
  private turnFlushScheduled = false;
  private batchesSent = 0;
  private closed = false;
  /** Mechanism objects are the key store's constants: interned by identity, sent once per thread. */
  private readonly mechanisms: Mechanism[] = [];
  private readonly mechanismIndexes = new Map<Mechanism, number>();
  /** Keys by token, id and label: interned, sent once per thread. */
  private readonly keys: Array<{ token: number; id: Uint8Array; label?: string }> = [];
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
   * The job is sent in a microtask, or with `gatherTurn` in the check phase (SignOptions.gatherTurn).
   */
  sign(keyIndex: number, mechanism: Mechanism, data: Buffer, gatherTurn = false): Promise<Buffer> {
    if (this.closed || this.threads.length === 0) return Promise.reject(hsmUnavailable('sign', undefined, 'signing threads stopped'));
    const id = this.nextId++;
    let thread = this.threads[0];
    for (let i = 1; i < this.threads.length; i++) if (this.threads[i].load < thread.load) thread = this.threads[i];
    return new Promise<Buffer>((resolve, reject) => {
      thread.pending.set(id, { resolve, reject });
      thread.queued.push({ id, key: keyIndex, mechanism, data });
      if (gatherTurn) {
        if (!this.turnFlushScheduled) {
          this.turnFlushScheduled = true;
          setImmediate(() => {
            this.turnFlushScheduled = false;
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
  async injectFault(fault: 'close-all-sessions' | 'logout' | 'finalize'): Promise<void> {
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
    const newMechanisms = this.mechanisms.length > thread.knownMechanisms ? this.mechanisms.slice(thread.knownMechanisms) : undefined;
    thread.knownMechanisms = this.mechanisms.length;
    const newKeys = this.keys.length > thread.knownKeys ? this.keys.slice(thread.knownKeys) : undefined;
    thread.knownKeys = this.keys.length;
    const generation = this.#options.generation?.();
    thread.worker.postMessage({ newMechanisms, newKeys, jobs: packed.buffer, count: batch.length, generation }, [packed.buffer]);
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
    const { modulePath, outputBufferSize, ownModule } = this.#options;
    // PINs only where the thread logs in itself.
    const tokens = this.#options.tokens.map((token) => (ownModule ? { label: token.label, pin: token.pin } : { label: token.label }));
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { pkcs11jsPath: require.resolve('pkcs11js'), modulePath, outputBufferSize, nice: SIGN_THREAD_NICE, ownModule, tokens, tmpdir: this.#options.moduleCopyDir ?? os.tmpdir(),
        lock: moduleInstanceLockBuffer(), tokenLockFile: sharedTokenLockFile(), fileLockModulePath: require.resolve('fs-native-extensions') },
      // Nothing from the parent's command line (a -r preload such as ts-node would load into every thread).
      execArgv: [],
      // The thread holds no JS state worth a large heap.
      resourceLimits: { maxOldGenerationSizeMb: 32, maxYoungGenerationSizeMb: 8 },
    });
    worker.unref();
    const thread = new SignThread(worker, (t, reason) => this.onThreadExit(t, reason));
    worker.on('message', (message: BatchResult | ReadyMessage | FaultReply | { closed: true }) => {
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
    for (const pending of thread.pending.values()) pending.reject(markSessionSuspect(hsmUnavailable('sign', undefined, 'signing thread stopped')));
    thread.pending.clear();
    thread.faultReply?.({ faultApplied: 'none', error: 'signing thread stopped' });
    if (this.closed) return;
    this.#options.logger.error(`hsm: a signing thread stopped (${reason.message}); starting another in ${RESPAWN_DELAY_MS} ms`);
    // Delayed, so a thread that cannot start does not spin; meanwhile the others sign (or none: 503).
    setTimeout(() => {
      if (this.closed) return;
      this.started(this.spawn()).catch((err: Error) => this.#options.logger.error(`hsm: could not start a signing thread: ${err.message}`));
    }, RESPAWN_DELAY_MS).unref();
  }
}
