import * as pkcs11js from 'pkcs11js';
import type { Handle } from '../../src/hsm/pkcs11-api';
import { Pkcs11FaultInjector } from '../../src/hsm/pkcs11-fault-injector';
import { Pkcs11KeyStore } from '../../src/hsm/pkcs11-key-store';
import { Pkcs11Library } from '../../src/hsm/pkcs11-library';
import { TEST_HSM, TEST_HSM_NAME } from '../hsm/hsm-test-kit';
import { http, SUBJECT } from '../rotation/rotation-helpers';
import { RotationTestApp, startRotationTestApp } from '../rotation/rotation-test-app';
import {
  DrillSubject,
  expectDrillInvariants,
  faultTimes,
  injectTransport,
  inProcessSubject,
  loadTotals,
  ReadyzProbe,
  reportDrill,
  SignLoad,
  waitFor,
} from './drill-kit';

const CLIENTS = 8;
/** The drill load signs SHA-256 digests: EC-256, or on openCryptoki (no EC) RSA-2048, the RSA spec paired with SHA-256. */
const DRILL_KEY_SPEC = TEST_HSM === 'opencryptoki' ? 'RSA-2048' : 'EC-256';

/**
 * Drill: the named HSM faults of the HSM issue, one after another, against the whole application
 * under a steady sign load of 8 clients over HTTP (app.inject), production recovery settings.
 * Here the signing threads share the process's instance of the module
 * (signThreadModule 'shared', as with a vendor module), so the faults made through a
 * second handle on it reach signing. The second drill below runs the SoftHSM2 default, threads
 * on their own instances.
 * Real faults through a second handle on the same SoftHSM2 module — C_CloseAllSessions, a logout
 * from outside the pool, C_Finalize + C_Initialize by another loader — and, through the fault
 * seam (a double: SoftHSM2 cannot remove a device), CKR_DEVICE_REMOVED and a CKR_TOKEN_NOT_PRESENT
 * outage. For each: only requests in flight at the fault (or sent while the token is absent) fail,
 * each with a retryable 503; the pool returns to its configured size; every request started after
 * that succeeds. Afterwards every delivered signature verifies and the drill invariants hold.
 */
