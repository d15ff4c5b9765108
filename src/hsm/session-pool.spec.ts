import { DomainError, ErrorCode } from '../common/errors';
import { silentLogger } from './hsm-logger';
import { DEFAULT_RECOVERY } from './hsm-options';
import { CKS_RW_PUBLIC_SESSION, CKS_RW_USER_FUNCTIONS, type Pkcs11Api } from './pkcs11-api';
import { Pkcs11Error, ckrCode } from './pkcs11-errors';
import type { Pkcs11Library } from './pkcs11-library';
import { type PooledSession, SessionPool, type SessionPoolOptions } from './session-pool';

const p11 = (ckr: string): Error => Object.assign(new Error(ckr), { code: ckrCode(ckr) });

/** Stub tier for error paths: a token in memory that fails on demand (the real one is in test/hsm). */
class FakeToken {
  readonly open = new Set<number>();
  loggedIn = false;
  logins = 0;
  loginFailure?: string;
  openFailure?: string;
  private next = 1;

  readonly api = {
    C_OpenSession: () => {
      if (this.openFailure) throw p11(this.openFailure);
      const handle = this.next++;
      this.open.add(handle);
      return Buffer.from([handle]);
    },
    C_CloseSession: (session: Buffer) => {
      this.open.delete(session[0]);
    },
    C_Login: () => {
      this.logins++;
      if (this.loginFailure) throw p11(this.loginFailure);
      if (this.loggedIn) throw p11('CKR_USER_ALREADY_LOGGED_IN');
      this.loggedIn = true;
    },
    C_GetSessionInfo: () => ({ state: this.loggedIn ? CKS_RW_USER_FUNCTIONS : CKS_RW_PUBLIC_SESSION }),
  } as unknown as Pkcs11Api;

  readonly library = {
    modulePath: '/fake/libpkcs11.so',
    generation: 0,
    locateToken: () => (this.openFailure ? undefined : { slot: Buffer.alloc(8), label: 'fake', serialNumber: '1' }),
    register: () => () => undefined,
    whenStable: () => Promise.resolve(),
    reinitialize: () => Promise.resolve(),
  } as unknown as Pkcs11Library;
}

function makePool(token: FakeToken, overrides: Partial<SessionPoolOptions> = {}): SessionPool {
  const pool = new SessionPool(token.library, () => token.api, {
    role: 'signing',
    tokenLabel: 'fake',
    pin: '1234',
    size: 2,
    acquireTimeoutMs: 5_000,
    recovery: { ...DEFAULT_RECOVERY, initialBackoffMs: 1, maxBackoffMs: 2, downRetryMs: 20, maxAttempts: 3 },
    logger: silentLogger,
    outputBufferSize: 64,
    ...overrides,
  });
  pool.open();
  return pool;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !condition(); i++) await sleep(5);
  expect(condition()).toBe(true);
}

