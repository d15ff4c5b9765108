import { Injectable } from '@nestjs/common';
import { EntityManager } from 'typeorm';
import type { AuditActor } from '../audit/audit.types';
import type { SigningKeyEntity } from '../keys/signing-key.entity';
import { RotationEntity } from './rotation.entity';
import type { RotationPlan, RotationState, RotationTrigger, StepRecord } from './rotation-steps';

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
    const [head]: Array<{ kind: string; key_id: string | null }> = await manager.query(
      'SELECT kind, key_id FROM rotations WHERE id = $1',
      [id],
    );
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
  async activeVersionState(
    manager: EntityManager,
    keyId: string,
  ): Promise<{ activated_at: Date | null; has_active: boolean }> {
    const [state] = await manager.query(
      `SELECT (SELECT activated_at FROM key_versions WHERE key_id = $1 AND state = 'active') AS activated_at,
              EXISTS (SELECT 1 FROM key_versions WHERE key_id = $1 AND state = 'active') AS has_active`,
      [keyId],
    );
    return state;
  }

  /** The rotation, locked FOR UPDATE until the caller's transaction ends (after its advisory lock). */
  findForUpdate(manager: EntityManager, id: string): Promise<RotationEntity | null> {
    return manager.getRepository(RotationEntity).findOne({ where: { id }, lock: { mode: 'pessimistic_write' } });
  }

  findById(manager: EntityManager, id: string): Promise<RotationEntity | null> {
    return manager.getRepository(RotationEntity).findOneBy({ id });
  }

  /** The running rotation of a key or of a CA, if any (one at most: a unique index). */
  findRunning(
    manager: EntityManager,
    subject: { kind: 'key'; keyId: string } | { kind: 'ca'; caId: string },
  ): Promise<RotationEntity | null> {
    return manager.getRepository(RotationEntity).findOneBy({ ...subject, state: 'running' });
  }

  /** Subjects of the running CA rollovers of any of these CAs. */
  async runningCaRolloverSubjects(manager: EntityManager, caIds: string[]): Promise<string[]> {
    const rows: Array<{ subject: string }> = await manager.query(
      `SELECT subject FROM rotations WHERE kind = 'ca' AND state = 'running' AND ca_id = ANY($1::uuid[])`,
      [caIds],
    );
    return rows.map((row) => row.subject);
  }

  /**
   * Inserts a running rotation, or nothing when a unique index (one running per key/CA, one per
   * schedule occurrence) says another replica got there first: that is an answer (undefined), not
   * an error. Returns the stored row.
   */
  async insertRunning(manager: EntityManager, row: NewRotation): Promise<RotationEntity | undefined> {
    const inserted: Array<{ id: string }> = await manager.query(
      `INSERT INTO rotations (id, kind, key_id, ca_id, subject, trigger, due_at, state, steps, plan, next_run_at, reason, requested_by, started_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, 'running', $8, $9, $10, $11, $12, $10)
       ON CONFLICT DO NOTHING RETURNING id`,
      [
        row.id,
        row.kind,
        row.keyId,
        row.caId,
        row.subject,
        row.trigger,
        row.dueAt,
        JSON.stringify(row.steps),
        JSON.stringify(row.plan),
        row.now,
        row.reason ?? null,
        row.actor ? JSON.stringify(row.actor) : null,
      ],
    );
    if (inserted.length === 0) return undefined;
    return (await manager.getRepository(RotationEntity).findOneBy({ id: row.id }))!;
  }

  /** Rotations newest first, filtered by key or CA name and state. */
  list(
    manager: EntityManager,
    filter: { key?: string; ca?: string; state?: RotationState; limit: number },
  ): Promise<RotationEntity[]> {
    const builder = manager
      .getRepository(RotationEntity)
      .createQueryBuilder('r')
      .orderBy('r.started_at', 'DESC')
      .addOrderBy('r.created_at', 'DESC')
      .take(filter.limit);
    if (filter.key !== undefined) builder.andWhere(`r.kind = 'key' AND r.subject = :key`, { key: filter.key });
    if (filter.ca !== undefined) builder.andWhere(`r.kind = 'ca' AND r.subject = :ca`, { ca: filter.ca });
    if (filter.state !== undefined) builder.andWhere('r.state = :state', { state: filter.state });
    return builder.getMany();
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
  const [{ locked }] = await manager.query('SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0)) AS locked', [
    name,
  ]);
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

export interface NewRotation {
  id: string;
  kind: 'key' | 'ca';
  keyId: string | null;
  caId: string | null;
  subject: string;
  trigger: RotationTrigger;
  dueAt: Date | null;
  steps: StepRecord[];
  plan: RotationPlan;
  now: Date;
  actor?: AuditActor;
  reason?: string;
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
