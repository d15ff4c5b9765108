import { Inject, Injectable, Logger } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { DataSource, EntityManager } from 'typeorm';
import { AuditService } from '../audit/audit.service';
import type { AuditActor } from '../audit/audit.types';
import { CaEntity } from '../ca/ca.entity';
import { EXTERNAL_KEY_URI } from '../ca/ca.service';
import { DomainError, ErrorCode } from '../common/errors';
import { SigningKeyEntity } from '../keys/signing-key.entity';
import { RotationEntity } from './rotation.entity';
import { RotationDueService } from './rotation-due.service';
import { ROTATION_CLOCK, RotationClock } from './rotation-clock';
import { NewRotation, RotationRepository } from './rotation.repository';
import { RotationSubjectsRepository } from './rotation-subjects.repository';
import { RotationView, toView } from './rotation-view';
import {
  CaRolloverPlan,
  hsmIdFor,
  KeyRotationPlan,
  newSteps,
  RotationState,
  RotationTrigger,
  stepsFor,
} from './rotation-steps';

export interface ListRotationsQuery {
  key?: string;
  ca?: string;
  state?: string;
  limit?: number;
}

/**
 * Which rotations exist and which should: scheduled key rotations whose occurrence has passed,
 * emergency rotations of keys left without an active version, issuing CAs whose remaining lifetime
 * would cut leaf lifetimes short, and what operators ask for. Creating a rotation only writes its
 * row (under the subject's advisory lock, with unique indexes as the last word); RotationRunner
 * does the work. What is due is RotationDueService's answer.
 */
@Injectable()
export class RotationService {
  private readonly logger = new Logger(RotationService.name);

  constructor(
    private readonly dataSource: DataSource,
    private readonly audit: AuditService,
    @Inject(ROTATION_CLOCK) private readonly clock: RotationClock,
    private readonly rotations: RotationRepository,
    private readonly subjects: RotationSubjectsRepository,
    private readonly due: RotationDueService,
  ) {}

  now(): Date {
    return this.clock.now();
  }

  // ------------------------------------------------------------------ key rotations

  /** POST /v1/keys/{name}/rotate: the running rotation of the key, or a new one. */
  async requestKeyRotation(
    keyName: string,
    options: { actor?: AuditActor; reason?: string } = {},
  ): Promise<{ rotation: RotationView; created: boolean }> {
    const key = typeof keyName === 'string' ? await this.subjects.keyNamed(this.dataSource.manager, keyName) : null;
    if (!key) throw new DomainError(ErrorCode.NOT_FOUND, `no key named '${keyName}'`);
    const now = this.clock.now();
    const result = await this.dataSource.transaction(async (manager) => {
      await this.rotations.tryLock(manager, { kind: 'key', keyId: key.id }, true);
      return this.startKeyRotation(manager, key, {
        trigger: 'manual',
        now,
        actor: options.actor,
        reason: options.reason,
      });
    });
    if (!result) throw new DomainError(ErrorCode.CONFLICT, `key '${keyName}' could not be rotated now`);
    return { rotation: toView(result.rotation), created: result.created };
  }

  /** After the active version's certificate was revoked: a rotation at once (or the running one). */
  async requestEmergencyRotation(keyId: string, revokedVersion: number): Promise<RotationEntity | undefined> {
    const key = await this.subjects.keyById(this.dataSource.manager, keyId);
    if (!key) return undefined;
    const now = this.clock.now();
    const result = await this.dataSource.transaction(async (manager) => {
      await this.rotations.tryLock(manager, { kind: 'key', keyId }, true);
      if (await this.subjects.hasActiveVersion(manager, keyId)) return undefined;
      return this.startKeyRotation(manager, key, {
        trigger: 'revocation',
        now,
        fromVersion: revokedVersion,
        reason: `the certificate of version ${revokedVersion} was revoked`,
      });
    });
    return result?.rotation;
  }

