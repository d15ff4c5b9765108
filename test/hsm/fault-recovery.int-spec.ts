import * as pkcs11js from 'pkcs11js';
import { DomainError, ErrorCode } from '../../src/common/errors';
import type { KeyInfo } from '../../src/hsm/key-store';
import type { Handle } from '../../src/hsm/pkcs11-api';
import { Pkcs11FaultInjector } from '../../src/hsm/pkcs11-fault-injector';
import { Pkcs11KeyStore } from '../../src/hsm/pkcs11-key-store';
import { Pkcs11Library } from '../../src/hsm/pkcs11-library';
import { createTestToken, type TestToken } from '../support/softhsm';
import { SIGNING_MODES, openStore, sample, verifyWithNode, waitFor } from './hsm-test-kit';

const SIGNING_SESSIONS = 4;
const CA_SESSIONS = 2;

/**
 * Each fault is injected in a named way against a live store with a signing token and a separate
 * CA token; afterwards both pools must be back to their configured size and signatures must verify.
 * The faults made with SoftHSM2 itself hit the process's instance of the module. Signing threads
 * on their own instances sign on through them; the key store's pools then recover when they are
 * next used (here: a key created on each token). Faults on the threads' own instances are in
 * sign-threads.int-spec.ts.
 */
describe.each(SIGNING_MODES)(
  `${Pkcs11KeyStore.name} recovers from token faults, signing $mode`,
  ({ signWorkers, signThreadModule }) => {
    let signingToken: TestToken;
    let caToken: TestToken;
    let store: Pkcs11KeyStore;
    let library: Pkcs11Library;
    let signingKey: KeyInfo;
    let caKey: KeyInfo;
    const faults = new Pkcs11FaultInjector();

    const slotOf = (token: TestToken): Handle => library.locateToken(token.tokenLabel)?.slot as Handle;

    async function expectSignaturesVerify(): Promise<void> {
      for (const key of [signingKey, caKey]) {
        const s = sample(key.spec, `after fault ${store.counters().recoveries}`);
        expect(
          verifyWithNode(key.spec, key.publicKeySpki, s, await store.sign(key.uri, s.digest, { hash: s.hash })),
        ).toBe(true);
      }
    }

    /**
     * Uses a session of each pool for something that needs the login: that is when a pool whose
     * sessions died while idle notices. A key creation is not retried (not idempotent): the first
     * may fail with a retryable 503 while the pool recovers; the next one works.
     */
    let probes = 0;
    async function exercisePools(): Promise<void> {
      for (const role of ['signing', 'ca'] as const) {
        const create = (): Promise<KeyInfo> =>
          store.createKey({ spec: 'EC-256', label: `probe-${role}-${probes++}`, role });
        const first = await create().catch((err: unknown) => err);
        if (first instanceof Error) {
          expect(first).toMatchObject({ code: ErrorCode.HSM_UNAVAILABLE, details: { retryable: true } });
          await waitFor(() => store.health().state === 'ready', 'the store ready again');
          await create();
        }
      }
    }

    /** Recoveries the fault caused: exact when signing uses the pools' sessions; threads' own sessions may spare a pool one. */
    function expectRecoveries(before: number, expected: number): void {
      const made = store.counters().recoveries - before;
      if (signWorkers === 0) expect(made).toBe(expected);
      else {
        expect(made).toBeGreaterThanOrEqual(1);
        expect(made).toBeLessThanOrEqual(expected);
      }
    }

    function expectPoolsRestored(): void {
      const health = store.health();
      expect(health.state).toBe('ready');
      expect(health.configuredSessions).toBe(SIGNING_SESSIONS + CA_SESSIONS);
      expect(health.sessions).toBe(SIGNING_SESSIONS + CA_SESSIONS);
      expect(health.inFlight).toBe(0);
      for (const token of health.tokens) expect(token.sessions).toBe(token.configuredSessions);
    }

    /** Signs concurrently while `inject` runs, so faults also hit operations in flight. */
    async function underLoad(inject: () => void): Promise<Array<Buffer | DomainError>> {
      const s = sample('EC-256', 'under load');
      const pending = Array.from({ length: 16 }, () =>
        store.sign(signingKey.uri, s.digest, { hash: s.hash }).catch((err: DomainError) => err),
      );
      inject();
      const results = await Promise.all(pending);
      for (const result of results) {
        if (result instanceof DomainError) expect(result.code).toBe(ErrorCode.HSM_UNAVAILABLE);
        else expect(verifyWithNode('EC-256', signingKey.publicKeySpki, s, result)).toBe(true);
      }
      return results;
    }

    beforeAll(async () => {
      signingToken = await createTestToken('faults-sign');
      caToken = await createTestToken('faults-ca');
      store = await openStore(
        signingToken,
        {
          poolSize: SIGNING_SESSIONS,
          caTokenLabel: caToken.tokenLabel,
          caPin: caToken.pin,
          caPoolSize: CA_SESSIONS,
          signWorkers,
          signThreadModule,
        },
        { faults },
      );
      signingKey = await store.createKey({ spec: 'EC-256', label: 'leaf' });
      caKey = await store.createKey({ spec: 'RSA-2048', label: 'issuing-ca', role: 'ca' });
      library = Pkcs11Library.acquire(signingToken.modulePath);
    });

    afterEach(() => faults.disarm());

    afterAll(async () => {
      await store?.close();
      library?.release();
    });

    it('starts with both pools at their configured size', async () => {
      expectPoolsRestored();
      expect(store.health().tokens.map((t) => t.role)).toEqual(['signing', 'ca']);
      await expectSignaturesVerify();
    });

    it('recovers after all sessions are closed with C_CloseAllSessions (after draining)', async () => {
      const recoveries = store.counters().recoveries;
      // Drained: nothing in flight when the sessions disappear (closing under a running C_Sign is undefined).
      expect(store.health().inFlight).toBe(0);
      library.api.C_CloseAllSessions(slotOf(signingToken));
      library.api.C_CloseAllSessions(slotOf(caToken));
      await expectSignaturesVerify();
      await exercisePools();
      expectRecoveries(recoveries, 2);
      expectPoolsRestored();
    });

    it('logs in again after a logout from outside the pool', async () => {
      const recoveries = store.counters().recoveries;
      const outsider = library.api.C_OpenSession(slotOf(signingToken), pkcs11js.CKF_SERIAL_SESSION);
      library.api.C_Logout(outsider);
      library.api.C_CloseSession(outsider);
      await expectSignaturesVerify();
      await exercisePools();
      expectRecoveries(recoveries, 1);
      expectPoolsRestored();
    });

    it('re-initialises the library after it was finalised behind its back (after draining)', async () => {
      const generation = library.generation;
      library.api.C_Finalize();
      await expectSignaturesVerify();
      await exercisePools();
      expect(library.generation).toBe(generation + 1);
      expectPoolsRestored();
    });

    it('reopens its sessions after the library was finalised and reloaded by another loader (after draining)', async () => {
      const recoveries = store.counters().recoveries;
      const other = new pkcs11js.PKCS11();
      other.load(signingToken.modulePath);
      other.C_Finalize();
      other.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
      await expectSignaturesVerify();
      await exercisePools();
      expectRecoveries(recoveries, 2);
      expectPoolsRestored();
    });

    // SoftHSM2 cannot produce CKR_DEVICE_REMOVED or CKR_TOKEN_NOT_PRESENT: they come from the fault seam in front of pkcs11js.
    it('recovers from CKR_DEVICE_REMOVED, including for operations in flight (injected: SoftHSM2 cannot remove a device)', async () => {
      const results = await underLoad(() => faults.arm('CKR_DEVICE_REMOVED', { count: 3 }));
      expect(faults.firedCount('CKR_DEVICE_REMOVED')).toBe(3);
      expect(results.filter((r) => Buffer.isBuffer(r)).length).toBeGreaterThan(0);
      await expectSignaturesVerify();
      expectPoolsRestored();
    });

    it('reports the token down with 503s during a CKR_TOKEN_NOT_PRESENT outage, then comes back (injected)', async () => {
      faults.arm('CKR_TOKEN_NOT_PRESENT', { count: Infinity });
      const s = sample('EC-256', 'during outage');
      const failure = await store.sign(signingKey.uri, s.digest, { hash: s.hash }).catch((err: unknown) => err);
      expect(failure).toBeInstanceOf(DomainError);
      expect(failure).toMatchObject({ code: ErrorCode.HSM_UNAVAILABLE, details: { retryable: true } });
      expect((failure as Error).message).toContain('CKR_TOKEN_NOT_PRESENT');
      await waitFor(() => store.health().tokens[0].state === 'down', 'the token reported down');
      expect(store.health()).toMatchObject({
        state: 'down',
        lastError: expect.stringContaining('CKR_TOKEN_NOT_PRESENT'),
      });
      // While down, requests fail fast with the retryable error instead of queueing.
      await expect(store.sign(signingKey.uri, s.digest, { hash: s.hash })).rejects.toMatchObject({
        code: ErrorCode.HSM_UNAVAILABLE,
      });

      faults.disarm();
      await waitFor(() => store.health().state === 'ready', 'the store ready again');
      await expectSignaturesVerify();
      expectPoolsRestored();
    });

    it('recovers from CKR_SESSION_HANDLE_INVALID and CKR_USER_NOT_LOGGED_IN reported by C_Sign itself (injected)', async () => {
      for (const ckr of ['CKR_SESSION_HANDLE_INVALID', 'CKR_USER_NOT_LOGGED_IN', 'CKR_SESSION_CLOSED']) {
        faults.arm(ckr, { count: 1, methods: ['C_Sign'] });
        await expectSignaturesVerify();
        expect(faults.firedCount(ckr)).toBe(1);
      }
      expectPoolsRestored();
    });
  },
);
