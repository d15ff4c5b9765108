import * as pkcs11js from 'pkcs11js';
import type { HsmState, TokenHealth } from './key-store';
import { CKS_RO_PUBLIC_SESSION, CKS_RW_PUBLIC_SESSION } from './pkcs11-api';
import {
  Pkcs11Error,
  type PoolRecoveryAction,
  hsmUnavailable,
  isFatalLoginError,
  isPoolRecoveryAction,
  recoveryActionFor,
  strongerAction,
  toPkcs11Error,
} from './pkcs11-errors';
import type { LibraryClient } from './pkcs11-library';
import { type PooledSession, TokenSessions } from './token-sessions';

// Callers take the session and option types from the pool they use.
export type { PooledSession, SessionPoolOptions } from './token-sessions';

const SESSION_SUSPECT = Symbol('signet.sessionSuspect');

/**
 * Marks an error after which the session's state is unknown though PKCS#11 returned no code (a
 * signing thread stopped between C_SignInit and C_Sign): the pool replaces the session.
 */
export function markSessionSuspect<E extends Error>(error: E): E {
  Object.defineProperty(error, SESSION_SUSPECT, { value: true, enumerable: false });
  return error;
}

function isSessionSuspect(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as Record<symbol, unknown>)[SESSION_SUSPECT] === true;
}

type PoolState = HsmState | 'closed' | 'opening';

interface Waiter {
  resolve: (session: PooledSession) => void;
  reject: (error: Error) => void;
  operation: string;
  since: number;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A bounded pool of logged-in sessions on one token, and the recovery state machine for it.
 *
 * One operation per session at a time (PKCS#11 sessions are not re-entrant); requests beyond the
 * pool size wait in FIFO order. When an operation fails with a code that means the sessions, the
 * login or the library are gone, the pool stops handing out sessions, waits for the operations in
 * flight to settle (drain), then re-logs in, reopens its sessions or has the library re-initialised,
 * with bounded retries and backoff, and finally restores the configured session count. Requests
 * that cannot be served fail with HSM_UNAVAILABLE (retryable, 503). Opening, closing and
 * re-establishing the sessions themselves is TokenSessions' part; the hot path (run, acquire,
 * release) stays in this class.
 */
export class SessionPool extends TokenSessions implements LibraryClient {
  private state: PoolState = 'opening';
  private waiters: Waiter[] = [];
  private inFlightCount = 0;
  private drainWaiters: Array<() => void> = [];
  private recovering?: Promise<void>;
  private pendingAction: PoolRecoveryAction = 'relogin';
  private downTimer?: NodeJS.Timeout;
  private waiterSweep?: NodeJS.Timeout;
  private unregister?: () => void;
  private lastErrorText?: string;
  recoveries = 0;
  operationRetries = 0;
  lastRecoveryAt?: Date;

  get inFlight(): number {
    return this.inFlightCount;
  }

  /** Finds the token, opens the configured sessions and logs in. Throws on failure (boot stops). */
  open(): void {
    const token = this.library.locateToken(this.options.tokenLabel, this.api());
    if (!token)
      throw Object.assign(
        new Error(`hsm: token '${this.options.tokenLabel}' not found in ${this.library.modulePath}`),
        { tokenNotFound: true },
      );
    this.slot = token.slot;
    try {
      this.openSessions();
    } catch (err) {
      this.closeOwnSessions();
      const p11 = toPkcs11Error(err, 'open');
      throw new Error(
        `hsm: cannot open sessions on token '${this.options.tokenLabel}': ${p11?.ckr ?? (err as Error).message}`,
      );
    }
    this.libraryGeneration = this.library.generation;
    this.unregister = this.library.register(this);
    this.state = 'ready';
  }