  /**
   * Inserts a key rotation unless one is running (returned instead). Call holding the key's lock.
   * Returns undefined when a unique index refused it (this schedule occurrence was already rotated).
   */
  private async startKeyRotation(
    manager: EntityManager,
    key: SigningKeyEntity,
    options: {
      trigger: RotationTrigger;
      now: Date;
      dueAt?: Date;
      fromVersion?: number;
      actor?: AuditActor;
      reason?: string;
    },
  ): Promise<{ rotation: RotationEntity; created: boolean } | undefined> {
    const running = await this.rotations.findRunning(manager, { kind: 'key', keyId: key.id });
    if (running) return { rotation: running, created: false };
    const versions = await this.subjects.versionNumbers(manager, key.id);
    const id = randomUUID();
    const toVersion = versions.latest + 1;
    const plan: KeyRotationPlan = {
      kind: 'key',
      keyName: key.name,
      fromVersion: versions.active ?? options.fromVersion ?? null,
      toVersion,
      hsmId: hsmIdFor(id),
      label: `${key.name}-v${toVersion}`,
    };
    const inserted = await this.insertRotation(manager, {
      id,
      kind: 'key',
      keyId: key.id,
      caId: null,
      subject: key.name,
      trigger: options.trigger,
      dueAt: options.dueAt ?? null,
      steps: newSteps(stepsFor('key')),
      plan,
      now: options.now,
      actor: options.actor,
      reason: options.reason,
    });
    if (!inserted) return undefined;
    this.logger.log(`key ${key.name}: rotation ${id} started (${options.trigger}) → version ${toVersion}`);
    return { rotation: inserted, created: true };
  }

  /** Inserts the rotation and audits its start; undefined when a unique index refused it. */
  private async insertRotation(manager: EntityManager, row: NewRotation): Promise<RotationEntity | undefined> {
    const rotation = await this.rotations.insertRunning(manager, row);
    if (!rotation) return undefined;
    // Recorded before the rotation commits: the log may name a rotation that then failed to commit, never the reverse.
    await this.audit.record({
      type: 'rotation.started',
      actor: row.actor,
      subject: row.subject,
      data: {
        rotationId: row.id,
        kind: row.kind,
        trigger: row.trigger,
        dueAt: row.dueAt?.toISOString() ?? null,
        at: row.now.toISOString(),
        reason: row.reason ?? null,
        plan: row.plan as unknown as Record<string, unknown>,
      },
    });
    return rotation;
  }

  // ------------------------------------------------------------------ CA rollovers

  /** POST /v1/cas/{name}/renew: a new key generation (root: with new subordinate generations and the distribution gate). */
  async requestCaRenewal(
    caName: string,
    options: { actor?: AuditActor; reason?: string; trigger?: RotationTrigger } = {},
  ): Promise<{ rotation: RotationView; created: boolean }> {
    const ca = typeof caName === 'string' ? await this.subjects.caNamed(this.dataSource.manager, caName) : null;
    if (!ca) throw new DomainError(ErrorCode.NOT_FOUND, `no CA named '${caName}'`);
    const now = this.clock.now();
    const result = await this.dataSource.transaction(async (manager) => {
      await this.rotations.tryLock(manager, { kind: 'ca' }, true);
      return this.startCaRollover(manager, ca, {
        trigger: options.trigger ?? 'manual',
        now,
        actor: options.actor,
        reason: options.reason,
      });
    });
    return { rotation: toView(result.rotation), created: result.created };
  }

