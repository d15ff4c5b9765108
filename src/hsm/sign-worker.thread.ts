/**
 * The body of a signing thread (SignWorkerPool in sign-workers.ts starts it; it is never imported
 * by the main thread). A job is C_SignInit + C_Sign, synchronously, on the thread's own session of
 * the key's token, with the thread's own handle for the key (looked up by CKA_ID and label, then
 * cached).
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
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import * as pkcs11js from 'pkcs11js';
import {
  adoptModuleInstanceLock,
  closeSharedTokenLock,
  shareTokenLockWith,
  withModuleInstanceLock,
} from './module-instance-lock';
import type {
  BatchMessage,
  BatchResult,
  FaultReply,
  ReadyMessage,
  SignWorkerData,
  ThreadFault,
  ToSignThread,
} from './sign-worker.protocol';

type Handle = pkcs11js.Handle;

/** What a failed call carries back to the main thread (pkcs11js's shape: code and C_ function). */
interface CallError extends Error {
  code?: number;
  method?: string;
}

const data = workerData as SignWorkerData;
const port = parentPort as NonNullable<typeof parentPort>;

// Below the event loop (and PostgreSQL) in the scheduler: the event loop feeds these threads and
// commits what they sign; when the CPU is short, it goes first. Linux only; elsewhere, or if the
// kernel refuses, the thread keeps the process's priority.
if (data.nice > 0) {
  try {
    const tid = Number(fs.readlinkSync('/proc/thread-self').split('/').pop());
    // Relative to what the thread inherited (the event loop's niceness).
    os.setPriority(tid, Math.min(19, os.getPriority(tid) + data.nice));
  } catch {
    // not Linux, or not allowed: keep the inherited priority
  }
}

const p11 = new pkcs11js.PKCS11();
let own = false;
let moduleNote: string | undefined;
if (data.ownModule) {
  let dir: string | undefined;
  try {
    // A private directory (mode 0700): nobody else can swap the file between copy and load.
    dir = fs.mkdtempSync(path.join(data.tmpdir, 'signet-pkcs11-'));
    const copy = path.join(dir, path.basename(data.modulePath));
    fs.copyFileSync(data.modulePath, copy);
    p11.load(copy);
    own = true;
  } catch (e) {
    moduleNote = `could not map a private copy of the module (${String((e as Error | undefined)?.message)}); sharing the process instance`;
  } finally {
    if (dir) {
      try {
        fs.rmSync(dir, { recursive: true, force: true });
      } catch {
        // best effort: the directory is private and the copy already mapped
      }
    }
  }
}
if (!own) p11.load(data.modulePath);

// The token lock (module-instance-lock.ts) on the main thread's memory, and the file lock other
// processes sharing the token files take too, through this thread's own descriptor.
adoptModuleInstanceLock(data.lock);
shareTokenLockWith(data.tokenLockFile);

const out = Buffer.alloc(data.outputBufferSize);
const EMPTY: Buffer = Buffer.alloc(0);
const tokens = data.tokens;
const slots: Handle[] = new Array<Handle>(tokens.length);
const sessions: Array<Handle | undefined> = new Array<Handle | undefined>(tokens.length);
const mechanisms: pkcs11js.Mechanism[] = [];
const keys: Array<{ token: number; id: Buffer; label?: string }> = [];
const handles: Handle[] = [];
let initialized = false;
// Shared instance: the generation of the process's initialisation our sessions and handles belong to.
let generation: number | undefined;
// Codes after which the thread starts its sessions (own: its whole instance) afresh; on its own instance, it tries once more.
const RETRY = new Set<number>([
  pkcs11js.CKR_SESSION_HANDLE_INVALID,
  pkcs11js.CKR_SESSION_CLOSED,
  pkcs11js.CKR_USER_NOT_LOGGED_IN,
  pkcs11js.CKR_DEVICE_REMOVED,
  pkcs11js.CKR_TOKEN_NOT_PRESENT,
  pkcs11js.CKR_CRYPTOKI_NOT_INITIALIZED,
  pkcs11js.CKR_DEVICE_ERROR,
  pkcs11js.CKR_GENERAL_ERROR,
  pkcs11js.CKR_OBJECT_HANDLE_INVALID,
  pkcs11js.CKR_KEY_HANDLE_INVALID,
  pkcs11js.CKR_OPERATION_ACTIVE,
  pkcs11js.CKR_OPERATION_NOT_INITIALIZED,
]);

function pkcs11Error(
  name: 'CKR_TOKEN_NOT_PRESENT' | 'CKR_KEY_HANDLE_INVALID',
  method: string,
  text: string,
): CallError {
  return Object.assign(new Error(`${name}: ${text}`), { code: pkcs11js[name], method });
}

function errorCode(e: unknown): number | undefined {
  return (e as CallError | undefined)?.code;
}

function connect(t: number): Handle {
  const session = sessions[t];
  if (session !== undefined) return session;
  // All of it under the process-wide token lock: slot and token info, opening a session and a
  // login read or write the token file, which one thread of a process at a time may touch.
  return withModuleInstanceLock(() => connectLocked(t));
}

function connectLocked(t: number): Handle {
  if (own && !initialized) {
    try {
      p11.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
    } catch (e) {
      if (errorCode(e) !== pkcs11js.CKR_CRYPTOKI_ALREADY_INITIALIZED) throw e;
    }
    initialized = true;
  }
  const label = tokens[t].label;
  // Labels come blank- and NUL-padded to 32 bytes.
  // eslint-disable-next-line no-control-regex
  const slot = p11.C_GetSlotList(true).find((s) => p11.C_GetTokenInfo(s).label.replace(/[\s\u0000]+$/, '') === label);
  if (slot === undefined)
    throw pkcs11Error('CKR_TOKEN_NOT_PRESENT', 'C_GetSlotList', `no token labelled ${JSON.stringify(label)}`);
  const session = p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION);
  if (own) {
    try {
      p11.C_Login(session, pkcs11js.CKU_USER, tokens[t].pin);
    } catch (e) {
      if (errorCode(e) !== pkcs11js.CKR_USER_ALREADY_LOGGED_IN) {
        try {
          p11.C_CloseSession(session);
        } catch {
          // the login error is the one worth reporting
        }
        throw e;
      }
    }
  }
  slots[t] = slot;
  sessions[t] = session;
  return session;
}

