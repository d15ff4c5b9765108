import {
  applyStepError,
  applyStepResult,
  currentStep,
  hsmIdFor,
  ISSUING_CA_RENEWAL_STEPS,
  KEY_ROTATION_STEPS,
  newSteps,
  ROOT_ROLLOVER_STEPS,
  RotationProgress,
  stepsFor,
} from './rotation-steps';

const at = (iso: string) => new Date(iso);

function keyRotation(): RotationProgress {
  return {
    state: 'running',
    steps: newSteps(stepsFor('key')),
    nextRunAt: at('2027-01-01T00:30:00Z'),
    completedAt: null,
  };
}

describe('rotation steps', () => {
  it('has one step list per kind of rotation', () => {
    expect(stepsFor('key')).toBe(KEY_ROTATION_STEPS);
    expect(stepsFor('ca', 'issuing')).toBe(ISSUING_CA_RENEWAL_STEPS);
    expect(stepsFor('ca', 'root')).toBe(ROOT_ROLLOVER_STEPS);
    expect([...KEY_ROTATION_STEPS]).toEqual(['create-key', 'issue-certificate', 'activate', 'retire', 'destroy']);
    expect([...ROOT_ROLLOVER_STEPS]).toEqual([
      'create-key',
      'issue-certificate',
      'issue-subordinates',
      'distribution-gate',
      'activate',
    ]);
  });

  it('moves through the steps: running until activate, activated while waiting to retire and destroy, then completed', () => {
    const rotation = keyRotation();
    const t0 = at('2027-01-01T00:30:00Z');
    for (const name of ['create-key', 'issue-certificate'] as const) {
      expect(currentStep(rotation.steps)?.name).toBe(name);
      applyStepResult(rotation, name, { outcome: 'done', detail: { n: 1 } }, t0);
      expect(rotation.state).toBe('running');
    }
    applyStepResult(rotation, 'activate', { outcome: 'done', detail: { retiringVersion: 1 } }, t0);
    expect(rotation.state).toBe('activated');
    const overlapEnds = at('2027-01-15T00:30:00Z');
    applyStepResult(rotation, 'retire', { outcome: 'wait', until: overlapEnds, waitingFor: 'the overlap' }, t0);
    expect(rotation.nextRunAt).toEqual(overlapEnds);
    expect(rotation.steps[3]).toMatchObject({
      state: 'waiting',
      waitingUntil: overlapEnds.toISOString(),
      waitingFor: 'the overlap',
      attempts: 1,
      startedAt: t0.toISOString(),
      finishedAt: null,
    });
    applyStepResult(rotation, 'retire', { outcome: 'done' }, overlapEnds);
    expect(rotation.steps[3]).toMatchObject({
      state: 'done',
      attempts: 2,
      startedAt: t0.toISOString(),
      finishedAt: overlapEnds.toISOString(),
      waitingUntil: null,
    });
    applyStepResult(rotation, 'destroy', { outcome: 'skipped', reason: 'nothing to destroy' }, overlapEnds);
    expect(rotation).toMatchObject({ state: 'completed', completedAt: overlapEnds });
    expect(rotation.steps[4].detail).toEqual({ skipped: 'nothing to destroy' });
    expect(currentStep(rotation.steps)).toBeUndefined();
  });

  it('a failure that no retry can change fails the rotation', () => {
    const rotation = keyRotation();
    applyStepResult(rotation, 'create-key', { outcome: 'done' }, at('2027-01-01T00:30:00Z'));
    applyStepResult(
      rotation,
      'issue-certificate',
      { outcome: 'fail', error: 'version 2 was revoked before it was activated' },
      at('2027-01-01T00:31:00Z'),
    );
    expect(rotation.state).toBe('failed');
    expect(rotation.steps[1]).toMatchObject({
      state: 'failed',
      error: 'version 2 was revoked before it was activated',
    });
  });

  it('a transient error keeps the step, records it, and backs off exponentially up to an hour; a later success keeps it as lastError', () => {
    const rotation = keyRotation();
    const now = at('2027-01-01T00:30:00Z');
    const delays: number[] = [];
    for (let i = 0; i < 10; i++) {
      applyStepError(rotation, 'create-key', 'hsm: token not present', now, 60);
      delays.push((rotation.nextRunAt.getTime() - now.getTime()) / 1000);
    }
    expect(delays).toEqual([60, 120, 240, 480, 960, 1920, 3600, 3600, 3600, 3600]);
    expect(rotation.steps[0]).toMatchObject({ state: 'pending', attempts: 10, error: 'hsm: token not present' });
    expect(rotation.state).toBe('running');
    applyStepResult(rotation, 'create-key', { outcome: 'done' }, now);
    expect(rotation.steps[0]).toMatchObject({
      state: 'done',
      attempts: 11,
      error: null,
      detail: { lastError: 'hsm: token not present' },
    });
  });

  it('derives HSM object ids from the rotation: the rotation id itself, or a hash per subordinate CA', () => {
    const id = '8c5270d9-b519-4801-8c7d-7d294f1d3268';
    expect(hsmIdFor(id)).toBe('8c5270d9b5194801 8c7d7d294f1d3268'.replace(' ', ''));
    const a = hsmIdFor(id, 'ca-a');
    expect(a).toMatch(/^[0-9a-f]{32}$/);
    expect(a).not.toBe(hsmIdFor(id, 'ca-b'));
    expect(a).toBe(hsmIdFor(id, 'ca-a'));
  });
});
