import { Inject, Injectable, Logger, OnApplicationBootstrap, OnModuleDestroy, Optional } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { DataSource, EntityManager } from 'typeorm';
import { AuditService } from '../audit/audit.service';
import type { AuditActor } from '../audit/audit.types';
import { CaGenerationEntity } from '../ca/ca-generation.entity';
import { SIGNET_CONFIG, SignetConfig } from '../config/config';
import { ChangeNotifier } from '../database/change-notifier';
import { CrlService } from '../revocation/crl.service';
import { TruststoreService } from '../truststore/truststore.service';
import { TruststoreVersionsService } from '../truststore/truststore-versions.service';
import { DistributionStatusService } from './distribution-status.service';
import { ReconcilerService } from './reconciler.service';
import { DISTRIBUTION_CHANNEL } from './regions.service';
import { TargetsRepository } from './targets.repository';

/** Cross-replica "truststore content may have changed" (a CA or key was created somewhere). */
export const TRUSTSTORE_CHANNEL = 'signet_truststore';
const INTERVAL_NAME = 'distribution';

export interface SyncResult {
  /** Truststore versions the sync created (content had changed without an event reaching us). */
  versions: Array<{ truststore: string; version: number; digest: string }>;
  /** Targets queued for an immediate read-back (and push where needed). */
  queued: number;
}

/**
 * What makes truststores change and distribution run:
 *   - a CA or CA key generation created or activated (a root added or retired, a generation
 *     appearing) or a signing key created (a trusted identity): announced in the changing
 *     transaction, every replica rebuilds on commit;
 *   - a CRL published (revocation, scheduled refresh): the publishing replica rebuilds at once (a
 *     CLI process announces it to the servers instead);
 *   - the schedule (expired roots dropping out, anything missed), which only rebuilds what changed
 *     and wakes the reconciler; `POST /v1/distribution/sync` does the same now and re-reads every target.
 * A new version is announced to every replica's reconciler in the transaction that stores it.
 * Rebuilds are idempotent and serialised per truststore row, so replicas doing the same one do no harm.
 */
