import { Inject, Injectable, Optional } from '@nestjs/common';
import { createHash } from 'node:crypto';
import { EntityManager } from 'typeorm';
import { CaEntity } from '../ca/ca.entity';
import { CaGenerationEntity } from '../ca/ca-generation.entity';
import { CaService } from '../ca/ca.service';
import { CaIssuer, issueIssuingCaCertificate, issueRootCaCertificate, issueTimestampingCertificate } from '../pki';
import { DISTRIBUTION_GATE, DistributionGate } from '../common/distribution-gate';
import { DomainError, ErrorCode } from '../common/errors';
import { SIGNET_CONFIG, SignetConfig } from '../config/config';
import { KEY_MANAGER, KeyManager } from '../hsm/key-manager';
import { SIGNER_FACTORY, SignerFactory } from '../hsm/signer-factory';
import { createOrAdoptKey } from './hsm-objects';
import { StepContext } from './key-rotation.steps';
import { CaRolloverPlan, StepName, StepResult, SubordinatePlan } from './rotation-steps';
import { RotationSubjectsRepository } from './rotation-subjects.repository';
import { RotationTestHooks } from './test-hooks';

const DAY_MS = 86_400_000;
const HOUR_MS = 3_600_000;

/**
 * The steps of a CA rollover: a new key generation with its own /pki and /ocsp URLs. An issuing
 * CA's new generation is certified by its parent's active generation and takes over issuing at
 * `activate`. A root rollover also certifies a new generation of every issuing CA under the new
 * root, then waits at the distribution gate (every required target has a bundle with the new
 * root) before the new hierarchy issues anything. Old generations stay (`retired`): they keep
 * signing CRLs and OCSP answers for what they issued.
 */
@Injectable()
export class CaRolloverSteps {
  constructor(
    @Inject(KEY_MANAGER) private readonly hsmKeys: KeyManager,
    @Inject(SIGNER_FACTORY) private readonly signers: SignerFactory,
    private readonly cas: CaService,
    private readonly hooks: RotationTestHooks,
    @Inject(SIGNET_CONFIG) private readonly config: SignetConfig,
    private readonly subjects: RotationSubjectsRepository,
    @Optional() @Inject(DISTRIBUTION_GATE) private readonly gate?: DistributionGate,
  ) {}

  async run(name: StepName, context: StepContext): Promise<StepResult> {
    const plan = context.rotation.plan as CaRolloverPlan;
    const ca = await this.subjects.caById(context.manager, context.rotation.caId!);
    if (!ca) return { outcome: 'fail', error: 'the CA no longer exists' };
    switch (name) {
      case 'create-key':
        return this.createKey(context.manager, ca, {
          caId: ca.id,
          caName: ca.name,
          generation: plan.generation,
          generationName: plan.generationName,
          hsmId: plan.hsmId,
          label: plan.label,
        });
      case 'issue-certificate':
        return this.issueCertificate(context, ca, plan);
      case 'issue-subordinates':
        return this.issueSubordinates(context, ca, plan);
      case 'distribution-gate':
        return this.distributionGate(context, ca, plan);
      case 'activate':
        return this.activate(context, ca, plan);
      default:
        throw new Error(`a CA rollover has no step ${name}`);
    }
  }

  /** HSM key pair with the planned CKA_ID and the new generation's row (pending, no certificate yet). */
  private async createKey(manager: EntityManager, ca: CaEntity, target: SubordinatePlan): Promise<StepResult> {
    const { generation, adopted } = await this.pendingGeneration(manager, ca, target);
    return {
      outcome: 'done',
      detail: {
        generation: generation.name,
        keyUri: generation.keyUri,
        ...(adopted ? { adoptedExistingObject: true } : {}),
      },
    };
  }

  private async pendingGeneration(
    manager: EntityManager,
    ca: CaEntity,
    target: SubordinatePlan,
  ): Promise<{ generation: CaGenerationEntity; adopted: boolean }> {
    const existing = await this.subjects.lockGeneration(manager, ca.id, target.generation);
    if (existing) return { generation: existing, adopted: false };
    const { info, adopted } = await createOrAdoptKey(this.hsmKeys, {
      spec: ca.keySpec,
      label: target.label,
      role: 'ca',
      hsmId: target.hsmId,
    });
    this.hooks.crashPoint('create-key-hsm');
    await this.subjects.insertPendingGeneration(manager, {
      caId: ca.id,
      generation: target.generation,
      name: target.generationName,
      keyUri: info.uri,
    });
    return { generation: (await this.subjects.findGeneration(manager, ca.id, target.generation))!, adopted };
  }

