import { RotationEntity } from './rotation.entity';
import { currentStep, RotationState, RotationTrigger, StepRecord } from './rotation-steps';

/** A rotation as the API, the CLI and the console show it. */
export interface RotationView {
  id: string;
  kind: 'key' | 'ca';
  /** Key or CA name. */
  subject: string;
  trigger: RotationTrigger;
  state: RotationState;
  /** The step running or waiting now (null once finished). */
  step: string | null;
  dueAt: string | null;
  startedAt: string;
  completedAt: string | null;
  nextRunAt: string | null;
  alert: string | null;
  reason: string | null;
  from: string | null;
  to: string;
  steps: StepRecord[];
}

export function toView(rotation: RotationEntity): RotationView {
  const plan = rotation.plan;
  const step = currentStep(rotation.steps);
  return {
    id: rotation.id,
    kind: rotation.kind,
    subject: rotation.subject,
    trigger: rotation.trigger,
    state: rotation.state,
    step: rotation.state === 'completed' || rotation.state === 'failed' ? null : (step?.name ?? null),
    dueAt: rotation.dueAt?.toISOString() ?? null,
    startedAt: rotation.startedAt.toISOString(),
    completedAt: rotation.completedAt?.toISOString() ?? null,
    nextRunAt: rotation.state === 'completed' || rotation.state === 'failed' ? null : rotation.nextRunAt.toISOString(),
    alert: rotation.alert,
    reason: rotation.reason,
    from: plan.kind === 'key' ? (plan.fromVersion === null ? null : `v${plan.fromVersion}`) : plan.fromGeneration,
    to: plan.kind === 'key' ? `v${plan.toVersion}` : plan.generationName,
    steps: rotation.steps,
  };
}
