import { createHash } from 'node:crypto';

/**
 * The rotation state machines as data: which steps a rotation has, what a step's outcome does to
 * the rotation, and the plan fixed when it was created. Pure code: the executors do the I/O.
 *
 *   key rotation:   create-key → issue-certificate → activate → retire (after overlapDays)
 *                   → destroy (after retentionDays)
 *   issuing CA:     create-key → issue-certificate → activate
 *   root rollover:  create-key → issue-certificate → issue-subordinates → distribution-gate → activate
 *
 * Rotation states: running (until activate) → activated (waiting to retire/destroy the old
 * version) → completed; failed when a step cannot ever succeed (e.g. the new version was revoked
 * before it was activated).
 */
export type RotationKind = 'key' | 'ca';
export type RotationTrigger = 'schedule' | 'manual' | 'revocation' | 'no-active-version' | 'ca-lifetime';
export type RotationState = 'running' | 'activated' | 'completed' | 'failed';
export type StepState = 'pending' | 'waiting' | 'done' | 'skipped' | 'failed';

export const KEY_ROTATION_STEPS = ['create-key', 'issue-certificate', 'activate', 'retire', 'destroy'] as const;
export const ISSUING_CA_RENEWAL_STEPS = ['create-key', 'issue-certificate', 'activate'] as const;
export const ROOT_ROLLOVER_STEPS = [
  'create-key',
  'issue-certificate',
  'issue-subordinates',
  'distribution-gate',
  'activate',
] as const;
export type StepName = (typeof KEY_ROTATION_STEPS)[number] | (typeof ROOT_ROLLOVER_STEPS)[number];
export const STEP_NAMES: readonly StepName[] = [
  'create-key',
  'issue-certificate',
  'issue-subordinates',
  'distribution-gate',
  'activate',
  'retire',
  'destroy',
];

export interface StepRecord {
  name: StepName;
  state: StepState;
  /** Executions so far (successful or not). */
  attempts: number;
  /** Rotation-clock times, ISO-8601. */
  startedAt: string | null;
  finishedAt: string | null;
  /** When a waiting step is looked at again, and what it waits for. */
  waitingUntil: string | null;
  waitingFor: string | null;
  /** The last failure while the step is unfinished; a later success moves it to detail.lastError. */
  error: string | null;
  detail: Record<string, unknown> | null;
}

export interface KeyRotationPlan {
  kind: 'key';
  keyName: string;
  /** The version active when the rotation was planned (null: none, e.g. after a revocation). */
  fromVersion: number | null;
  toVersion: number;
  /** CKA_ID (hex) of the new HSM key pair, fixed up front so a restart finds an object created before a crash. */
  hsmId: string;
  label: string;
}

export interface SubordinatePlan {
  caId: string;
  caName: string;
  generation: number;
  generationName: string;
  hsmId: string;
  label: string;
}

export interface CaRolloverPlan {
  kind: 'ca';
  caName: string;
  /** `tsa`: a new TSA signing key and certificate under the active TSA root generation. */
  caKind: RenewableCaKind;
  fromGeneration: string | null;
  generation: number;
  generationName: string;
  hsmId: string;
  label: string;
  /** Root rollover: the issuing CAs that get a generation under the new root. */
  subordinates: SubordinatePlan[];
  /** Root rollover: an admin let the new hierarchy issue without every acknowledgement. */
  forced?: { reason: string; at: string; actor: Record<string, unknown> | null };
}

export type RotationPlan = KeyRotationPlan | CaRolloverPlan;

/** CAs a rollover can renew in place. A TSA root is replaced by a new `tsa-root` CA instead. */
export type RenewableCaKind = 'root' | 'issuing' | 'tsa';

export type StepResult =
  | { outcome: 'done'; detail?: Record<string, unknown> }
  | { outcome: 'skipped'; reason: string; detail?: Record<string, unknown> }
  /** `alert`: raise an alert now (log, metric, audit; shown on the rotation until it moves on). */
  | { outcome: 'wait'; until: Date; waitingFor: string; detail?: Record<string, unknown>; alert?: string }
  /** Permanent: the rotation fails (nothing a retry could change). */
  | { outcome: 'fail'; error: string; detail?: Record<string, unknown> };

