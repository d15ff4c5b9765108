import type { Mechanism } from './pkcs11-api';

/** What a signing thread is started with (sign-worker.thread.ts). */
export interface SignWorkerData {
  modulePath: string;
  outputBufferSize: number;
  /** Niceness the thread adds to the one it inherited (Linux only). */
  nice: number;
  /** Map a private copy of the module (its own instance); see sign-workers.ts. */
  ownModule: boolean;
  /** PINs only for threads on their own instance (they log in themselves). */
  tokens: Array<{ label: string; pin?: string }>;
  /** Where the private copy of the module goes. */
  tmpdir: string;
  /** The in-process token lock's memory (module-instance-lock.ts). */
  lock: SharedArrayBuffer;
  /** The file the token lock is shared through with other processes, if any. */
  tokenLockFile?: string;
}

/** A key as the threads find it: token index, CKA_ID and, when the URI names one, CKA_LABEL. */
export interface SignThreadKey {
  token: number;
  id: Uint8Array;
  label?: string;
}

/**
 * A batch of jobs. Per job in `jobs`: id u32, mechanism index u8, key index u32, data (u16 length
 * + bytes). Mechanisms and keys are sent once per thread, which keeps the lists; jobs carry indexes.
 */
export interface BatchMessage {
  newMechanisms?: Mechanism[];
  newKeys?: SignThreadKey[];
  jobs: ArrayBuffer;
  count: number;
  /** Shared instance: the process's initialisation generation (Pkcs11Library.generation). */
  generation?: number;
}

export type ThreadFault = 'close-all-sessions' | 'logout' | 'finalize';

export type ToSignThread = BatchMessage | { close: true } | { fault: ThreadFault };

/** A batch's results: per job id (u32), signature length (u16, 0 on error), signature; errors beside. */
export interface BatchResult {
  results: ArrayBuffer;
  count: number;
  errors: Array<{ id: number; message: string; code?: number; method: string }>;
}

export interface ReadyMessage {
  ready: true;
  ownModule: boolean;
  note?: string;
}

export interface FaultReply {
  faultApplied: string;
  error?: string;
}

export type FromSignThread = BatchResult | ReadyMessage | FaultReply | { closed: true };
