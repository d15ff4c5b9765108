import { Inject, Injectable, Logger, OnApplicationBootstrap, OnModuleDestroy, Optional } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { createHash } from 'node:crypto';
import { AuditService } from '../audit/audit.service';
import { DomainError } from '../common/errors';
import { SIGNET_CONFIG, SignetConfig } from '../config/config';
import { ChangeNotifier } from '../database/change-notifier';
import { TruststoreBundlesService } from '../truststore/truststore-bundles.service';
import { backoffDelayMs } from './backoff';
import { DistributionMetrics } from './distribution-metrics';
import { TargetError } from './drivers/target-error';
import { PushDetails, TargetState, TrustTarget, TruststoreBundle } from './drivers/trust-target';
import { createTrustTarget, TrustTargetFactoryHooks } from './drivers/trust-target.factory';
import { DISTRIBUTION_CHANNEL, RegionsService } from './regions.service';
import { driverOptions, targetLayers } from './target-definition';
import { redactSecrets, TargetCredentials } from './target-credentials';
import { ClaimedTarget, SealedTarget, TargetsRepository } from './targets.repository';

interface CachedDriver {
  /** Config revision and sealed-credentials hash it was built from. */
  key: string;
  target: TrustTarget;
  /** For redacting error messages; never logged or stored. */
  credentials: unknown;
  usedAt: number;
}

export const DRIVER_HOOKS = Symbol('DISTRIBUTION_DRIVER_HOOKS');
const DRIVER_IDLE_MS = 10 * 60_000;
const MIN_TIMER_MS = 20;
const MAX_ERROR_LENGTH = 1000;

/**
 * The distribution reconcile loop (ARCHITECTURE.md). For every target: desired digest (its
 * truststore's current version) against delivered digest (what it was last read back holding).
 *
 *   claim   one short statement (SELECT … FOR UPDATE SKIP LOCKED → lease) that commits before any
 *           network traffic, so replicas share the work and a crashed replica's lease simply ends;
 *   attempt read back first and skip a target that already holds the digest; otherwise push (the
 *           driver reads back what it wrote; only that read-back showing the desired digest counts),
 *           all under a per-attempt timeout; at most `concurrency` in flight, of which targets whose
 *           last attempt failed (down, hanging) take at most a quarter, and only after the others;
 *   record  delivered (with a delivery row, metrics and an audit event) or failed (exponential
 *           backoff with jitter per target; a non-retryable failure — credentials, conflict,
 *           refused host — waits the maximum backoff and shows as blocked).
 *
 * Pushes are at-least-once; the drivers make them idempotent. Woken by truststore changes on any
 * replica (LISTEN/NOTIFY), by the schedule, by `POST /v1/distribution/sync`, and by its own timer
 * for the next backoff that ends.
 */
