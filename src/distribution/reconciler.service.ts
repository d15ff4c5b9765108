import { Inject, Injectable, Logger, OnApplicationBootstrap, OnModuleDestroy, Optional } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { createHash } from 'node:crypto';
import { DataSource } from 'typeorm';
import { AuditService } from '../audit/audit.service';
import { DomainError } from '../common/errors';
import { SIGNET_CONFIG, SignetConfig } from '../config/config';
import { ChangeNotifier } from '../database/change-notifier';
import { TruststoreService } from '../truststore/truststore.service';
import { backoffDelayMs } from './backoff';
import { DistributionMetrics } from './distribution-metrics';
import { TargetError } from './drivers/target-error';
import { PushDetails, TargetState, TrustTarget, TrustTargetKind, TruststoreBundle } from './drivers/trust-target';
import { createTrustTarget, TrustTargetFactoryHooks } from './drivers/trust-target.factory';
import { DISTRIBUTION_CHANNEL, RegionsService } from './regions.service';
import { driverOptions, TargetSettings, targetLayers } from './target-definition';
import { returnedRows } from './sql-rows';
import { redactSecrets, TargetCredentials } from './target-credentials';

/** A target claimed for one attempt, with what it should hold. */
interface ClaimedTarget {
  id: string;
  region: string;
  name: string;
  kind: TrustTargetKind;
  endpoint: string;
  settings: TargetSettings;
  truststoreId: string;
  truststore: string;
  credentialsSealed: Buffer | null;
  configRevision: number;
  /** Its last attempt failed. */
  suspect: boolean;
  deliveredDigest: string | null;
  deliveredVersion: number | null;
  attempts: number;
  forcePush: boolean;
  leaseToken: string;
  desiredVersion: number;
  desiredDigest: string;
  /** When the target started to need this version: the version's creation, or the target's if it came later. */
  desiredSince: Date;
}

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
    private readonly dataSource: DataSource,
    private readonly truststores: TruststoreService,
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
    void this.resealLegacyCredentials().catch((error) => this.logger.warn(`re-sealing stored target credentials failed: ${(error as Error).message}`));
  }

  /**
   * Re-seals, for their endpoint's origin, the target credentials stored before that binding
   * existed (target-credentials.ts), so they do not wait for their target's next attempt. Each row
   * is replaced only if neither its value nor its endpoint changed meanwhile; a value that does not
   * open is left for the reconciler to report on that target. Returns how many were re-sealed.
   */
  async resealLegacyCredentials(): Promise<number> {
    const rows: Array<{ id: string; region: string; name: string; endpoint: string; credentials_sealed: Buffer }> = await this.dataSource.query(
      `SELECT t.id, r.name AS region, t.name, t.endpoint, t.credentials_sealed
         FROM distribution_targets t JOIN distribution_regions r ON r.id = t.region_id
        WHERE t.credentials_sealed IS NOT NULL AND get_byte(t.credentials_sealed, 0) = 1`,
    );
    let resealed = 0;
    for (const row of rows) {
      const target = { id: row.id, region: row.region, name: row.name, endpoint: row.endpoint, credentialsSealed: row.credentials_sealed };
      try {
        const opened = await this.credentials.open(target, row.credentials_sealed);
        if (opened.resealed && (await this.storeResealed(target, opened.resealed))) resealed++;
      } catch (error) {
        this.logger.warn(`${row.region}/${row.name}: stored credentials were not re-sealed: ${(error as Error).message}`);
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
      .catch((error) => this.logger.error(`recording the attempt on ${target.region}/${target.name} failed: ${(error as Error).message}`))
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
  private async claim(limit: number, suspects: boolean): Promise<ClaimedTarget[]> {
    const { leaseSeconds, verifySeconds } = this.config.distribution;
    const result: unknown = await this.dataSource.query(
      `WITH due AS (
         SELECT t.id
           FROM distribution_targets t
           JOIN truststores s ON s.id = t.truststore_id
          WHERE s.current_digest IS NOT NULL
            AND (t.lease_until IS NULL OR t.lease_until < now())
            AND (t.last_error_kind IS NOT NULL) = $4
            AND (
                  ((t.delivered_digest IS DISTINCT FROM s.current_digest OR t.force_push)
                    AND (t.attempt_digest IS DISTINCT FROM s.current_digest OR t.next_attempt_at <= now()))
               OR (t.delivered_digest = s.current_digest AND NOT t.force_push AND t.next_attempt_at <= now()
                    AND (t.verified_at IS NULL OR ($3::int > 0 AND t.verified_at < now() - make_interval(secs => $3::int))))
                )
          ORDER BY (t.attempt_digest IS DISTINCT FROM s.current_digest) DESC, t.next_attempt_at
          LIMIT $2
          FOR UPDATE OF t SKIP LOCKED
       )
       UPDATE distribution_targets t
          SET lease_token = gen_random_uuid(),
              lease_until = now() + make_interval(secs => $1::int),
              last_attempt_at = now(),
              attempts = CASE WHEN t.attempt_digest IS DISTINCT FROM s.current_digest THEN 0 ELSE t.attempts END,
              attempt_digest = s.current_digest
         FROM due, truststores s, distribution_regions r, truststore_versions v
        WHERE t.id = due.id AND s.id = t.truststore_id AND r.id = t.region_id
          AND v.truststore_id = s.id AND v.version = s.current_version
      RETURNING t.id, r.name AS region, t.name, t.kind, t.endpoint, t.settings, t.truststore_id, s.name AS truststore,
                t.credentials_sealed, t.config_revision, t.delivered_digest, t.delivered_version, t.attempts, t.force_push, t.lease_token,
                s.current_version AS desired_version, s.current_digest AS desired_digest,
                GREATEST(v.created_at, t.created_at) AS desired_since`,
      [leaseSeconds, limit, verifySeconds, suspects],
    );
    return returnedRows<Record<string, unknown>>(result).map((row) => ({
      id: row.id as string,
      region: row.region as string,
      name: row.name as string,
      kind: row.kind as TrustTargetKind,
      endpoint: row.endpoint as string,
      settings: row.settings as TargetSettings,
      truststoreId: row.truststore_id as string,
      truststore: row.truststore as string,
      credentialsSealed: (row.credentials_sealed as Buffer | null) ?? null,
      configRevision: row.config_revision as number,
      suspect: suspects,
      deliveredDigest: (row.delivered_digest as string | null) ?? null,
      deliveredVersion: (row.delivered_version as number | null) ?? null,
      attempts: row.attempts as number,
      forcePush: row.force_push as boolean,
      leaseToken: row.lease_token as string,
      desiredVersion: row.desired_version as number,
      desiredDigest: row.desired_digest as string,
      desiredSince: new Date(row.desired_since as string),
    }));
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
          throw new TargetError('protocol', `${driver.target.description}: read-back after the push shows ${result.deliveredDigest || 'no truststore'} instead of ${target.desiredDigest}`, {
            target: driver.target.description,
            operation: 'readBack',
          });
        }
        pushed = result.details ?? {};
        held = { digest: result.deliveredDigest, version: target.desiredVersion, details: pushed.manifestDigest ? { manifestDigest: pushed.manifestDigest } : {} };
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
    const cacheKey = (sealed: Buffer | null) => `${target.configRevision}:${target.endpoint}:${sealed ? createHash('sha256').update(sealed).digest('hex') : '-'}`;
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
    const made: CachedDriver = { key, target: createTrustTarget(driverOptions(target, credentials, this.regions.driverContext), this.driverHooks ?? {}), credentials, usedAt: Date.now() };
    this.drivers.set(target.id, made);
    this.sweepDrivers();
    return made;
  }

  /**
   * Credentials sealed before origins were bound, now sealed for the endpoint they were opened for,
   * replace the stored value unless it or the endpoint changed meanwhile.
   */
  private async storeResealed(target: Pick<ClaimedTarget, 'id' | 'region' | 'name' | 'endpoint' | 'credentialsSealed'>, resealed: Buffer): Promise<boolean> {
    const rows = returnedRows<{ id: string }>(
      await this.dataSource.query(
        `UPDATE distribution_targets SET credentials_sealed = $3 WHERE id = $1 AND credentials_sealed = $2 AND endpoint = $4 RETURNING id`,
        [target.id, target.credentialsSealed, resealed, target.endpoint],
      ),
    );
    if (rows.length > 0) this.logger.log(`${target.region}/${target.name}: stored credentials re-sealed for the endpoint's origin`);
    return rows.length > 0;
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
    const rendered = await this.truststores.render(target.truststoreId, target.desiredVersion, targetLayers(target.settings));
    return {
      version: rendered.version,
      digest: rendered.digest,
      createdAt: rendered.createdAt,
      layers: rendered.layers.map((layer) => ({ mediaType: layer.spec.mediaType, title: layer.spec.title, content: layer.content })),
      annotations: { 'io.signet.truststore.name': rendered.truststore },
    };
  }

  private async recordDelivered(target: ClaimedTarget, held: TargetState, pushed: PushDetails | undefined): Promise<void> {
    const changed = target.deliveredDigest !== target.desiredDigest;
    const delivery = changed || pushed !== undefined;
    const now = new Date();
    const convergeMs = Math.max(0, now.getTime() - target.desiredSince.getTime());
    const details = {
      ...(pushed ? { pushed: true, ...pick(pushed, ['manifestDigest', 'locations', 'blobsUploaded', 'blobsPresent']) } : { pushed: false }),
      ...(held.details?.manifestDigest ? { heldManifestDigest: held.details.manifestDigest } : {}),
    };
    // Short: no network, no audit wait while holding a pooled connection.
    const attempts = await this.dataSource.transaction(async (manager) => {
      const updated = returnedRows<{ attempts: number }>(await manager.query(
        `UPDATE distribution_targets
            SET delivered_version = $3, delivered_digest = $4,
                delivered_at = CASE WHEN delivered_digest IS DISTINCT FROM $4 THEN now() ELSE delivered_at END,
                verified_at = now(),
                attempts = CASE WHEN $5 THEN attempts + 1 ELSE attempts END,
                state = 'delivered', last_error = NULL, last_error_kind = NULL, force_push = false,
                lease_token = NULL, lease_until = NULL, next_attempt_at = now()
          WHERE id = $1 AND lease_token = $2
      RETURNING attempts`,
        [target.id, target.leaseToken, held.version ?? target.desiredVersion, target.desiredDigest, delivery],
      ));
      const count = updated[0]?.attempts ?? target.attempts + 1;
      if (delivery) {
        await manager.query(
          `INSERT INTO distribution_deliveries (target_id, truststore_id, version, digest, delivered_at, attempts, converge_ms, skipped, details)
           VALUES ($1, $2, $3, $4, now(), $5, $6, $7, $8)`,
          [target.id, target.truststoreId, target.desiredVersion, target.desiredDigest, count, convergeMs, pushed === undefined, details],
        );
      }
      return count;
    });
    // After the commit: whichever delivery commits last sees every other one, so a version is
    // marked converged exactly once without serialising the deliveries.
    const converged = await this.markConverged(target);
    if (delivery) {
      await this.audit
        .record({
          type: 'distribution.delivered',
          subject: `${target.region}/${target.name}`,
          data: { kind: target.kind, truststore: target.truststore, version: target.desiredVersion, digest: target.desiredDigest, attempts, convergeSeconds: convergeMs / 1000, ...details },
        })
        .catch((error) => this.logger.error(`auditing the delivery to ${target.region}/${target.name} failed: ${(error as Error).message}`));
    }
    this.metrics.attempts?.inc({ region: target.region, kind: target.kind, result: pushed ? 'pushed' : 'held' });
    if (delivery) {
      this.metrics.convergence?.observe({ region: target.region, kind: target.kind }, convergeMs / 1000);
      this.logger.log(`${target.region}/${target.name}: holds ${target.truststore} v${target.desiredVersion}${pushed ? '' : ' (already there)'} after ${(convergeMs / 1000).toFixed(2)} s`);
    }
    for (const version of converged) {
      if (!version.revokedAt) continue;
      const seconds = (version.convergedAt.getTime() - version.revokedAt.getTime()) / 1000;
      this.metrics.revocationPropagation?.observe({ truststore: target.truststore }, seconds);
      this.logger.log(`revocation reached every target of ${target.truststore} (v${version.version}) ${seconds.toFixed(2)} s after it was made`);
      await this.audit.record({
        type: 'distribution.revocation.converged',
        subject: target.truststore,
        data: { version: version.version, revokedAt: version.revokedAt.toISOString(), convergedAt: version.convergedAt.toISOString(), seconds },
      });
    }
  }

  /** Versions of the truststore that every one of its targets now holds (or has moved past). */
  private async markConverged(target: ClaimedTarget): Promise<Array<{ version: number; revokedAt: Date | null; convergedAt: Date }>> {
    const rows = returnedRows<{ version: number; revoked_at: Date | null; converged_at: Date }>(await this.dataSource.query(
      `UPDATE truststore_versions v SET converged_at = now()
        WHERE v.truststore_id = $1 AND v.converged_at IS NULL AND v.version <= $2
          AND NOT EXISTS (SELECT 1 FROM distribution_targets t
                           WHERE t.truststore_id = v.truststore_id AND (t.delivered_version IS NULL OR t.delivered_version < v.version))
      RETURNING v.version, v.revoked_at, v.converged_at`,
      [target.truststoreId, target.desiredVersion],
    ));
    return rows.map((r) => ({ version: r.version, revokedAt: r.revoked_at ? new Date(r.revoked_at) : null, convergedAt: new Date(r.converged_at) }));
  }

  private async recordFailure(target: ClaimedTarget, error: unknown, timedOut: boolean, credentials: unknown): Promise<void> {
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
    await this.dataSource.query(
      `UPDATE distribution_targets
          SET attempts = $3, state = $4, last_error = $5, last_error_kind = $6,
              next_attempt_at = now() + make_interval(secs => $7::double precision / 1000),
              lease_token = NULL, lease_until = NULL
        WHERE id = $1 AND lease_token = $2`,
      [target.id, target.leaseToken, attempts, retryable ? 'retrying' : 'blocked', message, kind, delayMs],
    );
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
    await this.dataSource.query(
      `UPDATE distribution_targets
          SET delivered_digest = $3, delivered_version = $4,
              delivered_at = CASE WHEN delivered_digest IS DISTINCT FROM $3 THEN NULL ELSE delivered_at END
        WHERE id = $1 AND lease_token = $2`,
      [target.id, target.leaseToken, held.digest ?? null, version],
    );
    if (target.deliveredDigest) {
      this.logger.warn(`${target.region}/${target.name}: read back ${held.digest ?? 'no truststore of ours'} where ${target.deliveredDigest} was delivered (changed outside Signet)`);
    }
    target.deliveredDigest = held.digest ?? null;
    target.deliveredVersion = version;
  }

  /** Shutdown: hand the target back at once, without counting the attempt. */
  private async release(target: ClaimedTarget): Promise<void> {
    await this.dataSource
      .query(`UPDATE distribution_targets SET lease_token = NULL, lease_until = NULL, next_attempt_at = now() WHERE id = $1 AND lease_token = $2`, [target.id, target.leaseToken])
      .catch(() => undefined);
  }

  /** Wakes again when the next backoff or lease ends (or at the schedule interval at the latest). */
  private async scheduleNext(): Promise<void> {
    const [row] = await this.dataSource.query(
      `SELECT extract(epoch FROM min(GREATEST(t.next_attempt_at, coalesce(t.lease_until, t.next_attempt_at))) - now()) * 1000 AS ms
         FROM distribution_targets t JOIN truststores s ON s.id = t.truststore_id
        WHERE s.current_digest IS NOT NULL AND (t.delivered_digest IS DISTINCT FROM s.current_digest OR t.force_push)`,
    );
    const ms = row?.ms === null || row?.ms === undefined ? undefined : Number(row.ms);
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
