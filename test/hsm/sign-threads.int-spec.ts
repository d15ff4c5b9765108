import type { Worker } from 'node:worker_threads';
import { DomainError, ErrorCode } from '../../src/common/errors';
import type { KeyInfo } from '../../src/hsm/key-store';
import { Pkcs11KeyStore } from '../../src/hsm/pkcs11-key-store';
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
