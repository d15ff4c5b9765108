import { Worker } from 'node:worker_threads';
import * as pkcs11js from 'pkcs11js';
import { moduleInstanceLockBuffer } from '../../src/hsm/module-instance-lock';
import type { Handle } from '../../src/hsm/pkcs11-api';
import { Pkcs11Library } from '../../src/hsm/pkcs11-library';
import { createTestToken, type TestToken } from '../support/softhsm';

/**
 * Token-level PKCS#11 calls (slot and token info, sessions, login) read or write SoftHSM2's token
 * file, which no two threads or processes may touch at once (module-instance-lock.ts). These tests
 * hold the token lock from another thread, as a signing thread does while it logs in, and check
 * which calls of the key store's binding wait for it.
 */
describe('the process-wide module lock on token-level PKCS#11 calls', () => {
  let token: TestToken;
  let library: Pkcs11Library;
  let slot: Handle;

  beforeAll(async () => {
    token = await createTestToken('module-lock');
    library = Pkcs11Library.acquire(token.modulePath);
    slot = (library.locateToken(token.tokenLabel) as { slot: Handle }).slot;
  });
  afterAll(() => library.release());

  // state: 0 idle, 1 the other thread holds the lock, 2 it is about to release it, 3 release now.
  const holder = (state: Int32Array, holdUntilTold: boolean): Worker =>
    new Worker(
      `const { workerData } = require('node:worker_threads');
       const lock = new Int32Array(workerData.lock);
       const state = new Int32Array(workerData.state);
       while (Atomics.compareExchange(lock, 0, 0, 1) !== 0) Atomics.wait(lock, 0, 1, 50);
       Atomics.store(state, 0, 1);
       Atomics.notify(state, 0);
       if (workerData.holdUntilTold) while (Atomics.load(state, 0) !== 3) Atomics.wait(state, 0, 1, 50);
       else Atomics.wait(state, 0, 1, 150);
       Atomics.store(state, 0, 2);
       Atomics.store(lock, 0, 0);
       Atomics.notify(lock, 0, 1);`,
      { eval: true, workerData: { lock: moduleInstanceLockBuffer(), state: state.buffer, holdUntilTold } },
    );
  const whileHeld = async (holdUntilTold: boolean, call: (state: Int32Array) => void): Promise<void> => {
    const state = new Int32Array(new SharedArrayBuffer(4));
    const worker = holder(state, holdUntilTold);
    const exited = new Promise((resolve) => worker.once('exit', resolve));
    while (Atomics.load(state, 0) !== 1) await new Promise((resolve) => setTimeout(resolve, 5));
    try {
      call(state);
    } finally {
      Atomics.store(state, 0, 3);
      Atomics.notify(state, 0);
      await exited;
    }
  };

  it.each([
    ['C_GetSlotList', () => library.api.C_GetSlotList(true)],
    ['C_GetTokenInfo', () => library.api.C_GetTokenInfo(slot)],
    ['C_OpenSession', () => library.api.C_CloseSession(library.api.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION))],
  ])('%s waits until the thread holding the lock lets it go', async (_name, call) => {
    await whileHeld(false, (state) => {
      call();
      // The call could only return once the holder had released the lock (it marks 2 first).
      expect(Atomics.load(state, 0)).toBe(2);
    });
  });

  it('signing and object calls do not wait for it (the signing path pays nothing)', async () => {
    const session = library.api.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION);
    try {
      await whileHeld(true, (state) => {
        library.api.C_GenerateRandom(session, Buffer.alloc(16));
        library.api.C_FindObjectsInit(session, [{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY }]);
        library.api.C_FindObjects(session, 1);
        library.api.C_FindObjectsFinal(session);
        expect(Atomics.load(state, 0)).toBe(1); // still held: none of these waited
      });
    } finally {
      library.api.C_CloseSession(session);
    }
  });
});
