import { Inject, Injectable, Optional } from '@nestjs/common';
import { Counter, Gauge } from 'prom-client';
import { MetricsService } from '../observability/metrics.service';
import { HSM_RECONCILER, type HsmReconciler } from './hsm-reconciler';
import type { HsmCounters, HsmHealth } from './key-store';

const TOKEN_STATES = ['ready', 'recovering', 'down', 'closed'] as const;

/**
 * HSM pool metrics, registered by the HSM with observability's registry (none without it), read at
 * scrape time from the reconciler's health() and counters() (plain fields the pool keeps anyway),
 * so the sign path does no extra work for them:
 * - `signet_hsm_token_state{token, role, state}`: 1 for each token's current state, 0 for the others;
 * - `signet_hsm_sessions{token, role}` / `signet_hsm_sessions_configured{token, role}`: open vs configured sessions;
 * - `signet_hsm_sessions_in_flight`, `signet_hsm_session_waiters`: operations holding / queued for a session;
 * - `signet_hsm_sign_threads{kind}`: signing threads configured / running (absent when signing runs on libuv's pool);
 * - `signet_hsm_recoveries_total`, `signet_hsm_sign_failures_total`, `signet_hsm_sign_operations_total`.
 */
@Injectable()
export class HsmMetrics {
  constructor(@Inject(HSM_RECONCILER) reconciler: HsmReconciler, @Optional() metrics?: MetricsService) {
    if (!metrics) return;
    const registers = [metrics.registry];
    // One health() per scrape: prom-client collects every metric in one pass.
    let cached: { health: HsmHealth; counters: HsmCounters } | undefined;
    const read = () => {
      if (!cached) {
        cached = { health: reconciler.health(), counters: reconciler.counters() };
        setImmediate(() => (cached = undefined));
      }
      return cached;
    };
    const gauge = <L extends string>(
      name: string,
      help: string,
      labelNames: L[],
      fill: (g: Gauge<L>, h: HsmHealth) => void,
    ) =>
      new Gauge<L>({
        name,
        help,
        labelNames,
        registers,
        collect() {
          this.reset();
          fill(this, read().health);
        },
      });
    const counter = (name: string, help: string, value: (c: HsmCounters) => number) =>
      new Counter({
        name,
        help,
        registers,
        collect() {
          // The HSM owns the running total; the counter mirrors it.
          this.reset();
          this.inc(value(read().counters));
        },
      });

    gauge(
      'signet_hsm_token_state',
      'HSM token pool state (1 for the current state of each token)',
      ['token', 'role', 'state'],
      (g, h) => {
        for (const t of h.tokens)
          for (const state of TOKEN_STATES)
            g.set({ token: t.tokenLabel, role: t.role, state }, t.state === state ? 1 : 0);
      },
    );
    gauge('signet_hsm_sessions', 'Logged-in PKCS#11 sessions open in each token pool', ['token', 'role'], (g, h) => {
      for (const t of h.tokens) g.set({ token: t.tokenLabel, role: t.role }, t.sessions);
    });
    gauge(
      'signet_hsm_sessions_configured',
      'PKCS#11 sessions each token pool is configured to hold',
      ['token', 'role'],
      (g, h) => {
        for (const t of h.tokens) g.set({ token: t.tokenLabel, role: t.role }, t.configuredSessions);
      },
    );
    gauge('signet_hsm_sessions_in_flight', 'HSM operations holding a session', [], (g, h) => g.set(h.inFlight));
    gauge('signet_hsm_session_waiters', 'HSM operations queued for a session', [], (g, h) => g.set(h.waiting));
    gauge(
      'signet_hsm_sign_threads',
      'Signing worker threads (configured, running); absent when signatures run on libuv’s pool',
      ['kind'],
      (g, h) => {
        if (!h.signThreads) return;
        g.set({ kind: 'configured' }, h.signThreads.configured);
        g.set({ kind: 'running' }, h.signThreads.running);
      },
    );
    counter(
      'signet_hsm_recoveries_total',
      'Completed HSM pool recoveries (relogin, reopen, re-initialisation)',
      (c) => c.recoveries,
    );
    counter('signet_hsm_sign_operations_total', 'C_Sign calls that returned a signature', (c) => c.signOperations);
    counter('signet_hsm_sign_failures_total', 'C_Sign calls that failed', (c) => c.signFailures);
  }
}
