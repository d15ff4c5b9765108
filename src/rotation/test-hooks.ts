import { Inject, Injectable, Logger } from '@nestjs/common';
import { SIGNET_CONFIG, SignetConfig } from '../config/config';

/**
 * Crash points for the crash-safety tests: with SIGNET_TEST_CRASH_AFTER_STEP=<point> the process
 * SIGKILLs itself there (right after a step commits, or at `create-key-hsm`: after the HSM key
 * exists, before anything about it is committed). loadConfig refuses the variable unless
 * NODE_ENV=test, and this checks NODE_ENV again, so production never reaches the kill.
 */
@Injectable()
export class RotationTestHooks {
  private readonly logger = new Logger('RotationTestHooks');

  constructor(@Inject(SIGNET_CONFIG) private readonly config: SignetConfig) {}

  crashPoint(point: string): void {
    if (this.config.testHooks.crashAfterStep !== point || process.env.NODE_ENV !== 'test') return;
    this.logger.warn(`test hook: SIGKILL at rotation crash point ${point}`);
    process.kill(process.pid, 'SIGKILL');
    // Nothing more of this process may run while the signal lands.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10_000);
  }
}