@Injectable()
export class ReconcilerService implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('Distribution');
  private readonly stopping = new AbortController();
  private readonly running = new Set<Promise<void>>();
  private started = false;
  private ticking = false;
  private again = false;
  private timer?: NodeJS.Timeout;
  private wakeQueued = false;
  private suspectsInFlight = 0;
  private readonly drivers = new Map<string, CachedDriver>();

  constructor(
    private readonly targets: TargetsRepository,
    private readonly bundles: TruststoreBundlesService,
    private readonly regions: RegionsService,
    private readonly credentials: TargetCredentials,
    private readonly audit: AuditService,
    private readonly notifier: ChangeNotifier,
    private readonly metrics: DistributionMetrics,
    @Inject(SIGNET_CONFIG) private readonly config: SignetConfig,
    // Present in servers only (ScheduleModule); a CLI context changes state and leaves pushing to them.
    @Optional() private readonly scheduler?: SchedulerRegistry,
    @Optional() @Inject(DRIVER_HOOKS) private readonly driverHooks?: TrustTargetFactoryHooks,
  ) {}

  get inFlight(): number {
    return this.running.size;
  }

  onApplicationBootstrap(): void {
    if (!this.scheduler) return;
    this.started = true;
    this.notifier.on(DISTRIBUTION_CHANNEL, () => this.wake());
    this.wake();
    // In the background: an unreachable HSM must not hold up the start; first use re-seals too.
    void this.resealLegacyCredentials().catch((error) =>
      this.logger.warn(`re-sealing stored target credentials failed: ${(error as Error).message}`),
    );
  }

  /**
   * Re-seals, for their endpoint's origin, the target credentials stored before that binding
   * existed (target-credentials.ts), so they do not wait for their target's next attempt. Each row
   * is replaced only if neither its value nor its endpoint changed meanwhile; a value that does not
   * open is left for the reconciler to report on that target. Returns how many were re-sealed.
   */
  async resealLegacyCredentials(): Promise<number> {
    const rows = await this.targets.legacySealedCredentials();
    let resealed = 0;
    for (const row of rows) {
      const target = {
        id: row.id,
        region: row.region,
        name: row.name,
        endpoint: row.endpoint,
        credentialsSealed: row.credentials_sealed,
      };
      try {
        const opened = await this.credentials.open(target, row.credentials_sealed);
        if (opened.resealed && (await this.storeResealed(target, opened.resealed))) resealed++;
      } catch (error) {
        this.logger.warn(
          `${row.region}/${row.name}: stored credentials were not re-sealed: ${(error as Error).message}`,
        );
      }
    }
    return resealed;
  }

  async onModuleDestroy(): Promise<void> {
    this.started = false;
    clearTimeout(this.timer);
    this.stopping.abort();
    await Promise.allSettled([...this.running]);
    await Promise.all([...this.drivers.keys()].map((id) => this.dropDriver(id)));
  }

  /** Runs a reconcile pass soon (coalesced). */
  wake(): void {
    if (!this.started || this.wakeQueued) return;
    this.wakeQueued = true;
    setImmediate(() => {
      this.wakeQueued = false;
      void this.tick();
    });
  }

  private async tick(): Promise<void> {
    if (this.ticking) {
      this.again = true;
      return;
    }
    this.ticking = true;
    try {
      let full = false;
      do {
        this.again = false;
        const capacity = this.config.distribution.concurrency - this.running.size;
        if (capacity <= 0 || !this.started) {
          full = true;
          break;
        }
        // Targets whose last attempt succeeded go first; those that failed (down, hanging) share
        // at most a quarter of the slots, so a few dead targets cannot hold up a fleet's rollout.
        const healthy = await this.claim(capacity, false);
        const suspectRoom = Math.min(capacity - healthy.length, this.suspectCap - this.suspectsInFlight);
        const suspects = suspectRoom > 0 ? await this.claim(suspectRoom, true) : [];
        for (const target of [...healthy, ...suspects]) this.start(target);
        if (healthy.length + suspects.length === capacity) this.again = true;
      } while (this.again && this.started);
      // At capacity, the next finished attempt wakes the loop.
      if (!full) await this.scheduleNext();
    } catch (error) {
      if (this.started) {
        this.logger.error(`reconcile pass failed: ${(error as Error).message}`);
        this.armTimer(1000);
      }
    } finally {
      this.ticking = false;
    }
  }

  private get suspectCap(): number {
    return Math.max(1, Math.floor(this.config.distribution.concurrency / 4));
  }

  private start(target: ClaimedTarget): void {
    if (target.suspect) this.suspectsInFlight++;
    const run = this.attempt(target)
      .catch((error) =>
        this.logger.error(
          `recording the attempt on ${target.region}/${target.name} failed: ${(error as Error).message}`,
        ),
      )
      .finally(() => {
        if (target.suspect) this.suspectsInFlight--;
        this.running.delete(run);
        this.wake();
      });
    this.running.add(run);
  }

  /**
   * Claims up to `limit` due targets in one statement; the lease commits before any push.
   * `suspects`: targets whose last attempt failed (false: the others).
   */
  private claim(limit: number, suspects: boolean): Promise<ClaimedTarget[]> {
    const { leaseSeconds, verifySeconds } = this.config.distribution;
    return this.targets.claimDue({ limit, suspects, leaseSeconds, verifySeconds });
  }

  private async attempt(target: ClaimedTarget): Promise<void> {
    const { attemptTimeoutMs } = this.config.distribution;
    const timeout = AbortSignal.timeout(attemptTimeoutMs);
    const signal = AbortSignal.any([timeout, this.stopping.signal]);
    let credentials: unknown;
    try {
      const driver = await this.driverFor(target);
      credentials = driver.credentials;
      let held = await driver.target.readBack(signal);
      if (held.digest !== target.deliveredDigest) await this.recordObserved(target, held);
      let pushed: PushDetails | undefined;
      if (held.digest !== target.desiredDigest || target.forcePush) {
        const bundle = await this.bundle(target);
        const result = await driver.target.push(bundle, signal);
        // Drivers read back what they wrote before a push returns (TrustTarget contract): that
        // read-back is what counts as delivered, and only if it shows the desired digest.
        if (result.deliveredDigest !== target.desiredDigest) {
          throw new TargetError(
            'protocol',
            `${driver.target.description}: read-back after the push shows ${result.deliveredDigest || 'no truststore'} instead of ${target.desiredDigest}`,
            {
              target: driver.target.description,
              operation: 'readBack',
            },
          );
        }
        pushed = result.details ?? {};
        held = {
          digest: result.deliveredDigest,
          version: target.desiredVersion,
          details: pushed.manifestDigest ? { manifestDigest: pushed.manifestDigest } : {},
        };
      }
      await this.recordDelivered(target, held, pushed);
    } catch (error) {
      // A failed target gets fresh sockets, tokens and credentials next time.
      await this.dropDriver(target.id);
      if (this.stopping.signal.aborted) {
        await this.release(target);
        return;
      }
      await this.recordFailure(target, error, timeout.aborted, credentials);
    }
  }

  /**
   * Drivers are kept per target between attempts (keep-alive sockets, registry tokens, unsealed
   * credentials in memory only), replaced when the target's definition or credentials change, and
   * dropped after a failure or an idle period.
   */
  private async driverFor(target: ClaimedTarget): Promise<CachedDriver> {
    // The endpoint is part of the key: one changed behind the API's back (no new revision) rebuilds
    // the driver, and opening the credentials for it fails.
    const cacheKey = (sealed: Buffer | null) =>
      `${target.configRevision}:${target.endpoint}:${sealed ? createHash('sha256').update(sealed).digest('hex') : '-'}`;
    let key = cacheKey(target.credentialsSealed);
    const cached = this.drivers.get(target.id);
    if (cached && cached.key === key) {
      cached.usedAt = Date.now();
      return cached;
    }
    await this.dropDriver(target.id);
    let credentials: Record<string, unknown> | undefined;
    if (target.credentialsSealed) {
      const opened = await this.credentials.open(target, target.credentialsSealed);
      credentials = opened.credentials;
      if (opened.resealed && (await this.storeResealed(target, opened.resealed))) key = cacheKey(opened.resealed);
    }
    const made: CachedDriver = {
      key,
      target: createTrustTarget(driverOptions(target, credentials, this.regions.driverContext), this.driverHooks ?? {}),
      credentials,
      usedAt: Date.now(),
    };
    this.drivers.set(target.id, made);
    this.sweepDrivers();
    return made;
  }

  /**
   * Credentials sealed before origins were bound, now sealed for the endpoint they were opened for,
   * replace the stored value unless it or the endpoint changed meanwhile.
   */
  private async storeResealed(target: SealedTarget, resealed: Buffer): Promise<boolean> {
    const replaced = await this.targets.replaceSealedCredentials(target, resealed);
    if (replaced)
      this.logger.log(`${target.region}/${target.name}: stored credentials re-sealed for the endpoint's origin`);
    return replaced;
  }

  private async dropDriver(targetId: string): Promise<void> {
    const cached = this.drivers.get(targetId);
    if (!cached) return;
    this.drivers.delete(targetId);
    await cached.target.close().catch(() => undefined);
  }

  private sweepDrivers(): void {
    const idleBefore = Date.now() - DRIVER_IDLE_MS;
    for (const [id, cached] of this.drivers) if (cached.usedAt < idleBefore) void this.dropDriver(id);
  }

  private async bundle(target: ClaimedTarget): Promise<TruststoreBundle> {
    const rendered = await this.bundles.render(
      target.truststoreId,
      target.desiredVersion,
      targetLayers(target.settings),
    );
    return {
      version: rendered.version,
      digest: rendered.digest,
      createdAt: rendered.createdAt,
      layers: rendered.layers.map((layer) => ({
        mediaType: layer.spec.mediaType,
        title: layer.spec.title,
        content: layer.content,
      })),
      annotations: { 'io.signet.truststore.name': rendered.truststore },
    };
  }

  private async recordDelivered(
    target: ClaimedTarget,
    held: TargetState,
    pushed: PushDetails | undefined,
  ): Promise<void> {
    const changed = target.deliveredDigest !== target.desiredDigest;
    const delivery = changed || pushed !== undefined;
    const now = new Date();
    const convergeMs = Math.max(0, now.getTime() - target.desiredSince.getTime());
    const details = {
      ...(pushed
        ? { pushed: true, ...pick(pushed, ['manifestDigest', 'locations', 'blobsUploaded', 'blobsPresent']) }
        : { pushed: false }),
      ...(held.details?.manifestDigest ? { heldManifestDigest: held.details.manifestDigest } : {}),
    };
    const attempts = await this.targets.recordDelivered(target, {
      heldVersion: held.version ?? target.desiredVersion,
      delivery,
      convergeMs,
      skipped: pushed === undefined,
      details,
    });
    // After the commit: whichever delivery commits last sees every other one, so a version is
    // marked converged exactly once without serialising the deliveries.
    const converged = await this.targets.markConverged(target.truststoreId, target.desiredVersion);
    if (delivery) {
      await this.audit
        .record({
          type: 'distribution.delivered',
          subject: `${target.region}/${target.name}`,
          data: {
            kind: target.kind,
            truststore: target.truststore,
            version: target.desiredVersion,
            digest: target.desiredDigest,
            attempts,
            convergeSeconds: convergeMs / 1000,
            ...details,
          },
        })
        .catch((error) =>
          this.logger.error(
            `auditing the delivery to ${target.region}/${target.name} failed: ${(error as Error).message}`,
          ),
        );
    }
    this.metrics.attempts?.inc({ region: target.region, kind: target.kind, result: pushed ? 'pushed' : 'held' });
    if (delivery) {
      this.metrics.convergence?.observe({ region: target.region, kind: target.kind }, convergeMs / 1000);
      this.logger.log(
        `${target.region}/${target.name}: holds ${target.truststore} v${target.desiredVersion}${pushed ? '' : ' (already there)'} after ${(convergeMs / 1000).toFixed(2)} s`,
      );
    }
    for (const version of converged) {
      if (!version.revokedAt) continue;
      const seconds = (version.convergedAt.getTime() - version.revokedAt.getTime()) / 1000;
      this.metrics.revocationPropagation?.observe({ truststore: target.truststore }, seconds);
      this.logger.log(
        `revocation reached every target of ${target.truststore} (v${version.version}) ${seconds.toFixed(2)} s after it was made`,
      );
      await this.audit.record({
        type: 'distribution.revocation.converged',
        subject: target.truststore,
        data: {
          version: version.version,
          revokedAt: version.revokedAt.toISOString(),
          convergedAt: version.convergedAt.toISOString(),
          seconds,
        },
      });
    }
  }

  private async recordFailure(
    target: ClaimedTarget,
    error: unknown,
    timedOut: boolean,
    credentials: unknown,
  ): Promise<void> {
    const { backoffBaseMs, backoffMaxMs, attemptTimeoutMs } = this.config.distribution;
    let kind: string;
    let retryable: boolean;
    let message: string;
    if (timedOut) {
      kind = 'timeout';
      retryable = true;
      message = `no complete answer within the attempt timeout (${attemptTimeoutMs} ms)`;
    } else if (error instanceof TargetError) {
      kind = error.kind;
      retryable = error.retryable;
      message = error.message;
    } else if (error instanceof DomainError) {
      // A definition or bundle the driver refuses (validation) will not fix itself.
      kind = error.code.toLowerCase();
      retryable = false;
      message = error.message;
    } else {
      kind = 'internal';
      retryable = true;
      message = (error as Error)?.message ?? String(error);
    }
    message = redactSecrets(message, credentials).slice(0, MAX_ERROR_LENGTH);
    const attempts = target.attempts + 1;
    const delayMs = retryable ? backoffDelayMs(attempts, backoffBaseMs, backoffMaxMs) : backoffMaxMs;
    await this.targets.recordFailure(target, {
      attempts,
      state: retryable ? 'retrying' : 'blocked',
      message,
      kind,
      delayMs,
    });
    this.metrics.attempts?.inc({ region: target.region, kind: target.kind, result: 'failed' });
    this.metrics.failures?.inc({ region: target.region, kind: target.kind, error: kind });
    this.logger.warn(
      `${target.region}/${target.name}: attempt ${attempts} for ${target.truststore} v${target.desiredVersion} failed (${kind}${retryable ? '' : ', not retryable'}): ${message}; next in ${(delayMs / 1000).toFixed(1)} s`,
    );
  }

  /**
   * What a read-back found when it differs from the record (drift: someone changed or deleted it,
   * or a push of ours that was not recorded): the record follows the target, so status and the
   * rotation gate never count a bundle the target no longer holds.
   */
  private async recordObserved(target: ClaimedTarget, held: TargetState): Promise<void> {
    const version = held.digest ? (held.version ?? null) : null;
    await this.targets.recordObserved(target, held.digest ?? null, version);
    if (target.deliveredDigest) {
      this.logger.warn(
        `${target.region}/${target.name}: read back ${held.digest ?? 'no truststore of ours'} where ${target.deliveredDigest} was delivered (changed outside Signet)`,
      );
    }
    target.deliveredDigest = held.digest ?? null;
    target.deliveredVersion = version;
  }

  /** Shutdown: hand the target back at once, without counting the attempt. */
  private async release(target: ClaimedTarget): Promise<void> {
    await this.targets.releaseLease(target).catch(() => undefined);
  }

  /** Wakes again when the next backoff or lease ends (or at the schedule interval at the latest). */
  private async scheduleNext(): Promise<void> {
    const ms = await this.targets.msUntilNextDue();
    this.armTimer(ms === undefined ? this.config.distribution.intervalSeconds * 1000 : ms);
  }

  private armTimer(ms: number): void {
    if (!this.started) return;
    clearTimeout(this.timer);
    const delay = Math.min(Math.max(ms, MIN_TIMER_MS), this.config.distribution.intervalSeconds * 1000);
    this.timer = setTimeout(() => this.wake(), delay);
    this.timer.unref();
  }
}

function pick(record: Record<string, unknown>, keys: string[]): Record<string, unknown> {
  return Object.fromEntries(keys.filter((k) => record[k] !== undefined).map((k) => [k, record[k]]));
}