  private async startCaRollover(
    manager: EntityManager,
    ca: CaEntity,
    options: { trigger: RotationTrigger; now: Date; actor?: AuditActor; reason?: string },
  ): Promise<{ rotation: RotationEntity; created: boolean }> {
    const operation = 'renewCa';
    if (ca.kind !== 'root' && ca.kind !== 'issuing' && ca.kind !== 'tsa') {
      throw new DomainError(
        ErrorCode.VALIDATION_ERROR,
        `${operation}: renewing a ${ca.kind} CA is not supported (root, issuing and tsa CAs; a TSA root is replaced by creating a new tsa-root CA)`,
        { field: 'name' },
      );
    }
    const running = await this.rotations.findRunning(manager, { kind: 'ca', caId: ca.id });
    if (running) return { rotation: running, created: false };
    const active = await this.subjects.activeGeneration(manager, ca.id);
    if (ca.external || !active?.certificate || active.keyUri === EXTERNAL_KEY_URI) {
      throw new DomainError(
        ErrorCode.CONFLICT,
        `${operation}: CA '${ca.name}' has no active generation with a key in this HSM (an offline or external CA is renewed where its key lives)`,
      );
    }
    // One rollover per hierarchy at a time: a root rollover re-certifies the issuing CAs below it.
    const related = [ca.id, ...(ca.parentId ? [ca.parentId] : [])];
    const children = await this.subjects.issuingChildren(manager, ca.id);
    const busy = await this.rotations.runningCaRolloverSubjects(manager, [...related, ...children.map((c) => c.id)]);
    if (busy.length > 0)
      throw new DomainError(
        ErrorCode.CONFLICT,
        `${operation}: a rollover of ${busy.join(', ')} is in progress in this hierarchy`,
      );

    const id = randomUUID();
    const generation = await this.subjects.nextGenerationNumber(manager, ca.id);
    const subordinates = [];
    if (ca.kind === 'root') {
      for (const child of children) {
        const childActive = await this.subjects.activeGeneration(manager, child.id);
        if (!childActive?.certificate || childActive.keyUri === EXTERNAL_KEY_URI) continue;
        const childGeneration = await this.subjects.nextGenerationNumber(manager, child.id);
        const name = `${child.name}-g${childGeneration}`;
        subordinates.push({
          caId: child.id,
          caName: child.name,
          generation: childGeneration,
          generationName: name,
          hsmId: hsmIdFor(id, child.id),
          label: `ca:${name}`,
        });
      }
    }
    const generationName = `${ca.name}-g${generation}`;
    const plan: CaRolloverPlan = {
      kind: 'ca',
      caName: ca.name,
      caKind: ca.kind,
      fromGeneration: active.name,
      generation,
      generationName,
      hsmId: hsmIdFor(id),
      label: `ca:${generationName}`,
      subordinates,
    };
    const rotation = await this.insertRotation(manager, {
      id,
      kind: 'ca',
      keyId: null,
      caId: ca.id,
      subject: ca.name,
      trigger: options.trigger,
      dueAt: null,
      steps: newSteps(stepsFor('ca', ca.kind)),
      plan,
      now: options.now,
      actor: options.actor,
      reason: options.reason,
    });
    if (!rotation)
      throw new DomainError(ErrorCode.CONFLICT, `${operation}: a rollover of '${ca.name}' is already in progress`);
    this.logger.log(
      `CA ${ca.name}: rollover ${id} started (${options.trigger}) → ${generationName}${subordinates.length ? ` with ${subordinates.map((s) => s.generationName).join(', ')}` : ''}`,
    );
    return { rotation, created: true };
  }

  /** An admin lets a root rollover's new hierarchy issue before every required target acknowledged. */
  async forceDistributionGate(rotationId: string, reason: unknown, actor?: AuditActor): Promise<RotationView> {
    const operation = 'forceRotation';
    if (typeof reason !== 'string' || reason.trim().length < 3 || reason.length > 500) {
      throw new DomainError(
        ErrorCode.VALIDATION_ERROR,
        `${operation}: 'reason' is required (3..500 characters) and is audited`,
        { field: 'reason' },
      );
    }
    const now = this.clock.now();
    const rotation = await this.dataSource.transaction(async (manager) => {
      await this.rotations.tryLock(manager, { kind: 'ca' }, true);
      const rotation = await this.findForUpdate(manager, rotationId);
      const plan = rotation.plan as CaRolloverPlan;
      const gate = rotation.steps.find((s) => s.name === 'distribution-gate');
      if (rotation.kind !== 'ca' || plan.caKind !== 'root' || !gate) {
        throw new DomainError(
          ErrorCode.CONFLICT,
          `${operation}: only a root rollover has a distribution gate to force`,
        );
      }
      if (rotation.state !== 'running' || gate.state === 'done')
        throw new DomainError(
          ErrorCode.CONFLICT,
          `${operation}: the distribution gate of rotation ${rotationId} is no longer closed`,
        );
      plan.forced = { reason: reason.trim(), at: now.toISOString(), actor: actor ? { ...actor } : null };
      await this.audit.record({
        type: 'rotation.gate.forced',
        actor,
        subject: rotation.subject,
        data: {
          rotationId,
          generation: plan.generationName,
          reason: reason.trim(),
          pending: (gate.detail?.pending as string[] | undefined) ?? [],
          at: now.toISOString(),
        },
      });
      await this.rotations.write(manager, rotationId, { plan, nextRunAt: now });
      rotation.plan = plan;
      return rotation;
    });
    this.logger.warn(
      `rotation ${rotationId}: distribution gate forced by ${actor?.tokenName ?? 'an admin'}: ${reason.trim()}`,
    );
    return toView(rotation);
  }

