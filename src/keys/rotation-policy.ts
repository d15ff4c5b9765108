import { CronExpressionParser } from 'cron-parser';
import { DomainError, ErrorCode } from '../common/errors';
import { cronOf, shortestInterval } from './rotation-schedule';
import { RotationPolicy } from './signing-key.entity';

/** A rotation policy as the API takes it: any field left out takes its default. */
export interface RotationInput {
  schedule?: string;
  overlapDays?: number;
  retentionDays?: number;
}

export const DEFAULT_ROTATION: RotationPolicy = { schedule: 'quarterly', overlapDays: 14, retentionDays: 90 };

/**
 * A rotation policy from the API (key creation; any route that changes a policy must call this
 * too). A schedule firing more often than SIGNET_ROTATION_MIN_INTERVAL_HOURS is refused: each
 * rotation is a new HSM key pair and certificate, so a caller-chosen schedule must not become an
 * amplifier (`* * * * * *` would mint one every second).
 */
export function validateRotation(
  input: RotationInput | undefined,
  operation: string,
  minIntervalHours: number,
  now = new Date(),
): RotationPolicy {
  if (input !== undefined && (typeof input !== 'object' || input === null || Array.isArray(input))) {
    throw new DomainError(ErrorCode.VALIDATION_ERROR, `${operation}: 'rotation' must be an object`, {
      field: 'rotation',
    });
  }
  const unknown = Object.keys(input ?? {}).filter((k) => !['schedule', 'overlapDays', 'retentionDays'].includes(k));
  if (unknown.length > 0)
    throw new DomainError(
      ErrorCode.VALIDATION_ERROR,
      `${operation}: 'rotation' has unknown fields: ${unknown.join(', ')}`,
      { field: 'rotation' },
    );
  const policy: RotationPolicy = {
    schedule: input?.schedule ?? DEFAULT_ROTATION.schedule,
    overlapDays: input?.overlapDays ?? DEFAULT_ROTATION.overlapDays,
    retentionDays: input?.retentionDays ?? DEFAULT_ROTATION.retentionDays,
  };
  if (typeof policy.schedule !== 'string' || (policy.schedule !== 'quarterly' && !isCron(policy.schedule))) {
    throw new DomainError(
      ErrorCode.VALIDATION_ERROR,
      `${operation}: 'rotation.schedule' must be "quarterly" or a cron expression`,
      { field: 'rotation.schedule' },
    );
  }
  const floorMs = minIntervalHours * 3_600_000;
  const shortestMs = shortestInterval(policy.schedule, now, floorMs);
  if (shortestMs < floorMs) {
    throw new DomainError(
      ErrorCode.ROTATION_TOO_FREQUENT,
      `${operation}: 'rotation.schedule' fires ${describeGap(shortestMs)} apart at its closest; rotations must be at least ${minIntervalHours} h apart (SIGNET_ROTATION_MIN_INTERVAL_HOURS)`,
      {
        field: 'rotation.schedule',
        schedule: cronOf(policy.schedule),
        shortestIntervalSeconds: Math.round(shortestMs / 1000),
        minIntervalHours,
      },
    );
  }
  for (const field of ['overlapDays', 'retentionDays'] as const) {
    const value = policy[field];
    if (!Number.isInteger(value) || value < 0 || value > 3650) {
      throw new DomainError(
        ErrorCode.VALIDATION_ERROR,
        `${operation}: 'rotation.${field}' must be a whole number of days (0..3650)`,
        { field: `rotation.${field}` },
      );
    }
  }
  return policy;
}

function describeGap(ms: number): string {
  if (ms < 60_000) return `${Math.round(ms / 1000)} s`;
  if (ms < 3_600_000) return `${Math.round(ms / 60_000)} min`;
  return `${(ms / 3_600_000).toFixed(1).replace(/\.0$/, '')} h`;
}

function isCron(expression: string): boolean {
  if (expression.trim().split(/\s+/).length < 5) return false;
  try {
    CronExpressionParser.parse(expression, { tz: 'UTC' });
    return true;
  } catch {
    return false;
  }
}
