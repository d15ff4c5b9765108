import * as fs from 'node:fs';
import type { Worker } from 'node:worker_threads';
import { DomainError, ErrorCode } from '../../src/common/errors';
import type { KeyInfo } from '../../src/hsm/key-store';
import { Pkcs11KeyStore } from '../../src/hsm/pkcs11-key-store';
import { SIGN_THREAD_NICE } from '../../src/hsm/sign-workers';
import { createTestToken } from '../support/softhsm';
import { openStore, sample, verifyWithNode } from './hsm-test-kit';

/** Reaches the store's signing threads; the test kills one the way a crashing thread would go. */
function signingThreads(store: Pkcs11KeyStore): Worker[] {
  const pool = (store as unknown as { signWorkers: { threads: Array<{ worker: Worker }> } }).signWorkers;
  return pool.threads.map((thread) => thread.worker);
}

async function waitFor(condition: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
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

  it('reports its signing threads in health()', () => {
    expect(store.health()).toMatchObject({ state: 'ready', signThreads: { configured: 2, running: 2 } });
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
      expect(verifyWithNode(own.spec, own.publicKeySpki, s, await extra.sign(own.uri, s.digest, { hash: s.hash }))).toBe(true);
      // The process itself is untouched.
      expect(Number(fs.readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ')[16])).toBe(mainNice);
    } finally {
      await extra.close();
    }
    await waitFor(() => niceThreads(threadNice) === before, 'the closed store\'s threads to exit');
  });

  it('fails only the jobs of a thread that dies (503, retryable), replaces the thread, and later signatures verify', async () => {
    const s = sample('EC-256', 'thread death');
    const before = store.counters().signOperations;
    const pending = Array.from({ length: 64 }, () => store.sign(key.uri, s.digest, { hash: s.hash }).catch((err: unknown) => err));
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
      expect(verifyWithNode('EC-256', key.publicKeySpki, later, await store.sign(key.uri, later.digest, { hash: later.hash }))).toBe(true);
    }
  });
});