@Injectable()
export class DistributionScheduler implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('Distribution');
  private rebuilding?: Promise<void>;
  private pendingTrigger?: string;
  private started = false;

  constructor(
    private readonly dataSource: DataSource,
    private readonly crls: CrlService,
    private readonly truststores: TruststoreService,
    private readonly versions: TruststoreVersionsService,
    private readonly reconciler: ReconcilerService,
    private readonly status: DistributionStatusService,
    private readonly notifier: ChangeNotifier,
    private readonly audit: AuditService,
    private readonly targets: TargetsRepository,
    @Inject(SIGNET_CONFIG) private readonly config: SignetConfig,
    @Optional() private readonly scheduler?: SchedulerRegistry,
  ) {}

  /**
   * In the transaction that created or activated a CA (generation) or created a key: every replica
   * rebuilds its truststores on commit. Subscribed in src/domain-events.wiring.ts, in every context
   * (a CLI call creating a CA must reach the servers).
   */
  announceTruststoreChange(manager: EntityManager, what: `ca:${string}` | `key:${string}`): Promise<void> {
    return this.notifier.notify(manager, TRUSTSTORE_CHANNEL, what);
  }

  /** In the transaction that stored a truststore version: every replica's reconciler pushes it on commit. */
  announceTruststoreVersion(manager: EntityManager, truststoreName: string): Promise<void> {
    return this.notifier.notify(manager, DISTRIBUTION_CHANNEL, truststoreName);
  }

  /**
   * A CRL was published by this process (subscribed in src/domain-events.wiring.ts). A server
   * rebuilds its truststores soon (fire-and-forget: a failure is logged and the schedule retries);
   * a CLI call (`signet revoke`) has no rebuild loop and tells the servers instead, awaited by the
   * publisher so the NOTIFY goes out before the process closes the database.
   */
  async onCrlPublished(): Promise<void> {
    if (!this.scheduler) {
      await this.dataSource
        .transaction((manager) => this.notifier.notify(manager, TRUSTSTORE_CHANNEL, 'crl:published'))
        .catch((error) => this.logger.warn(`announcing a new CRL failed: ${(error as Error).message}`));
      return;
    }
    if (this.started) this.rebuildSoon('crl');
  }

  onApplicationBootstrap(): void {
    if (!this.scheduler) return;
    this.started = true;
    // Fire-and-forget triggers: a failure (database away) is logged and the schedule retries.
    this.notifier.on(TRUSTSTORE_CHANNEL, (payload) =>
      this.rebuildSoon(payload === '*' ? 'resync' : (payload.split(':')[0] ?? 'change')),
    );
    const interval = setInterval(() => void this.scheduled(), this.config.distribution.intervalSeconds * 1000);
    interval.unref();
    this.scheduler.addInterval(INTERVAL_NAME, interval);
    void this.scheduled();
  }

  /** Fire-and-forget: a failure (database away) is logged and the schedule retries. */
  private rebuildSoon(trigger: string): void {
    void this.requestRebuild(trigger).catch((error) =>
      this.logger.warn(`truststore rebuild (${trigger}) failed: ${(error as Error).message}`),
    );
  }

  async onModuleDestroy(): Promise<void> {
    this.started = false;
    if (this.scheduler?.doesExist('interval', INTERVAL_NAME)) this.scheduler.deleteInterval(INTERVAL_NAME);
    await this.rebuilding?.catch(() => undefined);
  }

  /** The schedule: rebuild what changed, wake the reconciler, refresh the fleet gauges. */
  async scheduled(): Promise<void> {
    if (!this.started) return;
    try {
      await this.requestRebuild('schedule');
      this.reconciler.wake();
      await this.status.refreshMetrics();
    } catch (error) {
      this.logger.error(`scheduled distribution pass failed: ${(error as Error).message}`);
    }
  }

  /** Coalesces rebuild requests: one runs at a time, and a request arriving meanwhile runs once more after it. */
  requestRebuild(trigger: string): Promise<void> {
    if (this.rebuilding) {
      this.pendingTrigger ??= trigger;
      return this.rebuilding;
    }
    this.rebuilding = (async () => {
      let next: string | undefined = trigger;
      while (next) {
        this.pendingTrigger = undefined;
        await this.versions.rebuildAll(next);
        next = this.pendingTrigger;
      }
    })().finally(() => {
      this.rebuilding = undefined;
    });
    return this.rebuilding;
  }

  /** `POST /v1/distribution/sync`: rebuild now, and read back (push where needed) every target at once. */
  async sync(actor?: AuditActor): Promise<SyncResult> {
    await this.rebuilding?.catch(() => undefined);
    const created = await this.versions.rebuildAll('sync');
    const queued = await this.dataSource.transaction(async (manager) => {
      const queued = await this.targets.makeAllDueNow(manager);
      await this.notifier.notify(manager, DISTRIBUTION_CHANNEL, 'sync');
      return queued;
    });
    const versions = await Promise.all(
      created.map(async (v) => ({
        truststore: (await this.truststores.byId(v.truststoreId)).name,
        version: v.version,
        digest: v.digest,
      })),
    );
    await this.audit.record({ type: 'distribution.sync', actor, subject: 'distribution', data: { queued, versions } });
    this.reconciler.wake();
    return { versions, queued };
  }

  /**
   * The truststores' content preparer: CRLs are built lazily, so a generation without one gets its
   * first before a bundle is built, and a truststore version carries it from the start.
   */
  async ensureCrls(generations: CaGenerationEntity[]): Promise<void> {
    for (const generation of generations) {
      if (generation.crl) continue;
      await this.crls
        .rebuild(generation.id, { onlyIfDue: true })
        .catch((error) =>
          this.logger.warn(`building the first CRL of ${generation.name} failed: ${(error as Error).message}`),
        );
    }
  }
}
