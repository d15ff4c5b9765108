import { BeforeApplicationShutdown, Inject, Injectable, Logger, Optional } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { AuditService } from '../audit/audit.service';
import { SIGNET_CONFIG, SignetConfig } from '../config/config';
import { scrubText } from '../observability/logger';
import { ActiveKeyCache } from '../signing/active-key-cache';
import { CaRolloverSteps } from './ca-rollover.steps';
import { KeyRotationSteps } from './key-rotation.steps';
import { RotationEntity } from './rotation.entity';
import { RotationRepository, rotationLockName } from './rotation.repository';
import { ROTATION_CLOCK, RotationClock } from './rotation-clock';
import { RotationMetrics } from './rotation.metrics';
import { applyStepError, applyStepResult, currentStep, isTerminal, StepName } from './rotation-steps';
import { RotationTestHooks } from './test-hooks';

/** Steps one rotation may take in one pass before yielding to the others. */
const MAX_STEPS_PER_PASS = 10;

interface StepPass {
  /** The next step may run at once. */
  continue: boolean;
  /** The step whose outcome this pass committed. */
  committed?: StepName;
  /** Key rotations: the key's name. */
  keyName?: string;
}

/**
 * Runs rotations step by step. Each step is one transaction that takes the subject's
 * transaction-scoped advisory lock (try: a replica holding it is doing the work), re-reads the
 * rotation row FOR UPDATE, runs the step (HSM work included) and writes its outcome before commit.
 * A crash rolls the step back and releases the lock; whoever runs it next finds what the HSM
 * already holds through the plan's fixed CKA_IDs. Within a process, passes run one at a time.
 */
@Injectable()
export class RotationRunner implements BeforeApplicationShutdown {
  private readonly logger = new Logger('RotationRunner');
  private queue: Promise<unknown> = Promise.resolve();
  private stopping = false;

  constructor(
    private readonly dataSource: DataSource,
    private readonly keySteps: KeyRotationSteps,
    private readonly caSteps: CaRolloverSteps,
    private readonly audit: AuditService,
    private readonly metrics: RotationMetrics,
    private readonly hooks: RotationTestHooks,
    @Inject(SIGNET_CONFIG) private readonly config: SignetConfig,
    @Inject(ROTATION_CLOCK) private readonly clock: RotationClock,
    private readonly rotations: RotationRepository,
    @Optional() private readonly activeKeys?: ActiveKeyCache,
  ) {}

