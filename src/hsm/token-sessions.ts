import * as pkcs11js from 'pkcs11js';
import type { KeyRole } from './key-store';
import type { HsmLogger } from './hsm-logger';
import type { RecoveryOptions } from './hsm-options';
import { CKS_RO_PUBLIC_SESSION, CKS_RW_PUBLIC_SESSION, type Handle, type Pkcs11Api } from './pkcs11-api';
import { Pkcs11Error, type PoolRecoveryAction, toPkcs11Error } from './pkcs11-errors';
import type { Pkcs11Library } from './pkcs11-library';

/** One PKCS#11 session; the pool hands it to one operation at a time. */
export interface PooledSession {
  readonly handle: Handle;
  /** Pool epoch the session was opened in; object handles are only valid within one epoch. */
  readonly epoch: number;
  /** Output buffer reused by the session's operations (one in flight per session). */
  readonly out: Buffer;
  /**
   * Whatever a native async call reads or writes: pkcs11js hands raw pointers to a libuv thread
   * without keeping the Buffers alive, so they stay referenced here until the callback settles.
   */
  pinned: unknown;
}

export interface SessionPoolOptions {
  role: KeyRole | 'signing+ca';
  tokenLabel: string;
  pin: string;
  size: number;
  acquireTimeoutMs: number;
  recovery: RecoveryOptions;
  logger: HsmLogger;
  /** Largest output any operation needs (RSA-4096 signature, sealed secret…). */
  outputBufferSize: number;
}

/**
 * The sessions a pool holds on its token, and what it takes to (re)establish them: opening them
 * and logging in (`openSessions`; `SessionPool.open` finds the token first and marks the pool
 * ready), closing its own and no one else's, and the remedy a recovery attempt applies (log in
 * again, reopen, or have the module instance re-initialised). Which sessions are in use, and when
 * to recover, is SessionPool's part; nothing here runs per operation. A base class rather than a
 * member so the fields the sign path reads (`idle`, `sessions`, `epochValue`) stay on the pool
 * object itself, one property load away.
 */
export abstract class TokenSessions {
  protected slot?: Handle;
  protected readonly sessions = new Set<PooledSession>();
  protected idle: PooledSession[] = [];
  protected epochValue = 0;
  /** The module instance's generation the sessions were opened in (Pkcs11Library.generation). */
  protected libraryGeneration: number;

  readonly options: Omit<SessionPoolOptions, 'pin'>;
  /** ECMAScript private: never shown by util.inspect or JSON. */
  readonly #pin: string;

  constructor(
    protected readonly library: Pkcs11Library,
    protected readonly api: () => Pkcs11Api,
    options: SessionPoolOptions,
  ) {
    const { pin, ...rest } = options;
    this.options = rest;
    this.#pin = pin;
    this.libraryGeneration = library.generation;
  }

  get epoch(): number {
    return this.epochValue;
  }

  get tokenLabel(): string {
    return this.options.tokenLabel;
  }

  /** The token's slot, once opened (for the capability probe). */
  get slotHandle(): Handle | undefined {
    return this.slot;
  }

  protected isLoggedOut(session: PooledSession): boolean {
    try {
      const { state } = this.api().C_GetSessionInfo(session.handle);
      return state === CKS_RO_PUBLIC_SESSION || state === CKS_RW_PUBLIC_SESSION;
    } catch {
      return false;
    }
  }

  protected newSession(): PooledSession {
    const handle = this.api().C_OpenSession(this.slot as Handle, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
    const session: PooledSession = {
      handle,
      epoch: this.epochValue,
      out: Buffer.alloc(this.options.outputBufferSize),
      pinned: undefined,
    };
    this.sessions.add(session);
    return session;
  }

  protected openSessions(): void {
    const sessions: PooledSession[] = [];
    for (let i = 0; i < this.options.size; i++) sessions.push(this.newSession());
    this.login(sessions[0]);
    this.idle = sessions;
  }

  /** Login is per application and token: one C_Login covers every session of the pool. */
  private login(session: PooledSession): void {
    try {
      this.api().C_Login(session.handle, pkcs11js.CKU_USER, this.#pin);
    } catch (err) {
      const p11 = toPkcs11Error(err, 'C_Login');
      if (p11?.ckr === 'CKR_USER_ALREADY_LOGGED_IN') return;
      throw p11 ?? err;
    }
  }

  protected closeQuietly(handle: Handle): void {
    try {
      this.api().C_CloseSession(handle);
    } catch {
      // already closed (CKR_SESSION_HANDLE_INVALID) or the device is gone: nothing to release
    }
  }

  /**
   * Closes only this pool's sessions (C_CloseAllSessions would take other clients' sessions on the
   * same token with it). Handles from an older library generation are skipped: after
   * re-initialisation the numbers may already belong to someone else's new sessions.
   */
  protected closeOwnSessions(): void {
    if (this.libraryGeneration === this.library.generation) {
      for (const session of this.sessions) this.closeQuietly(session.handle);
    }
    this.sessions.clear();
    this.idle = [];
  }

  /** One recovery attempt's remedy; the caller has waited for the sessions in use to come back. */
  protected async restore(action: PoolRecoveryAction): Promise<void> {
    await this.library.whenStable();
    if (action === 'reinitialize') {
      await this.library.reinitialize(this.libraryGeneration);
    }
    if (
      action === 'relogin' &&
      this.libraryGeneration === this.library.generation &&
      this.sessions.size === this.options.size
    ) {
      const session = this.idle[0] ?? [...this.sessions][0];
      this.login(session);
      return;
    }
    this.closeOwnSessions();
    this.libraryGeneration = this.library.generation;
    const token = this.library.locateToken(this.options.tokenLabel, this.api());
    if (!token) throw new Pkcs11Error('CKR_TOKEN_NOT_PRESENT', pkcs11js.CKR_TOKEN_NOT_PRESENT, 'C_GetTokenInfo');
    this.slot = token.slot;
    try {
      this.openSessions();
    } catch (err) {
      this.closeOwnSessions();
      throw err;
    }
  }
}
