import type { HsmReconciler } from './hsm-reconciler';
import type { KeyManager } from './key-manager';
import { reconcileKeyObjects } from './key-reconciliation';
import type { HsmCounters, HsmHealth, HsmState, ReconciliationReport } from './key-store';
import type { Pkcs11Tokens } from './pkcs11-tokens';

/**
 * HsmReconciler over PKCS#11: the periodic probe of idle sessions (the session pools recover what
 * it finds broken), the tokens' health and counters, and reconciliation of token objects.
 */
export class Pkcs11Reconciler implements HsmReconciler {
  private probeTimer?: NodeJS.Timeout;

  constructor(
    private readonly tokens: Pkcs11Tokens,
    private readonly keys: Pick<KeyManager, 'listKeys'>,
  ) {}

  /** Starts the periodic probe (SIGNET_HSM_PROBE_INTERVAL_MS; none when 0), once the tokens are open. */
  start(): void {
    const probeMs = this.tokens.probeIntervalMs;
    if (probeMs <= 0 || this.probeTimer) return;
    this.probeTimer = setInterval(() => void this.probe(), probeMs);
    this.probeTimer.unref();
  }

  stop(): void {
    clearInterval(this.probeTimer);
  }

  async probe(): Promise<void> {
    await Promise.all(this.tokens.pools.map((pool) => pool.probe()));
  }

  async reconcile(referencedKeyUris: Iterable<string>): Promise<ReconciliationReport> {
    return reconcileKeyObjects(await this.keys.listKeys(), referencedKeyUris);
  }

  health(): HsmHealth {
    const { pools, signWorkers } = this.tokens;
    const tokens = pools.map((pool) => {
      const capabilities = this.tokens.capabilities.get(pool);
      return { ...pool.health(), ...(capabilities ? { capabilities } : {}) };
    });
    const order: HsmState[] = ['ready', 'recovering', 'down'];
    let state: HsmState = this.tokens.closed || tokens.length === 0 ? 'down' : 'ready';
    for (const token of tokens) {
      const tokenState: HsmState = token.state === 'closed' ? 'down' : token.state;
      if (order.indexOf(tokenState) > order.indexOf(state)) state = tokenState;
    }
    const lastRecovery = pools
      .map((pool) => pool.lastRecoveryAt)
      .filter((d): d is Date => d !== undefined)
      .sort((a, b) => b.getTime() - a.getTime())[0];
    const lastError =
      tokens.find((t) => t.state !== 'ready' && t.lastError)?.lastError ?? tokens.find((t) => t.lastError)?.lastError;
    const signThreads = signWorkers
      ? {
          configured: this.tokens.configuredSignWorkers,
          running: signWorkers.threadCount,
          ownModule: signWorkers.ownModuleThreads,
        }
      : undefined;
    // No signing thread left (one is restarted a second after it dies): signing fails until then.
    if (signThreads && signThreads.running === 0 && state === 'ready') state = 'recovering';
    return {
      state,
      sessions: tokens.reduce((n, t) => n + t.sessions, 0),
      configuredSessions: tokens.reduce((n, t) => n + t.configuredSessions, 0),
      inFlight: tokens.reduce((n, t) => n + t.inFlight, 0),
      waiting: tokens.reduce((n, t) => n + t.waiting, 0),
      recoveries: pools.reduce((n, p) => n + p.recoveries, 0),
      ...(lastError ? { lastError } : {}),
      ...(lastRecovery ? { lastRecoveryAt: lastRecovery.toISOString() } : {}),
      tokens,
      ...(signThreads ? { signThreads } : {}),
    };
  }

  counters(): HsmCounters {
    const { pools } = this.tokens;
    return {
      ...this.tokens.stats,
      recoveries: pools.reduce((n, p) => n + p.recoveries, 0),
      operationRetries: pools.reduce((n, p) => n + p.operationRetries, 0),
    };
  }
}
