import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  closeSharedTokenLock,
  shareTokenLockWith,
  sharedTokenLockFile,
  withModuleInstanceLock,
} from './module-instance-lock';

/**
 * The token lock's shared file can change within a process: a key store on SoftHSM2's token
 * directory closed, then one on another module (openCryptoki: no shared file) or another directory
 * opened. Real files and the real native file lock.
 */
describe('shareTokenLockWith', () => {
  const dir = mkdtempSync(join(tmpdir(), 'signet-token-lock-'));
  afterAll(() => {
    closeSharedTokenLock();
    rmSync(dir, { recursive: true, force: true });
  });

  it('drops the shared file, or moves to another, without releasing the file lock through a closed descriptor', () => {
    shareTokenLockWith(join(dir, 'a.lock'));
    expect(withModuleInstanceLock(() => 'under a')).toBe('under a');
    // Before the fix: "bad file descriptor" from the unlock of a's descriptor, closed inside the lock.
    expect(() => shareTokenLockWith(undefined)).not.toThrow();
    expect(sharedTokenLockFile()).toBeUndefined();
    expect(withModuleInstanceLock(() => 'process lock only')).toBe('process lock only');

    shareTokenLockWith(join(dir, 'a.lock'));
    expect(() => shareTokenLockWith(join(dir, 'b.lock'))).not.toThrow();
    expect(sharedTokenLockFile()).toBe(join(dir, 'b.lock'));
    expect(withModuleInstanceLock(() => 'under b')).toBe('under b');
  });
});