  private async findForUpdate(manager: EntityManager, id: string): Promise<RotationEntity> {
    const rotation = isUuid(id) ? await this.rotations.findForUpdate(manager, id) : null;
    if (!rotation) throw new DomainError(ErrorCode.NOT_FOUND, `no rotation with id '${id}'`);
    return rotation;
  }

  // ------------------------------------------------------------------ the scheduler's tick

  /**
   * What the scheduler tick enqueues at `now`. Candidates are read without locks; each is then
   * re-checked and inserted under its advisory lock (skipped when another replica holds it).
   */
  async enqueueDue(now: Date): Promise<RotationEntity[]> {
    const started: RotationEntity[] = [];
    const keys = await this.rotations.keyRotationCandidates(this.dataSource.manager);
    for (const key of keys) {
      if (key.rotating) continue;
      if (!key.has_active) {
        // External CA: a first version waits for its chain; that is not a missing version.
        if (key.external && key.has_pending) continue;
      } else if (!this.due.scheduledDue(key.rotation.schedule, key.activated_at ?? new Date(0), now)) {
        continue;
      }
      try {
        const result = await this.dataSource.transaction(async (manager) => {
          if (!(await this.rotations.tryLock(manager, { kind: 'key', keyId: key.id }))) return undefined;
          // Re-read under the lock: another replica may have rotated it since the query above.
          const entity = await this.subjects.keyById(manager, key.id);
          if (!entity) return undefined;
          const state = await this.rotations.activeVersionState(manager, key.id);
          if (state.has_active) {
            const dueAt = this.due.scheduledDue(entity.rotation.schedule, state.activated_at ?? new Date(0), now);
            if (!dueAt) return undefined;
            return this.startKeyRotation(manager, entity, { trigger: 'schedule', now, dueAt });
          }
          return this.startKeyRotation(manager, entity, {
            trigger: 'no-active-version',
            now,
            reason: 'the key has no active version',
          });
        });
        if (result?.created) started.push(result.rotation);
      } catch (error) {
        this.logger.error(`could not enqueue the rotation of key ${key.name}: ${(error as Error).message}`);
      }
    }
    for (const ca of await this.due.casDueForRenewal(now)) {
      try {
        const result = await this.dataSource.transaction(async (manager) => {
          if (!(await this.rotations.tryLock(manager, { kind: 'ca' }))) return undefined;
          const due = (await this.due.casDueForRenewal(now, manager)).find((c) => c.id === ca.id);
          if (!due) return undefined;
          const entity = (await this.subjects.caById(manager, ca.id))!;
          return this.startCaRollover(manager, entity, { trigger: 'ca-lifetime', now, reason: due.reason });
        });
        if (result?.created) started.push(result.rotation);
      } catch (error) {
        this.logger.error(`could not enqueue the renewal of CA ${ca.name}: ${(error as Error).message}`);
      }
    }
    return started;
  }

  // ------------------------------------------------------------------ reads

  async list(query: ListRotationsQuery = {}): Promise<RotationView[]> {
    const limit = query.limit ?? 100;
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000)
      throw new DomainError(ErrorCode.VALIDATION_ERROR, "'limit' must be 1..1000", { field: 'limit' });
    const states: RotationState[] = ['running', 'activated', 'completed', 'failed'];
    if (query.state !== undefined && !states.includes(query.state as RotationState)) {
      throw new DomainError(ErrorCode.VALIDATION_ERROR, `'state' must be one of ${states.join(', ')}`, {
        field: 'state',
      });
    }
    const rotations = await this.rotations.list(this.dataSource.manager, {
      key: query.key,
      ca: query.ca,
      state: query.state as RotationState | undefined,
      limit,
    });
    return rotations.map(toView);
  }

  async get(id: string): Promise<RotationView> {
    const rotation = isUuid(id) ? await this.rotations.findById(this.dataSource.manager, id) : null;
    if (!rotation) throw new DomainError(ErrorCode.NOT_FOUND, `no rotation with id '${id}'`);
    return toView(rotation);
  }
}

function isUuid(value: unknown): value is string {
  return typeof value === 'string' && /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(value);
}
