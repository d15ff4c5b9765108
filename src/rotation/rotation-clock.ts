/**
 * The time rotation runs on: schedules, overlap and retention, certificate validity of what it
 * issues, expiry metrics. Injected (ROTATION_CLOCK) so tests can drive years of rotations without
 * sleeping; the audit log keeps its own clock.
 */
export interface RotationClock {
  now(): Date;
}

export const ROTATION_CLOCK = Symbol('ROTATION_CLOCK');

export const systemClock: RotationClock = { now: () => new Date() };