  /** Root: a new self-signed root. Issuing or TSA CA: certified by the parent's active generation, never outliving it. */
  private async issueCertificate(
    { manager, now }: StepContext,
    ca: CaEntity,
    plan: CaRolloverPlan,
  ): Promise<StepResult> {
    const generation = await this.subjects.lockGeneration(manager, ca.id, plan.generation);
    if (!generation) return { outcome: 'fail', error: `generation ${plan.generationName} is missing` };
    if (!generation.certificate) {
      let parent: { generation: CaGenerationEntity; issuer: CaIssuer } | undefined;
      if (plan.caKind === 'issuing' || plan.caKind === 'tsa') {
        const parentGeneration = await this.cas.activeGeneration(ca.parentId!);
        parent = { generation: parentGeneration, issuer: await this.cas.issuerFor(parentGeneration) };
      }
      await this.certify(manager, ca, generation, parent, now);
    }
    const stored = (await this.subjects.generationById(manager, generation.id))!;
    return {
      outcome: 'done',
      detail: {
        generation: stored.name,
        serial: stored.serial,
        notAfter: stored.notAfter?.toISOString() ?? null,
        ...(plan.caKind === 'root' ? { rootSha256: sha256Hex(stored.certificate!) } : {}),
      },
    };
  }

  private async certify(
    manager: EntityManager,
    ca: CaEntity,
    generation: CaGenerationEntity,
    parent: { generation: CaGenerationEntity; issuer: CaIssuer } | undefined,
    now: Date,
  ): Promise<void> {
    const signer = await this.signers.getSigner(generation.keyUri);
    let validityDays = ca.validityDays;
    if (parent) {
      validityDays = Math.min(validityDays, Math.floor((parent.issuer.notAfter.getTime() - now.getTime()) / DAY_MS));
      if (validityDays < 1) {
        throw new DomainError(
          ErrorCode.CONFLICT,
          `the parent generation ${parent.generation.name} expires too soon to certify ${generation.name}`,
        );
      }
    }
    const issue = ca.kind === 'tsa' ? issueTimestampingCertificate : issueIssuingCaCertificate;
    const issued = parent
      ? await issue({
          issuer: parent.issuer,
          subject: ca.subject,
          publicKeySpki: signer.publicKeySpki,
          validityDays,
          now,
        })
      : await issueRootCaCertificate({ signer, subject: ca.subject, validityDays, now });
    const chain = parent ? [parent.issuer.certificate, ...parent.generation.chain] : [];
    await this.subjects.updateGeneration(manager, generation.id, {
      certificate: issued.der,
      chain,
      serial: issued.serialHex,
      parentGenerationId: parent?.generation.id ?? null,
      notBefore: issued.notBefore,
      notAfter: issued.notAfter,
    });
    const row = await this.cas.recordCertificate(manager, issued, {
      issuerGenerationId: parent?.generation.id ?? null,
      caGenerationId: generation.id,
    });
    await this.cas.notifyCertificateIssued(row, manager);
    const stored = (await this.subjects.generationById(manager, generation.id))!;
    await this.cas.notifyGenerationCreated(ca, stored, manager);
  }

  /** Root rollover: a new generation of every issuing CA under the new root (pending, like the root). */
  private async issueSubordinates(
    { manager, now }: StepContext,
    ca: CaEntity,
    plan: CaRolloverPlan,
  ): Promise<StepResult> {
    const root = await this.subjects.findGeneration(manager, ca.id, plan.generation);
    if (!root?.certificate) return { outcome: 'fail', error: `generation ${plan.generationName} has no certificate` };
    const rootIssuer = await this.cas.issuerFor(root);
    const issued: string[] = [];
    const adoptedObjects: string[] = [];
    for (const target of plan.subordinates) {
      const child = await this.subjects.caById(manager, target.caId);
      if (!child) continue;
      const { generation, adopted } = await this.pendingGeneration(manager, child, target);
      if (!generation.certificate)
        await this.certify(manager, child, generation, { generation: root, issuer: rootIssuer }, now);
      issued.push(generation.name);
      if (adopted) adoptedObjects.push(generation.name);
    }
    return {
      outcome: 'done',
      detail: { subordinates: issued, ...(adoptedObjects.length ? { adoptedExistingObjects: adoptedObjects } : {}) },
    };
  }

