import { Inject, Injectable, Logger, OnApplicationBootstrap, OnModuleDestroy, Optional } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { DataSource } from 'typeorm';
import { CertificateEntity } from '../ca/certificate.entity';
import { SIGNET_CONFIG, SignetConfig } from '../config/config';
import { scrubText } from '../observability/logger';
import { RotationService } from './rotation.service';
import { ROTATION_CLOCK, RotationClock } from './rotation-clock';
import { RotationRunner } from './rotation.runner';
import { RotationSubjectsRepository } from './rotation-subjects.repository';

export interface TickReport {
  now: string;
  /** Rotations this tick created. */
  started: Array<{ id: string; subject: string; trigger: string }>;
  /** Rotations looked at and steps committed by this process. */
  rotations: number;
  steps: number;
}

const TICK = 'rotation-tick';

/**
 * The rotation scheduler (@nestjs/schedule's registry, servers only). A tick only enqueues: it
 * writes the rotations that are due and lets the runner work through what is runnable. Every
 * replica ticks; advisory locks and unique indexes make the work happen once. Revoking a key's
 * active version starts an emergency rotation at once.
 */
@Injectable()
export class RotationScheduler implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('RotationScheduler');
  private ticking = false;

  constructor(
    private readonly dataSource: DataSource,
    private readonly rotations: RotationService,
    private readonly runner: RotationRunner,
    @Inject(SIGNET_CONFIG) private readonly config: SignetConfig,
    @Inject(ROTATION_CLOCK) private readonly clock: RotationClock,
    private readonly subjects: RotationSubjectsRepository,
    @Optional() private readonly registry?: SchedulerRegistry,
  ) {}

  onApplicationBootstrap(): void {
    // ScheduleModule (and its registry) is loaded in servers only, never for a CLI call.
    if (!this.registry || this.config.rotation.tickSeconds === 0) return;
    const timer = setInterval(() => void this.scheduledTick(), this.config.rotation.tickSeconds * 1000);
    timer.unref();
    this.registry.addInterval(TICK, timer);
    // Resume what a stopped or crashed process left half done without waiting for the first tick.
    setImmediate(() => void this.scheduledTick());
  }

  onModuleDestroy(): void {
    try {
      this.registry?.deleteInterval(TICK);
    } catch {
      // not registered
    }
  }

  /** One tick at `now` (the clock's time unless a test injects one): enqueue, then run what is runnable, awaited. */
  tick(now: Date = this.clock.now()): Promise<TickReport> {
    return this.runner.serial(async () => {
      const started = await this.rotations.enqueueDue(now);
      const processed = await this.runner.processDue(now);
      return {
        now: now.toISOString(),
        started: started.map((r) => ({ id: r.id, subject: r.subject, trigger: r.trigger })),
        ...processed,
      };
    });
  }

  /** The timer's tick only enqueues; the runner drains the runnable work after it, in the background. */
  private async scheduledTick(): Promise<void> {
    if (this.ticking) return;
    this.ticking = true;
    try {
      const now = this.clock.now();
      await this.runner.serial(() => this.rotations.enqueueDue(now));
      this.runner.kick();
    } catch (error) {
      this.logger.warn(`rotation tick failed: ${scrubText((error as Error).message ?? String(error))}`);
    } finally {
      this.ticking = false;
    }
  }

  /** Revoking the active version leaves the key unable to sign: rotate now, not at the next tick. */
  /** After a revocation commits (`certificate.revoked`, src/domain-events.wiring.ts). */
  async onRevoked(certificate: CertificateEntity): Promise<void> {
    if (!certificate.keyVersionId) return;
    const version = await this.subjects.keyVersionNumber(this.dataSource.manager, certificate.keyVersionId);
    if (!version) return;
    const rotation = await this.rotations.requestEmergencyRotation(version.keyId, version.version);
    if (!rotation) return;
    this.logger.warn(
      `key ${rotation.subject}: its active version ${version.version} was revoked; emergency rotation ${rotation.id} to version ${(rotation.plan as { toVersion: number }).toVersion}`,
    );
    // Servers run it now; a CLI call (`signet revoke`) leaves it to the servers' next tick.
    if (this.registry) this.runner.kick();
  }
}