describe(SessionPool.name, () => {
  it('runs at most `size` operations at once and serves waiters first come, first served', async () => {
    const token = new FakeToken();
    const pool = makePool(token);
    const started: number[] = [];
    const release: Array<() => void> = [];
    const runs = Array.from({ length: 6 }, (_, i) =>
      pool.run('op', () => {
        started.push(i);
        return new Promise<void>((resolve) => release.push(resolve));
      }),
    );
    await sleep(0);
    expect(started).toEqual([0, 1]);
    expect(pool.health()).toMatchObject({ inFlight: 2, waiting: 4 });
    while (release.length > 0 || started.length < 6) {
      release.shift()?.();
      await sleep(0);
    }
    await Promise.all(runs);
    expect(started).toEqual([0, 1, 2, 3, 4, 5]);
    expect(pool.health()).toMatchObject({ state: 'ready', sessions: 2, inFlight: 0, waiting: 0 });
    await pool.close();
    expect(token.open.size).toBe(0);
  });

  it('fails a request that waits longer than acquireTimeoutMs with HSM_UNAVAILABLE', async () => {
    const pool = makePool(new FakeToken(), { size: 1, acquireTimeoutMs: 30 });
    let finish!: () => void;
    const holder = pool.run('hold', () => new Promise<void>((resolve) => (finish = resolve)));
    await expect(pool.run('sign', () => 'never')).rejects.toMatchObject({
      code: ErrorCode.HSM_UNAVAILABLE,
      message: 'sign: HSM unavailable (no session within 30 ms)',
    });
    finish();
    await holder;
    await pool.close();
  });

  it('replaces the session after a PKCS#11 error that may leave an operation active, and rethrows it typed', async () => {
    const token = new FakeToken();
    const pool = makePool(token);
    let used: PooledSession | undefined;
    const error = await pool
      .run('sign', (session) => {
        used = session;
        throw p11('CKR_ARGUMENTS_BAD');
      })
      .catch((err: unknown) => err);
    expect(error).toBeInstanceOf(Pkcs11Error);
    expect(error).toMatchObject({ ckr: 'CKR_ARGUMENTS_BAD' });
    expect(token.open.has((used as PooledSession).handle[0])).toBe(false);
    expect(pool.health().sessions).toBe(2);
    await pool.close();
  });

  it('never retries a login that failed with CKR_PIN_INCORRECT: down at once, no background retry', async () => {
    const token = new FakeToken();
    const pool = makePool(token);
    expect(token.logins).toBe(1);
    token.loggedIn = false;
    token.loginFailure = 'CKR_PIN_INCORRECT'; // the PIN was changed behind our back
    const error = await pool
      .run('sign', () => {
        throw p11('CKR_USER_NOT_LOGGED_IN');
      })
      .catch((err: unknown) => err);
    expect(error).toBeInstanceOf(DomainError);
    expect(error).toMatchObject({ code: ErrorCode.HSM_UNAVAILABLE });
    expect(pool.health()).toMatchObject({ state: 'down', sessions: 0, lastError: 'C_Login: CKR_PIN_INCORRECT' });
    await sleep(100); // five background-retry periods
    expect(token.logins).toBe(2);
    await expect(pool.run('sign', () => 'x')).rejects.toMatchObject({ code: ErrorCode.HSM_UNAVAILABLE });
    await pool.close();
  });

  it('gives up after maxAttempts, reports down, and restores the configured sessions when the token returns', async () => {
    const token = new FakeToken();
    const pool = makePool(token, { size: 3 });
    token.openFailure = 'CKR_DEVICE_ERROR';
    await expect(
      pool.run('sign', () => {
        throw p11('CKR_SESSION_HANDLE_INVALID');
      }),
    ).rejects.toMatchObject({ code: ErrorCode.HSM_UNAVAILABLE });
    await waitFor(() => pool.health().state === 'down');
    expect(pool.health().sessions).toBe(0);
    token.openFailure = undefined;
    await waitFor(() => pool.health().state === 'ready');
    expect(pool.health()).toMatchObject({ sessions: 3, configuredSessions: 3 });
    expect(await pool.run('sign', () => 'signed')).toBe('signed');
    await pool.close();
  });

  it('retries an operation after recovering, up to maxOperationRetries', async () => {
    const token = new FakeToken();
    const pool = makePool(token);
    let calls = 0;
    const result = await pool.run('sign', () => {
      calls++;
      if (calls < 3) throw p11('CKR_SESSION_CLOSED');
      return 'signed';
    });
    expect(result).toBe('signed');
    expect(pool.recoveries).toBe(2);
    expect(pool.operationRetries).toBe(2);

    calls = 0;
    await expect(
      pool.run('sign', () => {
        throw p11('CKR_SESSION_CLOSED');
      }),
    ).rejects.toMatchObject({ code: ErrorCode.HSM_UNAVAILABLE });
    // The last failure still triggered a recovery, which completes in the background.
    await waitFor(() => pool.health().state === 'ready');
    expect(pool.health().sessions).toBe(2);
    await pool.close();
  });

  it('lets in-flight operations finish on close and rejects the queued ones', async () => {
    const pool = makePool(new FakeToken(), { size: 1 });
    let finish!: () => void;
    const inFlight = pool.run('hold', () => new Promise<string>((resolve) => (finish = () => resolve('done'))));
    const queued = pool.run('queued', () => 'never');
    const closing = pool.close();
    await expect(queued).rejects.toMatchObject({
      code: ErrorCode.HSM_UNAVAILABLE,
      message: 'queued: HSM unavailable (key store closed)',
    });
    finish();
    await expect(inFlight).resolves.toBe('done');
    await closing;
    expect(pool.health().state).toBe('closed');
  });
});