  /**
   * The new hierarchy issues nothing until every required distribution target has acknowledged a
   * bundle holding the new root. Past SIGNET_ROOT_GATE_TIMEOUT_HOURS an alert is raised and the
   * old hierarchy simply stays in use; an admin may force the switch (audited, with a reason).
   */
  private async distributionGate(
    { manager, rotation, step, now }: StepContext,
    ca: CaEntity,
    plan: CaRolloverPlan,
  ): Promise<StepResult> {
    const root = await this.subjects.findGeneration(manager, ca.id, plan.generation);
    if (!root?.certificate) return { outcome: 'fail', error: `generation ${plan.generationName} has no certificate` };
    const rootSha256 = sha256Hex(root.certificate);
    if (plan.forced) return { outcome: 'done', detail: { rootSha256, forced: plan.forced } };
    if (!this.gate) {
      // No distribution module in this build: there are no targets, so none is required.
      return {
        outcome: 'done',
        detail: { rootSha256, acknowledged: true, gate: 'none (no distribution targets in this build)' },
      };
    }
    const answer = await this.gate.requiredTargetsHaveRoot(rootSha256);
    if (answer.acknowledged) return { outcome: 'done', detail: { rootSha256, acknowledged: true } };
    const waitingSince = new Date(step.startedAt ?? now.toISOString());
    const timeoutAt = new Date(waitingSince.getTime() + this.config.rotation.rootGateTimeoutHours * HOUR_MS);
    const pending = answer.pending.length > 0 ? answer.pending.join(', ') : 'required targets';
    const timedOut = now.getTime() >= timeoutAt.getTime();
    return {
      outcome: 'wait',
      until: new Date(now.getTime() + this.config.rotation.retrySeconds * 1000),
      waitingFor: `acknowledgement of the new root ${plan.generationName} (sha256 ${rootSha256.slice(0, 16)}…) by ${pending}`,
      detail: { rootSha256, pending: answer.pending, timeoutAt: timeoutAt.toISOString() },
      ...(timedOut && !rotation.alert
        ? {
            alert: `root rollover of ${ca.name}: ${pending} did not acknowledge the new root ${plan.generationName} within ${this.config.rotation.rootGateTimeoutHours} h; the old hierarchy stays in use (an admin may force: POST /v1/rotations/${rotation.id}/force)`,
          }
        : {}),
    };
  }

  /** One transaction: the new generation(s) become active, the previous ones retired. */
  private async activate({ manager }: StepContext, ca: CaEntity, plan: CaRolloverPlan): Promise<StepResult> {
    const targets: Array<{ caId: string; generation: number }> = [
      { caId: ca.id, generation: plan.generation },
      ...plan.subordinates.map((s) => ({ caId: s.caId, generation: s.generation })),
    ];
    await this.subjects.lockCas(
      manager,
      targets.map((t) => t.caId),
    );
    const activated: string[] = [];
    const retired: string[] = [];
    for (const target of targets) {
      const next = await this.subjects.findGeneration(manager, target.caId, target.generation);
      if (!next?.certificate)
        return { outcome: 'fail', error: `generation ${target.generation} of CA ${target.caId} has no certificate` };
      if (next.state === 'active') continue;
      const previous = await this.subjects.activeGeneration(manager, target.caId);
      if (previous) {
        await this.subjects.updateGeneration(manager, previous.id, { state: 'retired' });
        retired.push(previous.name);
      }
      await this.subjects.updateGeneration(manager, next.id, { state: 'active' });
      activated.push(next.name);
      const owner = (await this.subjects.caById(manager, target.caId))!;
      await this.cas.notifyGenerationActivated(
        owner,
        { ...next, state: 'active' },
        previous ? { ...previous, state: 'retired' } : null,
        manager,
      );
    }
    return { outcome: 'done', detail: { activated, retired } };
  }
}

export function sha256Hex(der: Buffer): string {
  return createHash('sha256').update(der).digest('hex');
}