describe(`drill: HSM faults under sign load (${TEST_HSM_NAME}), signing threads sharing the process's module instance`, () => {
  const faults = new Pkcs11FaultInjector();
  /** Other loaders of the module stay referenced until the end (their finaliser must not run mid-drill). */
  const otherLoaders: pkcs11js.PKCS11[] = [];
  let t: RotationTestApp;
  let store: Pkcs11KeyStore;
  let library: Pkcs11Library;
  let load: SignLoad;
  let readyz: ReadyzProbe;
  let subject: DrillSubject;

  const slot = (): Handle => library.locateToken(t.token.tokenLabel)?.slot as Handle;

  beforeAll(async () => {
    // Vendor modules default to libuv's pool: on openCryptoki, ask for the threads this drill is about.
    const hsm = { signThreadModule: 'shared' as const, ...(TEST_HSM === 'opencryptoki' ? { signWorkers: 2 } : {}) };
    t = await startRotationTestApp({ hsmFaults: faults, env: { SIGNET_LOG_LEVEL: 'fatal' }, hsm });
    store = t.app.get(Pkcs11KeyStore);
    expect(store.health().signThreads).toMatchObject({ ownModule: 0 });
    library = Pkcs11Library.acquire(t.token.modulePath);
    const api = http(t.app, t.adminToken);
    expect(
      (
        await api('POST', '/v1/keys', {
          name: 'drill-hsm',
          keySpec: DRILL_KEY_SPEC,
          subject: { ...SUBJECT, CN: 'drill-hsm' },
        })
      ).status,
    ).toBe(201);
    const signer = (await api('POST', '/v1/tokens', { name: 'drill-signer', role: 'signer', keys: ['drill-hsm'] })).body
      .token;
    subject = inProcessSubject(t.app, t.adminToken, t.database.url);
    load = new SignLoad(injectTransport(t.app, signer, 'drill-hsm'), { clients: CLIENTS }).start();
    readyz = new ReadyzProbe(async () => (await t.app.inject({ method: 'GET', url: '/readyz' })).statusCode);
    await load.deliveredSince(0, 100);
  }, 180_000);

  afterAll(async () => {
    faults.disarm();
    await load?.stop();
    await readyz?.stop();
    library?.release();
    await t?.close();
  });

  const poolRestored = () => {
    const health = store.health();
    return health.state === 'ready' && health.tokens.every((token) => token.sessions === token.configuredSessions)
      ? Date.now()
      : false;
  };

  /**
   * Applies one fault under the load; `inject` resolves with the instants the fault landed and ended.
   * Then waits for the pool's recovery and its configured size, and for signing to go on.
   */
  async function drill(name: string, inject: () => Promise<{ faultAt: number; recoveredAt: number }>): Promise<void> {
    await load.deliveredSince(Date.now(), 50);
    const recoveries = store.counters().recoveries;
    const { faultAt, recoveredAt } = await inject();
    await waitFor(`a pool recovery after ${name}`, () => store.counters().recoveries > recoveries, 60_000, 5);
    const restoredAt = await waitFor(`the pool back at its configured size after ${name}`, poolRestored, 60_000, 5);
    await load.deliveredSince(restoredAt, 50);
    const until = Date.now();

    const window = load.records.filter((r) => r.at >= faultAt && r.startedAt < until);
    const failures = window.filter((r) => r.status !== 200);
    for (const failure of failures) {
      expect({
        status: failure.status,
        code: failure.error?.code,
        retryable: failure.error?.retryable === true || failure.retryAfter !== undefined,
      }).toEqual({ status: 503, code: 'HSM_UNAVAILABLE', retryable: true });
    }
    // Only what was in flight (or sent while the fault lasted) fails: nothing started after the pool was back.
    expect(failures.filter((r) => r.startedAt > restoredAt)).toEqual([]);
    expect(store.health()).toMatchObject({ state: 'ready', sessions: store.health().configuredSessions });
    reportDrill(`hsm: ${name}`, {
      ...faultTimes(load, { faultAt, recoveredAt, until }, readyz),
      faultToPoolRestoredMs: restoredAt - faultAt,
      recoveryToPoolRestoredMs: restoredAt - recoveredAt,
      requestsInFlightAtFault: load.records.filter((r) => r.startedAt < faultAt && r.at >= faultAt).length,
      clients: CLIENTS,
    });
  }

  /**
   * A real fault, applied in the same synchronous step as a check that no HSM operation holds a
   * session: closing sessions or finalising the library under a running C_Sign is undefined
   * behaviour in SoftHSM2 (it can crash the process). Sign requests are still in flight in the
   * service (authenticated, resolving the key, queued for a session) and meet what the fault left.
   */
  async function atQuietInstant(fault: () => void): Promise<{ faultAt: number; recoveredAt: number }> {
    const at = await waitFor(
      'an instant with no HSM operation holding a session',
      () => {
        if (store.health().inFlight !== 0) return false;
        fault();
        return Date.now();
      },
      30_000,
      0,
    );
    return { faultAt: at, recoveredAt: at };
  }

  it('C_CloseAllSessions from outside the pool: in-flight signs fail retryable or are retried, the pool reopens to its size', async () => {
    await drill('C_CloseAllSessions', () => atQuietInstant(() => library.api.C_CloseAllSessions(slot())));
  });

  it('a logout from outside the pool: the pool logs in again and signing goes on', async () => {
    await drill('external logout', () =>
      atQuietInstant(() => {
        const outsider = library.api.C_OpenSession(slot(), pkcs11js.CKF_SERIAL_SESSION);
        library.api.C_Logout(outsider);
        library.api.C_CloseSession(outsider);
      }),
    );
  });

  it('C_Finalize and C_Initialize by another loader of the module: the pool reopens its sessions', async () => {
    await drill('finalize + reload by another loader', () =>
      atQuietInstant(() => {
        const other = new pkcs11js.PKCS11();
        otherLoaders.push(other);
        other.load(t.token.modulePath);
        other.C_Finalize();
        other.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
      }),
    );
  });

  it('CKR_DEVICE_REMOVED on the next three PKCS#11 calls (injected at the seam): in-flight requests 503 retryable, then signing resumes', async () => {
    const fired = faults.firedCount('CKR_DEVICE_REMOVED');
    await drill('CKR_DEVICE_REMOVED ×3 (injected)', async () => {
      const faultAt = Date.now();
      faults.arm('CKR_DEVICE_REMOVED', { count: 3 });
      const recoveredAt = await waitFor(
        'the three injected faults to fire',
        () => (faults.firedCount('CKR_DEVICE_REMOVED') === fired + 3 ? Date.now() : false),
        60_000,
        1,
      );
      return { faultAt, recoveredAt };
    });
  });

  it('a CKR_TOKEN_NOT_PRESENT outage (injected at the seam): 503 retryable and /readyz 503 while the token is absent, back by itself', async () => {
    await drill('CKR_TOKEN_NOT_PRESENT outage (injected)', async () => {
      const armedAt = Date.now();
      faults.arm('CKR_TOKEN_NOT_PRESENT', { count: Infinity });
      await waitFor(
        'the token reported down, /readyz 503 and refused signs',
        () =>
          store.health().state === 'down' &&
          readyz.firstAfter(armedAt, (s) => s === 503) !== undefined &&
          load.records.filter((r) => r.at > armedAt && r.status === 503).length >= 20,
      );
      faults.disarm();
      return { faultAt: armedAt, recoveredAt: Date.now() };
    });
    const refusedWhileDown = load.failed.filter((r) => r.error?.code === 'HSM_UNAVAILABLE');
    expect(refusedWhileDown.length).toBeGreaterThanOrEqual(20);
  });

  it('after all the faults: the audit chain and checkpoints verify, every delivered signature is audited and verifies, HSM reconciliation is clean', async () => {
    await load.stop();
    reportDrill('hsm: whole drill', { ...loadTotals(load), clients: CLIENTS });
    expect(load.delivered.length).toBeGreaterThan(500);
    await expectDrillInvariants(subject, load, 'drill-hsm');
  });
});

