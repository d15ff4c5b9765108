import { Injectable } from '@nestjs/common';
import { EntityManager } from 'typeorm';
import type { SigningKeyEntity } from '../keys/signing-key.entity';
import type { RotationPlan, RotationState, StepRecord } from './rotation-steps';

/** What a rotation lock guards: one key, or all CA rollovers (rare, and they touch whole hierarchies). */
export type RotationLockSubject = { kind: string; keyId?: string | null; key_id?: string | null };

/** Advisory-lock names: one per key, one for all CA rollovers. */
export function rotationLockName(rotation: RotationLockSubject): string {
  return rotation.kind === 'key' ? `signet-rotation:key:${rotation.keyId ?? rotation.key_id}` : 'signet-rotation:ca';
}

/**
 * Data access of the rotation aggregate that the workflows share: its lock and its progress
 * writes, always in the caller's transaction.
 */
@Injectable()
export class RotationRepository {
  /**
   * The rotation lock of a key (or of CA rollovers): a transaction-scoped advisory lock (never a
   * session lock through a pooled connection), held until this transaction ends and released by
   * PostgreSQL when the process dies. With `wait` false, answers false at once when another
   * transaction holds it.
   */
  tryLock(manager: EntityManager, subject: RotationLockSubject | string, wait = false): Promise<boolean> {
    return tryRotationLock(manager, typeof subject === 'string' ? subject : rotationLockName(subject), wait);
  }

  /** Ids of the rotations whose next step may run at `now`, oldest first (at most 500 a pass). */
  async runnableIds(manager: EntityManager, now: Date): Promise<string[]> {
    const rows: Array<{ id: string }> = await manager.query(
      `SELECT id FROM rotations WHERE state IN ('running', 'activated') AND next_run_at <= $1 ORDER BY started_at, created_at LIMIT 500`,
      [now],
    );
    return rows.map((row) => row.id);
  }

  /** What a rotation's lock is named after (read before the lock is taken), or undefined when it does not exist. */
  async lockSubject(manager: EntityManager, id: string): Promise<RotationLockSubject | undefined> {
    const [head]: Array<{ kind: string; key_id: string | null }> = await manager.query('SELECT kind, key_id FROM rotations WHERE id = $1', [id]);
    return head;
  }

  /**
   * Every key with what the scheduler needs to decide whether it is due, read without locks
   * (each candidate is re-checked under its lock with activeVersionState).
   */
  keyRotationCandidates(manager: EntityManager): Promise<KeyRotationCandidate[]> {
    return manager.query(`
        SELECT k.id, k.name, k.external, k.rotation,
               a.activated_at, (a.id IS NOT NULL) AS has_active,
               EXISTS (SELECT 1 FROM key_versions p WHERE p.key_id = k.id AND p.state IN ('pending', 'published')) AS has_pending,
               EXISTS (SELECT 1 FROM rotations r WHERE r.key_id = k.id AND r.kind = 'key' AND r.state = 'running') AS rotating
          FROM signing_keys k
          LEFT JOIN key_versions a ON a.key_id = k.id AND a.state = 'active'
         ORDER BY k.name`);
  }

  /** Whether the key has an active version now, and since when (read under the key's lock). */
  async activeVersionState(manager: EntityManager, keyId: string): Promise<{ activated_at: Date | null; has_active: boolean }> {
    const [state] = await manager.query(
      `SELECT (SELECT activated_at FROM key_versions WHERE key_id = $1 AND state = 'active') AS activated_at,
              EXISTS (SELECT 1 FROM key_versions WHERE key_id = $1 AND state = 'active') AS has_active`,
      [keyId],
    );
    return state;
  }

  /** Writes a rotation's progress (jsonb columns as JSON) in the caller's transaction. */
  write(manager: EntityManager, id: string, fields: RotationProgress): Promise<void> {
    return writeRotation(manager, id, fields);
  }
}

async function tryRotationLock(manager: EntityManager, name: string, wait: boolean): Promise<boolean> {
  if (wait) {
    await manager.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [name]);
    return true;
  }
  const [{ locked }] = await manager.query('SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0)) AS locked', [name]);
  return locked === true;
}

export interface KeyRotationCandidate {
  id: string;
  name: string;
  external: boolean;
  rotation: SigningKeyEntity['rotation'];
  activated_at: Date | null;
  has_active: boolean;
  has_pending: boolean;
  rotating: boolean;
}

export interface RotationProgress {
  state?: RotationState;
  steps?: StepRecord[];
  plan?: RotationPlan;
  nextRunAt?: Date;
  completedAt?: Date | null;
  alert?: string | null;
}

async function writeRotation(manager: EntityManager, id: string, fields: RotationProgress): Promise<void> {
  const params: unknown[] = [id];
  const sets: string[] = ['updated_at = now()'];
  const set = (column: string, value: unknown, cast = '') => {
    params.push(value);
    sets.push(`${column} = $${params.length}${cast}`);
  };
  if (fields.state !== undefined) set('state', fields.state);
  if (fields.steps !== undefined) set('steps', JSON.stringify(fields.steps), '::jsonb');
  if (fields.plan !== undefined) set('plan', JSON.stringify(fields.plan), '::jsonb');
  if (fields.nextRunAt !== undefined) set('next_run_at', fields.nextRunAt);
  if (fields.completedAt !== undefined) set('completed_at', fields.completedAt);
  if (fields.alert !== undefined) set('alert', fields.alert);
  await manager.query(`UPDATE rotations SET ${sets.join(', ')} WHERE id = $1`, params);
}
