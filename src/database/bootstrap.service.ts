import { Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { hostname } from 'node:os';
import { BootstrapStepsRepository } from './bootstrap-steps.repository';

export interface BootstrapStep {
  /** Stable name; a step recorded as done is never run again on this database. */
  name: string;
  /** Lower runs first (e.g. CA hierarchy before the admin token). */
  order: number;
  run: () => Promise<void>;
}

/**
 * First-start bootstrap: modules register idempotent steps (dev CA hierarchy, admin token, …) and
 * they run once per database, after every module is initialised, under the same advisory lock as
 * migrations — so replicas starting together do the work once.
 */
@Injectable()
export class BootstrapService implements OnApplicationBootstrap {
  private readonly logger = new Logger(BootstrapService.name);
  private readonly steps: BootstrapStep[] = [];
  private readonly ran: string[] = [];

  constructor(private readonly bootstrapSteps: BootstrapStepsRepository) {}

  register(step: BootstrapStep): void {
    if (this.steps.some((s) => s.name === step.name)) throw new Error(`bootstrap step ${step.name} registered twice`);
    this.steps.push(step);
  }

  /** Steps this process ran (not those another replica or an earlier start already did). */
  get stepsRunHere(): readonly string[] {
    return this.ran;
  }

  async onApplicationBootstrap(): Promise<void> {
    if (this.steps.length === 0) return;
    await this.bootstrapSteps.whileBootstrapping(async () => {
      const done = await this.bootstrapSteps.completedNames();
      for (const step of [...this.steps].sort((a, b) => a.order - b.order)) {
        if (done.has(step.name)) continue;
        this.logger.log(`first-start bootstrap: ${step.name}`);
        await step.run();
        await this.bootstrapSteps.recordCompleted(step.name, `${hostname()}:${process.pid}`);
        this.ran.push(step.name);
      }
    });
  }
}