type InstanceFault = 'close-all-sessions' | 'logout' | 'finalize';

/**
 * Drill: the SoftHSM2 default, each signing thread on its own instance of the module. Real faults
 * on those instances (through the threads' fault seam: all sessions closed, logged out,
 * finalised) under the same sign load: each thread recovers its instance by itself and not one
 * request fails. Real faults on the process's instance (a second handle on it) do not reach
 * signing at all; the key store's pool recovers when it next uses a session.
 */
// Not on openCryptoki: a private copy of libopencryptoki still shares the one token library (STDLL)
// of the process, so there are no own instances to fault (docs/hsm.md).
if (TEST_HSM === 'softhsm')
  describe('drill: HSM faults under sign load, signing threads on their own module instances', () => {
    const otherLoaders: pkcs11js.PKCS11[] = [];
    let t: RotationTestApp;
    let store: Pkcs11KeyStore;
    let library: Pkcs11Library;
    let load: SignLoad;
    let subject: DrillSubject;

    const slot = (): Handle => library.locateToken(t.token.tokenLabel)?.slot as Handle;
    const threads = (): { injectFault(fault: InstanceFault): Promise<void> } =>
      (store as unknown as { signWorkers: { injectFault(fault: InstanceFault): Promise<void> } }).signWorkers;

    beforeAll(async () => {
      t = await startRotationTestApp({ env: { SIGNET_LOG_LEVEL: 'fatal' } });
      store = t.app.get(Pkcs11KeyStore);
      const configured = store.health().signThreads?.configured;
      expect(store.health().signThreads).toEqual({ configured, running: configured, ownModule: configured });
      library = Pkcs11Library.acquire(t.token.modulePath);
      const api = http(t.app, t.adminToken);
      expect(
        (
          await api('POST', '/v1/keys', {
            name: 'drill-own',
            keySpec: 'EC-256',
            subject: { ...SUBJECT, CN: 'drill-own' },
          })
        ).status,
      ).toBe(201);
      const signer = (
        await api('POST', '/v1/tokens', { name: 'drill-own-signer', role: 'signer', keys: ['drill-own'] })
      ).body.token;
      subject = inProcessSubject(t.app, t.adminToken, t.database.url);
      load = new SignLoad(injectTransport(t.app, signer, 'drill-own'), { clients: CLIENTS }).start();
      await load.deliveredSince(0, 100);
    }, 180_000);

    afterAll(async () => {
      await load?.stop();
      library?.release();
      await t?.close();
    });

    /** Applies `fault` under the load, waits for 200 more signatures, and expects no request in that window to have failed. */
    async function noRequestFails(name: string, fault: () => Promise<void> | void): Promise<void> {
      await load.deliveredSince(Date.now(), 50);
      const faultAt = Date.now();
      await fault();
      await load.deliveredSince(Date.now(), 200);
      const until = Date.now();
      expect(load.records.filter((r) => r.at >= faultAt && r.startedAt < until && r.status !== 200)).toEqual([]);
      reportDrill(`hsm (own instances): ${name}`, {
        ...faultTimes(load, { faultAt, recoveredAt: faultAt, until }),
        clients: CLIENTS,
      });
    }

    it.each<InstanceFault>(['close-all-sessions', 'logout', 'finalize'])(
      "a real '%s' on every signing thread's own instance: each thread recovers it, no request fails",
      async (fault) => {
        await noRequestFails(`${fault} on the threads' instances`, () => threads().injectFault(fault));
        expect(store.health()).toMatchObject({
          state: 'ready',
          signThreads: { running: store.health().signThreads?.configured },
        });
      },
    );

    it("C_CloseAllSessions and a logout on the process's instance do not reach signing; the pool recovers when next used", async () => {
      const recoveries = store.counters().recoveries;
      await noRequestFails("sessions closed and logout on the process's instance", () => {
        library.api.C_CloseAllSessions(slot());
        const outsider = library.api.C_OpenSession(slot(), pkcs11js.CKF_SERIAL_SESSION);
        library.api.C_Logout(outsider);
        library.api.C_CloseSession(outsider);
      });
      // Listing keys needs a session of the pool: the dead ones are found and replaced, and it retries.
      await store.listKeys();
      expect(store.counters().recoveries).toBeGreaterThan(recoveries);
      expect(store.health()).toMatchObject({ state: 'ready', sessions: store.health().configuredSessions });
    });

    it("C_Finalize and C_Initialize of the process's instance by another loader do not reach signing either", async () => {
      await noRequestFails("finalize + reload of the process's instance", () => {
        const other = new pkcs11js.PKCS11();
        otherLoaders.push(other);
        other.load(t.token.modulePath);
        other.C_Finalize();
        other.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
      });
      await store.listKeys();
      expect(store.health()).toMatchObject({ state: 'ready', sessions: store.health().configuredSessions });
    });

    it('afterwards: the audit chain and checkpoints verify, every delivered signature is audited and verifies, HSM reconciliation is clean', async () => {
      await load.stop();
      reportDrill('hsm (own instances): whole drill', { ...loadTotals(load), clients: CLIENTS });
      expect(load.failed).toEqual([]);
      await expectDrillInvariants(subject, load, 'drill-own');
    });
  });
