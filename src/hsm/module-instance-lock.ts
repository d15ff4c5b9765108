import { closeSync, openSync } from 'node:fs';

type FileLocks = Pick<typeof import('fs-native-extensions'), 'unlock' | 'waitForLockSync'>;
let fileLocks: FileLocks | undefined;

/**
 * The native file-lock module, loaded on first use: a signing thread loads it only when its
 * process shares the token files (SoftHSM2); other modules' threads never map it.
 */
function nativeFileLocks(): FileLocks {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (fileLocks ??= require('fs-native-extensions') as FileLocks);
}

/**
 * The token lock: held around every call that reads or writes a token's own state
 * (TOKEN_FILE_METHODS in pkcs11-api.ts), by every instance of a PKCS#11 module in this process —
 * the key store's and each signing thread's private copy — and, when the token lives in files
 * other processes share (SoftHSM2's token directory), by every such process.
 *
 * Why, within a process: SoftHSM2's C_Initialize and C_Finalize set up and tear down OpenSSL state
 * that all instances share (two C_Finalize calls at once crashed the process), and the instances'
 * reads and writes of the token file must not overlap (next paragraph).
 *
 * Why, between processes: SoftHSM2 (2.6.1) rewrites the token file in place on every login (it
 * keeps the PIN-failure flags there) and reads it for slot and token info, session opening, login
 * and logout. Its own file locks do not keep a reader from seeing that file half-written: with one
 * single-threaded process logging in and out in a loop, two others reading token info failed about
 * one read in four (CKR_GENERAL_ERROR, or the token gone from the slot list), and an instance that
 * read it half-written keeps failing until it is initialised again. So every process sharing the
 * directory takes an exclusive lock on one file in it (an open-file-description lock: released by
 * the kernel when the process dies, and exclusive between threads too) for each such call. With
 * that lock the same loop failed no read. These calls are rare (start, session repair, recovery,
 * close): signing, key generation and object look-ups never take it.
 *
 * The in-process part lives in a SharedArrayBuffer every signing thread receives and adopts
 * (sign-worker.thread.ts: adoptModuleInstanceLock, then the file lock through its own descriptor).
 * A blocking wait is fine, even on the event loop. The lock is re-entrant within a thread: a token
 * look-up holds it across its whole scan and the calls inside take it again.
 */
let LOCK = new Int32Array(new SharedArrayBuffer(4));

/** How deep this thread is inside the lock (module state is per thread: each worker has its own). */
let depth = 0;

/** This thread's descriptor of the file shared with other processes, when there is one. */
let shared: { path: string; fd: number } | undefined;

/** The shared memory behind the in-process lock, for a worker's workerData. */
export function moduleInstanceLockBuffer(): SharedArrayBuffer {
  return LOCK.buffer as SharedArrayBuffer;
}

/** In a worker thread: take the lock in `buffer` (the main thread's) instead of this thread's own. */
export function adoptModuleInstanceLock(buffer: SharedArrayBuffer): void {
  LOCK = new Int32Array(buffer);
}

/**
 * Makes every later token-level call of this thread also take the lock on `path`, a file that
 * every process using the same token files names alike (undefined: this process's lock alone).
 */
export function shareTokenLockWith(path: string | undefined): void {
  if (shared?.path === path) return;
  let previous: number | undefined;
  withModuleInstanceLock(() => {
    previous = shared?.fd;
    shared = path === undefined ? undefined : { path, fd: openSync(path, 'a', 0o600) };
  });
  // Closed only now: withModuleInstanceLock took the file lock through this descriptor and
  // releases it on the way out (closing it inside made that release fail with EBADF).
  if (previous !== undefined) closeSync(previous);
}

/** A thread about to end closes its descriptor of the shared file (descriptors belong to the process). */
export function closeSharedTokenLock(): void {
  if (shared) closeSync(shared.fd);
  shared = undefined;
}

/** The file this thread's token lock is shared through, if any. */
export function sharedTokenLockFile(): string | undefined {
  return shared?.path;
}

/** Runs `fn` holding the token lock. */
export function withModuleInstanceLock<T>(fn: () => T): T {
  if (depth > 0) {
    depth++;
    try {
      return fn();
    } finally {
      depth--;
    }
  }
  while (Atomics.compareExchange(LOCK, 0, 0, 1) !== 0) Atomics.wait(LOCK, 0, 1, 50);
  depth = 1;
  const fd = shared?.fd;
  try {
    if (fd !== undefined) nativeFileLocks().waitForLockSync(fd);
    try {
      return fn();
    } finally {
      if (fd !== undefined) nativeFileLocks().unlock(fd);
    }
  } finally {
    depth = 0;
    Atomics.store(LOCK, 0, 0);
    Atomics.notify(LOCK, 0, 1);
  }
}