/** The mutable part of a rotation that step outcomes change. */
export interface RotationProgress {
  state: RotationState;
  steps: StepRecord[];
  nextRunAt: Date;
  completedAt: Date | null;
}

export function newSteps(names: readonly StepName[]): StepRecord[] {
  return names.map((name) => ({
    name,
    state: 'pending',
    attempts: 0,
    startedAt: null,
    finishedAt: null,
    waitingUntil: null,
    waitingFor: null,
    error: null,
    detail: null,
  }));
}

export function stepsFor(kind: RotationKind, caKind?: RenewableCaKind): readonly StepName[] {
  if (kind === 'key') return KEY_ROTATION_STEPS;
  return caKind === 'root' ? ROOT_ROLLOVER_STEPS : ISSUING_CA_RENEWAL_STEPS;
}

/** The step to run next: the first that is neither finished nor skipped. */
export function currentStep(steps: readonly StepRecord[]): StepRecord | undefined {
  return steps.find((step) => step.state === 'pending' || step.state === 'waiting');
}

export function isTerminal(state: RotationState): boolean {
  return state === 'completed' || state === 'failed';
}

/** Records a step's outcome and moves the rotation on. */
export function applyStepResult(progress: RotationProgress, name: StepName, result: StepResult, now: Date): void {
  const step = progress.steps.find((s) => s.name === name);
  if (!step) throw new Error(`rotation has no step ${name}`);
  step.attempts++;
  step.startedAt ??= now.toISOString();
  const detail = { ...(step.detail ?? {}), ...(result.detail ?? {}) };
  step.detail = Object.keys(detail).length > 0 ? detail : null;
  switch (result.outcome) {
    case 'done':
    case 'skipped': {
      step.state = result.outcome;
      step.finishedAt = now.toISOString();
      step.waitingUntil = null;
      step.waitingFor = null;
      if (step.error) step.detail = { ...(step.detail ?? {}), lastError: step.error };
      step.error = null;
      if (result.outcome === 'skipped') step.detail = { ...(step.detail ?? {}), skipped: result.reason };
      progress.nextRunAt = now;
      if (!currentStep(progress.steps)) {
        progress.state = 'completed';
        progress.completedAt = now;
      } else if (name === 'activate') {
        progress.state = 'activated';
      }
      return;
    }
    case 'wait':
      step.state = 'waiting';
      step.waitingUntil = result.until.toISOString();
      step.waitingFor = result.waitingFor;
      step.error = null;
      progress.nextRunAt = result.until;
      return;
    case 'fail':
      step.state = 'failed';
      step.finishedAt = now.toISOString();
      step.error = result.error;
      progress.state = 'failed';
      progress.completedAt = now;
      return;
  }
}

/** Records a transient failure (exception): the step stays where it was and is retried with backoff. */
export function applyStepError(
  progress: RotationProgress,
  name: StepName,
  message: string,
  now: Date,
  retrySeconds: number,
): void {
  const step = progress.steps.find((s) => s.name === name);
  if (!step) throw new Error(`rotation has no step ${name}`);
  step.attempts++;
  step.startedAt ??= now.toISOString();
  step.error = message.slice(0, 500);
  const delayMs = Math.min(retrySeconds * 1000 * 2 ** Math.min(step.attempts - 1, 16), 3_600_000);
  progress.nextRunAt = new Date(now.getTime() + delayMs);
}

/** A CKA_ID derived from the rotation (and, for subordinates, the CA): the same on every replica and restart. */
export function hsmIdFor(rotationId: string, part?: string): string {
  const uuidHex = rotationId.replace(/-/g, '').toLowerCase();
  if (part === undefined && /^[0-9a-f]{32}$/.test(uuidHex)) return uuidHex;
  return createHash('sha256')
    .update(`${rotationId}:${part ?? ''}`)
    .digest('hex')
    .slice(0, 32);
}
