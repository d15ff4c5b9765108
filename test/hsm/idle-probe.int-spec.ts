import * as pkcs11js from 'pkcs11js';
import type { KeyInfo } from '../../src/hsm/key-store';
import type { Handle } from '../../src/hsm/pkcs11-api';
import { Pkcs11KeyStore } from '../../src/hsm/pkcs11-key-store';
import { Pkcs11Library } from '../../src/hsm/pkcs11-library';
import { createTestToken, type TestToken } from '../support/softhsm';
import { FAST_RECOVERY, openStore, sample, verifyWithNode, waitFor } from './hsm-test-kit';

/**
 * With signing on threads that have their own instance of the module, the key store's pools sit
 * idle for long stretches: a session closed or logged out behind their back used to be noticed
 * only by the next key creation, which then failed once with a 503. The idle-session probe finds
 * it first. Real faults on a real SoftHSM2 token, made through the process's module instance.
 */
describe(`${Pkcs11KeyStore.name} idle-session probe`, () => {
  let signingToken: TestToken;
  let caToken: TestToken;
  let library: Pkcs11Library;

  const slotOf = (token: TestToken): Handle => library.locateToken(token.tokenLabel)?.slot as Handle;

  async function open(probeIntervalMs: number): Promise<Pkcs11KeyStore> {
    return openStore(signingToken, {
      poolSize: 2,
      caTokenLabel: caToken.tokenLabel,
      caPin: caToken.pin,
      caPoolSize: 2,
      signWorkers: 2,
      signThreadModule: 'own',
      recovery: { ...FAST_RECOVERY, probeIntervalMs },
    });
  }

  function logOutFromOutside(token: TestToken): void {
    const outsider = library.api.C_OpenSession(slotOf(token), pkcs11js.CKF_SERIAL_SESSION);
    library.api.C_Logout(outsider);
    library.api.C_CloseSession(outsider);
  }

  /** Both pools, first try: a create needs the pool's session and its login. */
  async function createKeysFirstTry(store: Pkcs11KeyStore, tag: string): Promise<KeyInfo[]> {
    return [
      await store.createKey({ spec: 'EC-256', label: `${tag}-signing` }),
      await store.createKey({ spec: 'EC-256', label: `${tag}-ca`, role: 'ca' }),
    ];
  }

  beforeAll(async () => {
    signingToken = await createTestToken('probe-sign');
    caToken = await createTestToken('probe-ca');
    library = Pkcs11Library.acquire(signingToken.modulePath);
  });

  afterAll(() => library?.release());

  it('logs the pool in again after a logout from outside, before any request needs it', async () => {
    const store = await open(50);
    try {
      const before = store.counters().recoveries;
      logOutFromOutside(signingToken);
      await waitFor(
        () => store.counters().recoveries > before && store.health().state === 'ready',
        'the probe to recover the pool',
      );
      const [key] = await createKeysFirstTry(store, 'after-logout');
      const s = sample('EC-256', 'after an idle logout');
      expect(
        verifyWithNode('EC-256', key.publicKeySpki, s, await store.sign(key.uri, s.digest, { hash: s.hash })),
      ).toBe(true);
    } finally {
      await store.close();
    }
  });

  it('reopens both pools after C_CloseAllSessions while idle, back to their configured size', async () => {
    const store = await open(50);
    try {
      const before = store.counters().recoveries;
      library.api.C_CloseAllSessions(slotOf(signingToken));
      library.api.C_CloseAllSessions(slotOf(caToken));
      await waitFor(
        () => store.counters().recoveries >= before + 2 && store.health().state === 'ready',
        'the probe to recover both pools',
      );
      const health = store.health();
      for (const token of health.tokens) expect(token.sessions).toBe(token.configuredSessions);
      await createKeysFirstTry(store, 'after-close-all');
    } finally {
      await store.close();
    }
  });

  it('without the probe, an idle pool does not notice the logout until a request meets it', async () => {
    const store = await open(0);
    try {
      const before = store.counters().recoveries;
      logOutFromOutside(signingToken);
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(store.counters().recoveries).toBe(before);
      // The next key creation meets it: recovered and retried (or a retryable 503), not lost.
      await store.createKey({ spec: 'EC-256', label: 'unprobed' }).catch(() => undefined);
      await waitFor(
        () => store.counters().recoveries > before && store.health().state === 'ready',
        'the request-driven recovery',
      );
    } finally {
      await store.close();
    }
  });
});
