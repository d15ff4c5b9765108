/**
 * One lock for every instance of a PKCS#11 module in this process: the key store's and each signing
 * thread's private copy. SoftHSM2's C_Initialize and C_Finalize set up and tear down state in the
 * OpenSSL library that all instances share, and its C_Login writes the token file, which POSIX
 * locks cannot order between two instances of one process. Two threads doing either at once fail
 * with CKR_GENERAL_ERROR now and then, and two C_Finalize calls at once crashed the process (seen
 * with a raw benchmark that finalised two private copies together). The lock lives in a
 * SharedArrayBuffer that every signing thread receives, so the main thread and the workers take
 * the same one. These calls are rare (start, recovery, close), so a blocking wait is fine, even on
 * the event loop.
 */
const LOCK = new Int32Array(new SharedArrayBuffer(4));

/** The shared memory behind the lock, for a worker's workerData. */
export function moduleInstanceLockBuffer(): SharedArrayBuffer {
  return LOCK.buffer as SharedArrayBuffer;
}

/** Runs `fn` holding the process-wide module lock; the workers run the same algorithm on the same buffer (WORKER_SOURCE in sign-workers.ts). */
export function withModuleInstanceLock<T>(fn: () => T): T {
  while (Atomics.compareExchange(LOCK, 0, 0, 1) !== 0) Atomics.wait(LOCK, 0, 1, 50);
  try {
    return fn();
  } finally {
    Atomics.store(LOCK, 0, 0);
    Atomics.notify(LOCK, 0, 1);
  }
}