  /**
   * Runs `fn` on a session of its own. PKCS#11 failures that call for a pool recovery trigger one;
   * with `retry`, the operation runs again once the pool is back (bounded), else it fails with
   * HSM_UNAVAILABLE. Other PKCS#11 errors are rethrown as Pkcs11Error for the caller to map.
   */
  async run<T>(operation: string, fn: (session: PooledSession) => T | Promise<T>, retry = true): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const acquired = this.acquire(operation);
      const session = acquired instanceof Promise ? await acquired : acquired;
      let result: T;
      try {
        result = await fn(session);
      } catch (err) {
        const p11 = toPkcs11Error(err, operation);
        if (!p11) {
          this.release(session, isSessionSuspect(err));
          throw err;
        }
        let action = recoveryActionFor(p11.ckr);
        // SoftHSM2 reports a logout as CKR_OBJECT_HANDLE_INVALID on private objects: ask the session.
        if (action === 'refresh-handle' && this.isLoggedOut(session)) action = 'relogin';
        // Start the recovery first: it waits for this session's release, and a pool that is
        // recovering closes the failed session instead of opening a replacement next to it.
        const recovery = isPoolRecoveryAction(action) ? this.recover(action, p11) : undefined;
        // Any PKCS#11 failure may leave an operation active on the session (C_Sign with
        // CKR_ARGUMENTS_BAD does): replace the session rather than reason about which codes end it.
        this.release(session, true);
        if (recovery) {
          if (retry && attempt < this.options.recovery.maxOperationRetries) {
            this.operationRetries++;
            await recovery;
            continue;
          }
          throw hsmUnavailable(operation, p11);
        }
        if (
          (action === 'refresh-handle' || action === 'discard-session') &&
          retry &&
          attempt < this.options.recovery.maxOperationRetries
        ) {
          this.operationRetries++;
          continue;
        }
        throw p11;
      }
      this.release(session, false);
      return result;
    }
  }

  /**
   * Checks one idle session while the pool is ready: a session that is gone, or no longer logged
   * in, starts the recovery its error calls for (and the check runs again once it is done). Never
   * rejects; waits for no session.
   */
  async probe(): Promise<void> {
    if (this.state !== 'ready' || this.idle.length === 0) return;
    await this.run('C_GetSessionInfo', (session) => {
      const { state } = this.api().C_GetSessionInfo(session.handle);
      if (state === CKS_RO_PUBLIC_SESSION || state === CKS_RW_PUBLIC_SESSION) {
        throw new Pkcs11Error('CKR_USER_NOT_LOGGED_IN', pkcs11js.CKR_USER_NOT_LOGGED_IN, 'C_GetSessionInfo');
      }
    }).catch(() => undefined);
  }

  health(): TokenHealth {
    const state: TokenHealth['state'] = this.state === 'opening' ? 'recovering' : this.state;
    return {
      role: this.options.role,
      tokenLabel: this.options.tokenLabel,
      state,
      sessions: this.sessions.size,
      configuredSessions: this.options.size,
      inFlight: this.inFlightCount,
      waiting: this.waiters.length,
      ...(this.lastErrorText ? { lastError: this.lastErrorText } : {}),
    };
  }

  get lastError(): string | undefined {
    return this.lastErrorText;
  }

  /** Resolves when no operation holds a session. */
  drained(): Promise<void> {
    if (this.inFlightCount === 0) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  /** Library client hook: stop handing out sessions and let the in-flight operations settle. */
  prepareForLibraryReset(): Promise<void> {
    if (this.state === 'closed') return Promise.resolve();
    void this.recover('reopen', new Error('library re-initialisation'));
    return this.drained();
  }

  /**
   * Starts (or joins, escalating its remedy) the recovery of this pool. Never rejects: the outcome
   * is the pool state ('ready' or 'down').
   */
  recover(action: PoolRecoveryAction, cause: unknown): Promise<void> {
    this.noteError(cause);
    if (this.state === 'closed') return Promise.resolve();
    this.pendingAction = this.recovering ? strongerAction(this.pendingAction, action) : action;
    if (this.recovering) return this.recovering;
    if (this.downTimer) clearTimeout(this.downTimer);
    this.downTimer = undefined;
    this.state = 'recovering';
    this.options.logger.warn(
      `hsm: token '${this.options.tokenLabel}': ${this.lastErrorText ?? 'fault'}; recovering (${action})`,
    );
    this.recovering = this.runRecovery().finally(() => {
      this.recovering = undefined;
    });
    return this.recovering;
  }

  /** Waits for in-flight operations, closes this pool's sessions (never other clients'), rejects waiters. */
  async close(): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'closed';
    if (this.downTimer) clearTimeout(this.downTimer);
    this.stopWaiterSweep();
    this.rejectWaiters('key store closed');
    await this.drained();
    this.closeOwnSessions();
    this.unregister?.();
  }

  private acquire(operation: string): PooledSession | Promise<PooledSession> {
    if (this.state === 'ready' && this.idle.length > 0 && this.waiters.length === 0) {
      const session = this.idle.pop() as PooledSession;
      this.inFlightCount++;
      return session;
    }
    if (this.state === 'closed') throw hsmUnavailable(operation, undefined, 'key store closed');
    if (this.state === 'down') throw hsmUnavailable(operation, undefined, this.lastErrorText ?? 'token down');
    return new Promise<PooledSession>((resolve, reject) => {
      this.waiters.push({ resolve, reject, operation, since: Date.now() });
      this.startWaiterSweep();
    });
  }

  private release(session: PooledSession, discard: boolean): void {
    this.inFlightCount--;
    session.pinned = undefined;
    if (!this.sessions.has(session) || session.epoch !== this.epochValue) {
      // Opened before the last rebuild: already closed (or invalidated) by the recovery.
    } else if (discard) {
      this.replaceSession(session);
    } else {
      this.idle.push(session);
    }
    if (this.inFlightCount === 0 && this.drainWaiters.length > 0) {
      const waiters = this.drainWaiters;
      this.drainWaiters = [];
      for (const resolve of waiters) resolve();
    }
    if (this.state === 'ready') this.dispatch();
  }

  private dispatch(): void {
    while (this.state === 'ready' && this.idle.length > 0 && this.waiters.length > 0) {
      const waiter = this.waiters.shift() as Waiter;
      const session = this.idle.pop() as PooledSession;
      this.inFlightCount++;
      waiter.resolve(session);
    }
    if (this.waiters.length === 0) this.stopWaiterSweep();
  }

  /** One timer for all waiters (FIFO, so the oldest is first) instead of one timer per request. */
  private startWaiterSweep(): void {
    if (this.waiterSweep) return;
    const period = Math.max(10, Math.min(1000, Math.floor(this.options.acquireTimeoutMs / 4)));
    this.waiterSweep = setInterval(() => {
      const deadline = Date.now() - this.options.acquireTimeoutMs;
      while (this.waiters.length > 0 && this.waiters[0].since <= deadline) {
        const waiter = this.waiters.shift() as Waiter;
        waiter.reject(
          hsmUnavailable(waiter.operation, undefined, `no session within ${this.options.acquireTimeoutMs} ms`),
        );
      }
      if (this.waiters.length === 0) this.stopWaiterSweep();
    }, period);
    this.waiterSweep.unref();
  }

  private stopWaiterSweep(): void {
    if (this.waiterSweep) clearInterval(this.waiterSweep);
    this.waiterSweep = undefined;
  }

  private rejectWaiters(reason: string): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const waiter of waiters) waiter.reject(hsmUnavailable(waiter.operation, undefined, reason));
    this.stopWaiterSweep();
  }

  private replaceSession(session: PooledSession): void {
    this.sessions.delete(session);
    this.closeQuietly(session.handle);
    if (this.state !== 'ready') return; // the running recovery reopens the full pool
    try {
      this.idle.push(this.newSession());
    } catch (err) {
      const p11 = toPkcs11Error(err, 'C_OpenSession');
      const action = p11 ? recoveryActionFor(p11.ckr) : 'none';
      void this.recover(isPoolRecoveryAction(action) ? action : 'reopen', p11 ?? err);
    }
  }

  private async runRecovery(): Promise<void> {
    await this.drained();
    const { maxAttempts, initialBackoffMs, maxBackoffMs } = this.options.recovery;
    let delay = initialBackoffMs;
    for (let attempt = 1; ; attempt++) {
      if (this.state === 'closed') return;
      const action = this.pendingAction;
      try {
        await this.restore(action);
        if (this.state !== 'recovering') return; // closed meanwhile
        this.epochValue++;
        for (const session of this.sessions) (session as { epoch: number }).epoch = this.epochValue;
        this.state = 'ready';
        this.recoveries++;
        this.lastRecoveryAt = new Date();
        this.options.logger.log(
          `hsm: token '${this.options.tokenLabel}' recovered (${action}, attempt ${attempt}); ${this.sessions.size} sessions`,
        );
        this.dispatch();
        return;
      } catch (err) {
        this.noteError(err);
        const p11 = toPkcs11Error(err, 'recover');
        if (p11 && isFatalLoginError(p11.ckr)) {
          this.goDown(false);
          return;
        }
        this.pendingAction = strongerAction(this.pendingAction, this.escalate(action, p11, attempt));
        if (attempt >= maxAttempts) {
          this.goDown(true);
          return;
        }
        await sleep(delay);
        delay = Math.min(delay * 2, maxBackoffMs);
      }
    }
  }

  private escalate(action: PoolRecoveryAction, p11: Pkcs11Error | undefined, attempt: number): PoolRecoveryAction {
    const indicated = p11 ? recoveryActionFor(p11.ckr) : 'none';
    let next: PoolRecoveryAction = isPoolRecoveryAction(indicated) ? strongerAction(indicated, 'reopen') : 'reopen';
    // Some modules enumerate slots only in C_Initialize: a token that stays away through two
    // reopen attempts gets a re-initialisation.
    if (action === 'reopen' && attempt >= 2) next = 'reinitialize';
    return next;
  }

  private goDown(retry: boolean): void {
    if (this.state === 'closed') return;
    this.state = 'down';
    this.closeOwnSessions();
    this.rejectWaiters(this.lastErrorText ?? 'token down');
    this.options.logger.error(
      `hsm: token '${this.options.tokenLabel}' is down (${this.lastErrorText ?? 'unknown error'})` +
        (retry
          ? `; retrying every ${this.options.recovery.downRetryMs} ms`
          : '; not retrying (login failure would lock the token)'),
    );
    if (!retry) return;
    this.downTimer = setTimeout(() => {
      this.downTimer = undefined;
      if (this.state === 'down')
        void this.recover(strongerAction(this.pendingAction, 'reopen'), new Error(this.lastErrorText ?? 'token down'));
    }, this.options.recovery.downRetryMs);
    this.downTimer.unref();
  }

  private noteError(cause: unknown): void {
    if (cause === undefined) return;
    const p11 = toPkcs11Error(cause, 'hsm');
    this.lastErrorText = p11 ? `${p11.operation}: ${p11.ckr}` : cause instanceof Error ? cause.message : String(cause);
  }
}
