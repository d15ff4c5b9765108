import type { HsmCounters, HsmHealth, ReconciliationReport } from './key-store';

/**
 * Keeps the tokens and the references to them in step: reconciles token objects with the URIs the
 * database holds, probes idle sessions (a broken one starts the session pool's recovery) and
 * reports the tokens' state and counters.
 */
export interface HsmReconciler {
  /** Token objects no referenced URI names, and referenced URIs whose private key is missing. */
  reconcile(referencedKeyUris: Iterable<string>): Promise<ReconciliationReport>;
  /** Checks one idle session per token now, as the periodic probe does; never rejects. */
  probe(): Promise<void>;
  /** For /readyz. Synchronous and cheap: reads counters, never calls the HSM. */
  health(): HsmHealth;
  counters(): HsmCounters;
}

/** Injection token for the HsmReconciler part of the key store. */
export const HSM_RECONCILER = Symbol('HSM_RECONCILER');
