// The parts of fs-native-extensions (holepunch) Signet uses; the package ships no types.
declare module 'fs-native-extensions' {
  /** Blocks until an exclusive (or, with shared: true, shared) lock on the open file `fd` is held. */
  export function waitForLockSync(fd: number, offset?: number, length?: number, opts?: { shared?: boolean }): void;
  /** Takes the lock if free; false when another holder has it. */
  export function tryLock(fd: number, offset?: number, length?: number, opts?: { shared?: boolean }): boolean;
  export function unlock(fd: number, offset?: number, length?: number): void;
}