/** Forgets sessions and handles; an own instance is finalised, to be initialised again on next use. */
function reset(): void {
  // Closing a session and finalising touch the token file too: under the token lock.
  withModuleInstanceLock(() => {
    for (let t = 0; t < sessions.length; t++) {
      const session = sessions[t];
      if (session !== undefined) {
        try {
          p11.C_CloseSession(session);
        } catch {
          // already gone
        }
      }
      sessions[t] = undefined;
    }
    if (own && initialized) {
      try {
        p11.C_Finalize();
      } catch {
        // already finalised
      }
      initialized = false;
    }
  });
  handles.length = 0;
}

function keyHandle(k: number, session: Handle): Handle {
  const cached = handles[k];
  if (cached !== undefined) return cached;
  const key = keys[k];
  const template: pkcs11js.Template = [
    { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY },
    { type: pkcs11js.CKA_TOKEN, value: true },
    { type: pkcs11js.CKA_ID, value: key.id },
  ];
  if (key.label !== undefined) template.push({ type: pkcs11js.CKA_LABEL, value: key.label });
  p11.C_FindObjectsInit(session, template);
  let found: Handle[];
  try {
    found = p11.C_FindObjects(session, 2);
  } finally {
    p11.C_FindObjectsFinal(session);
  }
  if (found.length !== 1)
    throw pkcs11Error(
      'CKR_KEY_HANDLE_INVALID',
      'C_FindObjects',
      `the signing thread finds ${found.length} private keys for this reference`,
    );
  handles[k] = found[0];
  return found[0];
}

function signOnce(k: number, mechanism: pkcs11js.Mechanism, input: Buffer): Buffer {
  const session = connect(keys[k].token);
  const key = keyHandle(k, session);
  let method = 'C_SignInit';
  try {
    p11.C_SignInit(session, mechanism, key);
    method = 'C_Sign';
    return Buffer.from(p11.C_Sign(session, input, out));
  } catch (e) {
    const error = e as CallError | undefined;
    if (error && !error.method) error.method = method;
    throw e;
  }
}

/** Test seam: real faults on this thread's own instance (never on a shared one, which the main thread owns). */
function applyFault(fault: ThreadFault): void {
  if (!own) throw new Error('faults apply to an own module instance only');
  for (let t = 0; t < tokens.length; t++) connect(t);
  withModuleInstanceLock(() => {
    if (fault === 'close-all-sessions') for (const slot of slots) p11.C_CloseAllSessions(slot);
    else if (fault === 'logout') p11.C_Logout(sessions[0] as Handle);
    else if (fault === 'finalize') p11.C_Finalize();
    else throw new Error(`unknown fault ${String(fault)}`);
  });
}

function signBatch(message: BatchMessage): BatchResult {
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
  const signatures = new Array<{ id: number; signature: Buffer }>(count);
  const errors: BatchResult['errors'] = [];
  let size = 0;
  let o = 0;
  for (let i = 0; i < count; i++) {
    const id = input.readUInt32LE(o);
    const mechanism = mechanisms[input[o + 4]];
    const k = input.readUInt32LE(o + 5);
    const length = input.readUInt16LE(o + 9);
    const digest = input.subarray(o + 11, o + 11 + length);
    o += 11 + length;
    let signature = EMPTY;
    for (let attempt = 0; ; attempt++) {
      try {
        signature = signOnce(k, mechanism, digest);
        break;
      } catch (e) {
        const code = errorCode(e);
        if (code !== undefined && RETRY.has(code)) {
          reset();
          // An own instance is this thread's to recover: once more, afresh. A shared one is the
          // main thread's: it hears the code, recovers its pool and runs the job again.
          if (own && attempt === 0) continue;
        }
        const error = e as CallError | undefined;
        errors.push({ id, message: String(error?.message), code, method: error?.method || 'C_Sign' });
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
  return { results: results.buffer as ArrayBuffer, count, errors };
}

port.on('message', (message: ToSignThread) => {
  if ('close' in message) {
    // An own instance is finalised before the thread goes (its sessions close, its login ends).
    reset();
    // Descriptors belong to the process, not the thread: close ours before the thread goes.
    try {
      closeSharedTokenLock();
    } catch {
      // the thread goes anyway
    }
    port.postMessage({ closed: true });
    return;
  }
  if ('fault' in message) {
    let error: string | undefined;
    try {
      applyFault(message.fault);
    } catch (e) {
      error = String((e as Error | undefined)?.message);
    }
    port.postMessage({ faultApplied: message.fault, error } satisfies FaultReply);
    return;
  }
  const batch = signBatch(message);
  port.postMessage(batch, [batch.results]);
});

// Sessions (and an own instance's login) before the first job; a token that is not there now is
// tried again by the first job that needs it.
let connectNote: string | undefined;
for (let t = 0; t < tokens.length; t++) {
  try {
    connect(t);
  } catch (e) {
    connectNote = `token ${JSON.stringify(tokens[t].label)}: ${String((e as Error | undefined)?.message)}`;
  }
}
port.postMessage({ ready: true, ownModule: own, note: moduleNote || connectNote } satisfies ReadyMessage);
