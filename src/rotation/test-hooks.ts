import { Inject, Injectable } from '@nestjs/common';
import { writeSync } from 'node:fs';
import { SIGNET_CONFIG, SignetConfig } from '../config/config';

/**
 * Crash points for the crash-safety tests: with SIGNET_TEST_CRASH_AFTER_STEP=<point> the process
 * SIGKILLs itself there: right after a step commits, or between the HSM operation of a step and
 * its commit (`create-key-hsm`: the key pair exists, nothing about it is stored; `destroy-hsm`: the
 * old private key is gone, its version still says otherwise). loadConfig refuses the variable unless
 * NODE_ENV=test, and this checks NODE_ENV again, so production never reaches the kill.
 */
@Injectable()
export class RotationTestHooks {
  constructor(@Inject(SIGNET_CONFIG) private readonly config: SignetConfig) {}

  crashPoint(point: string): void {
    if (this.config.testHooks.crashAfterStep !== point || process.env.NODE_ENV !== 'test') return;
    // Written synchronously: the buffered logger would lose the line with the process.
    writeSync(2, `test hook: SIGKILL at rotation crash point ${point}\n`);
    process.kill(process.pid, 'SIGKILL');
    // Nothing more of this process may run while the signal lands.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10_000);
  }
}
