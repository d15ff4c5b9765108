import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Worker } from 'node:worker_threads';
import { DomainError, ErrorCode } from '../../src/common/errors';
import type { KeyInfo } from '../../src/hsm/key-store';
import { Pkcs11KeyStore } from '../../src/hsm/pkcs11-key-store';
import { Pkcs11Library } from '../../src/hsm/pkcs11-library';
import { SIGN_THREAD_NICE } from '../../src/hsm/sign-workers';
import { createTestToken } from '../support/softhsm';
import { openStore, sample, verifyWithNode, waitFor } from './hsm-test-kit';

type InstanceFault = 'close-all-sessions' | 'logout' | 'finalize';

/** The store's signing-thread pool: its fault seam acts on the threads' own module instances. */
function threadPool(store: Pkcs11KeyStore): { injectFault(fault: InstanceFault): Promise<void> } {
  return (store as unknown as { signWorkers: { injectFault(fault: InstanceFault): Promise<void> } }).signWorkers;
}

/** Reaches the store's signing threads; the test kills one the way a crashing thread would go. */
function signingThreads(store: Pkcs11KeyStore): Worker[] {
  const pool = (store as unknown as { signWorkers: { threads: Array<{ worker: Worker }> } }).signWorkers;
  return pool.threads.map((thread) => thread.worker);
}