  /** Runs `job` after every pass queued before it (one pass at a time per process). */
  serial<T>(job: () => Promise<T>): Promise<T> {
    const run = this.queue.then(job);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Work now rather than at the next tick (a rotation was just requested); errors are logged. */
  kick(): void {
    if (this.stopping) return;
    void this.serial(() => this.processDue(this.clock.now())).catch((error) =>
      this.logger.error(`rotation pass failed: ${scrubText((error as Error).message)}`),
    );
  }

  /** Every rotation whose next step may run at `now`. Call through `serial`. */
  async processDue(now: Date): Promise<{ rotations: number; steps: number }> {
    const due = await this.rotations.runnableIds(this.dataSource.manager, now);
    let steps = 0;
    for (const id of due) {
      if (this.stopping) break;
      steps += await this.runRotation(id, now);
    }
    return { rotations: due.length, steps };
  }

  /** Runs a rotation's steps (at most `maxSteps`) until one waits, fails, or another replica holds the lock. */
  async runRotation(id: string, now: Date, maxSteps = MAX_STEPS_PER_PASS): Promise<number> {
    let committed = 0;
    for (let i = 0; i < maxSteps; i++) {
      const pass = await this.runStep(id, now);
      if (pass.committed) {
        committed++;
        this.hooks.crashPoint(pass.committed);
        // This replica's signing cache at once; the others hear of it through KEYS_CHANNEL on commit.
        if (pass.committed === 'activate' && pass.keyName) this.activeKeys?.invalidate(pass.keyName);
      }
      if (!pass.continue) break;
    }
    return committed;
  }

  private async runStep(id: string, now: Date): Promise<StepPass> {
    let stepName: StepName | undefined;
    let lockName: string | undefined;
    let kind = 'unknown';
    let subject = id;
    try {
      return await this.dataSource.transaction(async (manager) => {
        const head = await this.rotations.lockSubject(manager, id);
        if (!head) return { continue: false };
        lockName = rotationLockName(head);
        kind = head.kind;
        if (!(await this.rotations.tryLock(manager, lockName))) return { continue: false };
        const rotation = await this.rotations.findForUpdate(manager, id);
        if (!rotation || isTerminal(rotation.state) || rotation.nextRunAt.getTime() > now.getTime())
          return { continue: false };
        subject = rotation.subject;
        const step = currentStep(rotation.steps);
        if (!step) {
          await this.rotations.write(manager, id, { state: 'completed', completedAt: now });
          return { continue: false };
        }
        stepName = step.name;
        const context = { manager, rotation, step, now };
        let result =
          rotation.kind === 'key'
            ? await this.keySteps.run(step.name, context)
            : await this.caSteps.run(step.name, context);
        if (result.outcome === 'fail' && rotation.kind === 'key') {
          // Nothing of a rotation that failed before activation stays in the HSM.
          result = { ...result, detail: { ...(result.detail ?? {}), ...(await this.keySteps.abandon(context)) } };
        }
        applyStepResult(rotation, step.name, result, now);
        let alert = rotation.alert;
        if (result.outcome === 'wait' && result.alert && !rotation.alert) {
          alert = result.alert;
          await this.raiseAlert(rotation, result.alert, now);
        } else if (result.outcome !== 'wait') {
          alert = null;
        }
        await this.rotations.write(manager, id, {
          state: rotation.state,
          steps: rotation.steps,
          nextRunAt: rotation.nextRunAt,
          completedAt: rotation.completedAt,
          alert,
        });
        if (result.outcome === 'wait') return { continue: false };
        // Recorded before the step commits (fail closed: no unaudited key or CA change).
        await this.audit.record({
          type: 'rotation.step',
          subject: rotation.subject,
          data: {
            rotationId: id,
            kind: rotation.kind,
            step: step.name,
            outcome: result.outcome,
            at: now.toISOString(),
            rotationState: rotation.state,
            ...(result.outcome === 'fail' ? { error: result.error } : {}),
            ...(result.outcome === 'skipped' ? { reason: result.reason } : {}),
            detail: (result.detail ?? null) as Record<string, unknown> | null,
          },
        });
        this.metrics.stepFinished(rotation.kind, step.name, result.outcome);
        if (result.outcome === 'fail') {
          this.logger.error(`rotation ${id} (${rotation.subject}) failed at ${step.name}: ${result.error}`);
        } else {
          this.logger.log(
            `rotation ${id} (${rotation.subject}): ${step.name} ${result.outcome}${rotation.state === 'completed' ? ' — rotation completed' : ''}`,
          );
        }
        return {
          continue: result.outcome !== 'fail',
          committed: step.name,
          keyName: rotation.kind === 'key' ? rotation.subject : undefined,
        };
      });
    } catch (error) {
      const message = scrubText((error as Error).message ?? String(error));
      if (stepName && lockName) await this.recordError(id, lockName, stepName, message, now);
      this.metrics.stepFinished(kind, stepName ?? 'unknown', 'error');
      this.logger.warn(`rotation ${id} (${subject}) step ${stepName ?? '?'} failed, will retry: ${message}`);
      return { continue: false };
    }
  }

  /** The step rolled back: record its error and back off (under the lock again; skipped if someone else holds it). */
  private async recordError(
    id: string,
    lockName: string,
    stepName: StepName,
    message: string,
    now: Date,
  ): Promise<void> {
    try {
      await this.dataSource.transaction(async (manager) => {
        if (!(await this.rotations.tryLock(manager, lockName))) return;
        const rotation = await this.rotations.findForUpdate(manager, id);
        if (!rotation || isTerminal(rotation.state) || currentStep(rotation.steps)?.name !== stepName) return;
        applyStepError(rotation, stepName, message, now, this.config.rotation.retrySeconds);
        await this.rotations.write(manager, id, { steps: rotation.steps, nextRunAt: rotation.nextRunAt });
        await this.audit.record({
          type: 'rotation.step',
          subject: rotation.subject,
          data: {
            rotationId: id,
            kind: rotation.kind,
            step: stepName,
            outcome: 'error',
            error: message,
            at: now.toISOString(),
            retryAt: rotation.nextRunAt.toISOString(),
          },
        });
      });
    } catch (error) {
      this.logger.error(
        `could not record the failure of rotation ${id} step ${stepName}: ${scrubText((error as Error).message)}`,
      );
    }
  }

  private async raiseAlert(rotation: RotationEntity, alert: string, now: Date): Promise<void> {
    this.logger.error(`ALERT ${alert}`);
    this.metrics.alertRaised(rotation.kind === 'ca' ? 'root-distribution-gate' : 'rotation');
    await this.audit.record({
      type: 'rotation.alert',
      subject: rotation.subject,
      data: { rotationId: rotation.id, alert, at: now.toISOString() },
    });
  }

  async beforeApplicationShutdown(): Promise<void> {
    this.stopping = true;
    await this.queue;
  }
}
