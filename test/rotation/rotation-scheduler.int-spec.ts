import 'reflect-metadata';
import { SchedulerRegistry } from '@nestjs/schedule';
import { nextOccurrence } from '../../src/keys/rotation-schedule';
import { RotationRunner } from '../../src/rotation/rotation.runner';
import { RotationScheduler } from '../../src/rotation/rotation.scheduler';
import { http, SUBJECT } from './rotation-helpers';
import { RotationTestApp, startRotationTestApp, TestClock } from './rotation-test-app';

/** The timer servers run: registered with @nestjs/schedule's registry; its tick enqueues, the runner drains. */
describe(RotationScheduler.name, () => {
  let t: RotationTestApp;

  beforeAll(async () => {
    t = await startRotationTestApp({ clock: new TestClock(new Date()), env: { SIGNET_ROTATION_TICK_SECONDS: '3600' } });
  });
  afterAll(() => t.close());

  it('registers its interval (SIGNET_ROTATION_TICK_SECONDS) and a timer tick rotates what is due on the clock', async () => {
    const timer = t.app.get(SchedulerRegistry).getInterval('rotation-tick') as NodeJS.Timeout & {
      _idleTimeout: number;
    };
    expect(timer._idleTimeout).toBe(3_600_000);
    const api = http(t.app, t.adminToken);
    expect(
      (await api('POST', '/v1/keys', { name: 'timer', keySpec: 'EC-256', subject: { ...SUBJECT, CN: 'timer' } }))
        .status,
    ).toBe(201);
    t.clock.set(new Date(nextOccurrence('quarterly', new Date()).getTime() + 60_000));
    // What the interval calls: enqueue now, let the runner drain in the background.
    await (t.app.get(RotationScheduler) as unknown as { scheduledTick(): Promise<void> }).scheduledTick();
    const runner = t.app.get(RotationRunner);
    await runner.serial(async () => undefined);
    const rotations = (await api('GET', '/v1/rotations?key=timer')).body.rotations;
    expect(rotations).toEqual([expect.objectContaining({ trigger: 'schedule', state: 'activated', to: 'v2' })]);
  });
});