describe(`${Pkcs11KeyStore.name} signing threads`, () => {
  let store: Pkcs11KeyStore;
  let key: KeyInfo;

  beforeAll(async () => {
    const token = await createTestToken('threads');
    store = await openStore(token, { poolSize: 8, signWorkers: 2 });
    key = await store.createKey({ spec: 'EC-256', label: 'thread-key' });
  });

  afterAll(() => store?.close());

  it('reports its signing threads in health(), each on its own instance of the SoftHSM2 module by default', () => {
    expect(store.health()).toMatchObject({ state: 'ready', signThreads: { configured: 2, running: 2, ownModule: 2 } });
  });

  it.each<InstanceFault>(['close-all-sessions', 'logout', 'finalize'])(
    "recovers its own module instance after a real '%s' on it, without failing a signature",
    async (fault) => {
      const s = sample('EC-256', `after ${fault}`);
      // Warm: every thread has a session, a login and the key's handle when the fault hits.
      await Promise.all(Array.from({ length: 16 }, () => store.sign(key.uri, s.digest, { hash: s.hash })));
      const before = store.counters();
      await threadPool(store).injectFault(fault);
      const signatures = await Promise.all(
        Array.from({ length: 64 }, () => store.sign(key.uri, s.digest, { hash: s.hash })),
      );
      for (const signature of signatures) expect(verifyWithNode('EC-256', key.publicKeySpki, s, signature)).toBe(true);
      const after = store.counters();
      expect(after.signOperations - before.signOperations).toBe(64);
      expect(after.signFailures).toBe(before.signFailures);
      // The key store's own pool never saw the fault: it is the process's instance, untouched.
      expect(after.recoveries).toBe(before.recoveries);
      expect(store.health()).toMatchObject({
        state: 'ready',
        inFlight: 0,
        sessions: 8,
        signThreads: { running: 2, ownModule: 2 },
      });
    },
  );

  it('leaves no copy of the module behind: each thread deletes its private copy once it is mapped', async () => {
    const copies = (): string[] => fs.readdirSync(os.tmpdir()).filter((name) => name.startsWith('signet-pkcs11-'));
    const before = copies();
    const token = await createTestToken('threads-copies');
    const extra = await openStore(token, { poolSize: 4, signWorkers: 3 });
    try {
      expect(extra.health().signThreads).toEqual({ configured: 3, running: 3, ownModule: 3 });
      expect(copies()).toEqual(before);
    } finally {
      await extra.close();
    }
  });

  it("shares the process's instance when told to, or when no private copy can be mapped (and says why)", async () => {
    const token = await createTestToken('threads-shared');
    const shared = await openStore(token, { poolSize: 4, signWorkers: 2, signThreadModule: 'shared' });
    try {
      expect(shared.health().signThreads).toEqual({ configured: 2, running: 2, ownModule: 0 });
      const own = await shared.createKey({ spec: 'EC-256', label: 'shared-key' });
      const s = sample('EC-256', 'shared instance');
      expect(
        verifyWithNode(own.spec, own.publicKeySpki, s, await shared.sign(own.uri, s.digest, { hash: s.hash })),
      ).toBe(true);
      // The seam never touches the process's instance: the key store's pool owns it.
      await expect(threadPool(shared).injectFault('finalize')).rejects.toThrow(/own module instance only/);
    } finally {
      await shared.close();
    }

    // A copy directory that does not exist stands in for a noexec or full one.
    const warnings: string[] = [];
    const logger = {
      log: () => undefined,
      warn: (m: string) => warnings.push(m),
      error: (m: string) => warnings.push(m),
    };
    const fallback = await openStore(
      token,
      { poolSize: 4, signWorkers: 2, moduleCopyDir: path.join(os.tmpdir(), 'signet-no-such-dir', 'copies') },
      { logger },
    );
    try {
      expect(fallback.health().signThreads).toEqual({ configured: 2, running: 2, ownModule: 0 });
      expect(warnings.filter((w) => /could not map a private copy of the module/.test(w))).toHaveLength(2);
      const own = await fallback.createKey({ spec: 'EC-256', label: 'fallback-key' });
      const s = sample('EC-256', 'fallback');
      expect(
        verifyWithNode(own.spec, own.publicKeySpki, s, await fallback.sign(own.uri, s.digest, { hash: s.hash })),
      ).toBe(true);
    } finally {
      await fallback.close();
    }
  });

  it('makes shared-instance threads forget their sessions when the process re-initialises the module, so none signs on a session number the process has reopened', async () => {
    const token = await createTestToken('threads-reinit');
    const shared = await openStore(token, { poolSize: 4, signWorkers: 2, signThreadModule: 'shared' });
    const library = Pkcs11Library.acquire(token.modulePath);
    try {
      const sharedKey = await shared.createKey({ spec: 'EC-256', label: 'reinit-key' });
      const signMany = (round: string) =>
        Promise.all(
          Array.from({ length: 32 }, async (_, i) => {
            const s = sample('EC-256', `${round} ${i}`);
            return verifyWithNode(
              sharedKey.spec,
              sharedKey.publicKeySpki,
              s,
              await shared.sign(sharedKey.uri, s.digest, { hash: s.hash }),
            );
          }),
        );
      // Both threads hold sessions (and the key's handle) on the shared instance.
      expect(await signMany('before')).not.toContain(false);
      const generation = library.generation;
      const before = shared.counters();
      // The process finalises and initialises the instance (what a pool recovery does); its pools
      // reopen sessions, which SoftHSM2 numbers afresh.
      await library.reinitialize(generation);
      expect(library.generation).toBe(generation + 1);
      expect(await signMany('after')).not.toContain(false);
      // No job met a dead or foreign session: nothing failed or was retried, and the one pool
      // recovery is the re-initialisation's own reopen (before the fix: two more, with retries).
      const after = shared.counters();
      expect({
        failures: after.signFailures - before.signFailures,
        retries: after.operationRetries - before.operationRetries,
        recoveries: after.recoveries - before.recoveries,
      }).toEqual({
        failures: 0,
        retries: 0,
        recoveries: 1,
      });
    } finally {
      library.release();
      await shared.close();
    }
  });

  it(`runs its signing threads ${SIGN_THREAD_NICE} nice levels below the event loop, and they sign`, async () => {
    /** Threads of this process by niceness (field 19 of /proc/<pid>/task/<tid>/stat). */
    const niceThreads = (nice: number): number =>
      fs.readdirSync('/proc/self/task').filter((tid) => {
        try {
          return Number(fs.readFileSync(`/proc/self/task/${tid}/stat`, 'utf8').split(') ')[1].split(' ')[16]) === nice;
        } catch {
          return false; // exited meanwhile
        }
      }).length;
    const mainNice = Number(fs.readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ')[16]);
    const threadNice = Math.min(19, mainNice + SIGN_THREAD_NICE);
    expect(threadNice).toBeGreaterThan(mainNice);
    const before = niceThreads(threadNice);
    const token = await createTestToken('threads-nice');
    const extra = await openStore(token, { poolSize: 4, signWorkers: 3 });
    try {
      expect(niceThreads(threadNice)).toBe(before + 3);
      const own = await extra.createKey({ spec: 'EC-256', label: 'nice-key' });
      const s = sample('EC-256', 'nice threads');
      expect(
        verifyWithNode(own.spec, own.publicKeySpki, s, await extra.sign(own.uri, s.digest, { hash: s.hash })),
      ).toBe(true);
      // The process itself is untouched.
      expect(Number(fs.readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ')[16])).toBe(mainNice);
    } finally {
      await extra.close();
    }
    await waitFor(() => niceThreads(threadNice) === before, "the closed store's threads to exit");
  });

  it("with flushAtCheckPhase, a signer sends the jobs of one turn's callbacks in one message per thread; by default, each callback sends its own while a thread has room", async () => {
    const pool = (store as unknown as { signWorkers: { batches: number } }).signWorkers;
    // Eight callers, each in its own callback of one check phase (microtasks run between them),
    // as HTTP requests each arrive in their own I/O callback.
    const signInSeparateCallbacks = (flushAtCheckPhase: boolean) =>
      Promise.all(
        Array.from(
          { length: 8 },
          (_, i) =>
            new Promise<{ s: ReturnType<typeof sample>; signature: Buffer }>((resolve, reject) =>
              setImmediate(() => {
                const s = sample('EC-256', `turn ${String(flushAtCheckPhase)} ${i}`);
                store.signers
                  .keySigner({ flushAtCheckPhase })
                  .sign(key.uri, s.digest, { hash: s.hash })
                  .then((signature) => resolve({ s, signature }), reject);
              }),
            ),
        ),
      );
    for (const flushAtCheckPhase of [false, true]) {
      const before = pool.batches;
      const results = await signInSeparateCallbacks(flushAtCheckPhase);
      for (const { s, signature } of results)
        expect(verifyWithNode('EC-256', key.publicKeySpki, s, signature)).toBe(true);
      const sent = pool.batches - before;
      // Jobs go to the least loaded of the two threads. Gathered: one message to each thread.
      // Default: one message per callback until each thread has two batches in flight, then the rest.
      if (flushAtCheckPhase) expect(sent).toBe(2);
      else expect(sent).toBeGreaterThanOrEqual(5);
    }
  });

  it('fails only the jobs of a thread that dies (503, retryable), replaces the thread, and later signatures verify', async () => {
    const s = sample('EC-256', 'thread death');
    const before = store.counters().signOperations;
    const pending = Array.from({ length: 64 }, () =>
      store.sign(key.uri, s.digest, { hash: s.hash }).catch((err: unknown) => err),
    );
    await signingThreads(store)[0].terminate();
    const results = await Promise.all(pending);
    let failed = 0;
    for (const result of results) {
      if (result instanceof DomainError) {
        expect(result.code).toBe(ErrorCode.HSM_UNAVAILABLE);
        expect(result.details).toMatchObject({ retryable: true });
        failed++;
      } else {
        expect(verifyWithNode('EC-256', key.publicKeySpki, s, result as Buffer)).toBe(true);
      }
    }
    expect(store.counters().signOperations - before).toBe(64 - failed);
    // The session pool lost nothing: every session is back, none is stuck in flight.
    expect(store.health()).toMatchObject({ inFlight: 0, sessions: 8, configuredSessions: 8 });
    await waitFor(() => store.health().signThreads?.running === 2, 'a replacement signing thread');
    for (let i = 0; i < 20; i++) {
      const later = sample('EC-256', `after the replacement ${i}`);
      expect(
        verifyWithNode(
          'EC-256',
          key.publicKeySpki,
          later,
          await store.sign(key.uri, later.digest, { hash: later.hash }),
        ),
      ).toBe(true);
    }
  });
});
