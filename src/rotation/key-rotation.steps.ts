import { Inject, Injectable } from '@nestjs/common';
import { EntityManager } from 'typeorm';
import { createCertificationRequest } from '../pki';
import { DomainError, ErrorCode } from '../common/errors';
import { SIGNET_CONFIG, SignetConfig } from '../config/config';
import { ChangeNotifier } from '../database/change-notifier';
import { KEY_MANAGER, KeyManager } from '../hsm/key-manager';
import { SIGNER_FACTORY, SignerFactory } from '../hsm/signer-factory';
import { parsePkcs11Uri } from '../hsm/pkcs11-uri';
import { KeyVersionsService } from '../keys/key-versions.service';
import { SigningKeyEntity } from '../keys/signing-key.entity';
import { KEYS_CHANNEL } from '../signing/active-key-cache';
import { createOrAdoptKey } from './hsm-objects';
import { RotationEntity } from './rotation.entity';
import { RotationSubjectsRepository } from './rotation-subjects.repository';
import { KeyRotationPlan, StepName, StepRecord, StepResult } from './rotation-steps';
import { RotationTestHooks } from './test-hooks';

const DAY_MS = 86_400_000;

export interface StepContext {
  manager: EntityManager;
  rotation: RotationEntity;
  step: StepRecord;
  now: Date;
}

/**
 * The steps of a signing-key rotation. Each runs inside the runner's transaction (holding the
 * key's advisory lock) and is idempotent: it first looks at what an earlier attempt left behind.
 */
@Injectable()
export class KeyRotationSteps {
  constructor(
    @Inject(KEY_MANAGER) private readonly hsmKeys: KeyManager,
    @Inject(SIGNER_FACTORY) private readonly signers: SignerFactory,
    private readonly keyVersions: KeyVersionsService,
    private readonly notifier: ChangeNotifier,
    private readonly hooks: RotationTestHooks,
    @Inject(SIGNET_CONFIG) private readonly config: SignetConfig,
    private readonly subjects: RotationSubjectsRepository,
  ) {}

  async run(name: StepName, context: StepContext): Promise<StepResult> {
    const plan = context.rotation.plan as KeyRotationPlan;
    const key = await this.subjects.keyById(context.manager, context.rotation.keyId!);
    if (!key) return { outcome: 'fail', error: 'the key no longer exists' };
    switch (name) {
      case 'create-key':
        return this.createKey(context, key, plan);
      case 'issue-certificate':
        return this.issueCertificate(context, key, plan);
      case 'activate':
        return this.activate(context, key, plan);
      case 'retire':
        return this.retire(context, key);
      case 'destroy':
        return this.destroy(context, key, plan);
      default:
        throw new Error(`a key rotation has no step ${name}`);
    }
  }

  /**
   * After a permanent failure before activation: the new version never signed, so its private key
   * is destroyed rather than left in the HSM (its row and certificate stay, as history).
   */
  async abandon({ manager, rotation, now }: StepContext): Promise<Record<string, unknown>> {
    const plan = rotation.plan as KeyRotationPlan;
    if (rotation.steps.find((s) => s.name === 'activate')?.state === 'done') return {};
    const version = await this.subjects.lockVersion(manager, rotation.keyId!, plan.toVersion);
    if (version && (version.state === 'active' || version.destroyedAt || !sameHsmId(version.keyUri, plan.hsmId)))
      return {};
    const uri = version?.keyUri ?? (await this.hsmKeys.listKeys()).find((k) => k.id === plan.hsmId)?.uri;
    if (!uri) return {};
    try {
      await this.hsmKeys.destroyKey(uri);
    } catch (error) {
      if (!(error instanceof DomainError && error.code === ErrorCode.NOT_FOUND)) throw error;
    }
    if (version)
      await this.subjects.updateVersion(manager, version.id, {
        state: version.state === 'revoked' ? 'revoked' : 'destroyed',
        destroyedAt: now,
      });
    return { abandonedVersion: plan.toVersion, destroyedKeyUri: uri };
  }

  /** HSM key pair with the planned CKA_ID, and the new version row (pending, no certificate yet). */
  private async createKey({ manager }: StepContext, key: SigningKeyEntity, plan: KeyRotationPlan): Promise<StepResult> {
    const existing = await this.subjects.findVersion(manager, key.id, plan.toVersion);
    if (existing) {
      if (!sameHsmId(existing.keyUri, plan.hsmId))
        return {
          outcome: 'fail',
          error: `version ${plan.toVersion} of '${key.name}' exists and was not made by this rotation`,
        };
      return { outcome: 'done', detail: { version: plan.toVersion, keyUri: existing.keyUri } };
    }
    const { info, adopted } = await createOrAdoptKey(this.hsmKeys, {
      spec: key.keySpec,
      label: plan.label,
      role: 'signing',
      hsmId: plan.hsmId,
    });
    this.hooks.crashPoint('create-key-hsm');
    await this.subjects.insertPendingVersion(manager, {
      keyId: key.id,
      version: plan.toVersion,
      keyUri: info.uri,
      publicKey: info.publicKeySpki,
    });
    return {
      outcome: 'done',
      detail: { version: plan.toVersion, keyUri: info.uri, ...(adopted ? { adoptedExistingObject: true } : {}) },
    };
  }

  /** The certificate from the issuing CA's active generation (or, external CA: a CSR, then wait for the chain). */
  private async issueCertificate(
    { manager, now }: StepContext,
    key: SigningKeyEntity,
    plan: KeyRotationPlan,
  ): Promise<StepResult> {
    const version = await this.subjects.lockVersion(manager, key.id, plan.toVersion);
    if (!version) return { outcome: 'fail', error: `version ${plan.toVersion} is missing` };
    if (version.state === 'revoked')
      return { outcome: 'fail', error: `version ${plan.toVersion} was revoked before it was activated` };
    if (version.certificate)
      return { outcome: 'done', detail: { serial: version.serial, notAfter: version.notAfter?.toISOString() ?? null } };
    if (key.external) {
      if (!version.csr) {
        const signer = await this.signers.getSigner(version.keyUri);
        const csr = await createCertificationRequest({ signer, subject: key.subject, profile: 'code-signing' });
        await this.subjects.updateVersion(manager, version.id, { csr: csr.der });
      }
      return {
        outcome: 'wait',
        until: new Date(now.getTime() + this.config.rotation.retrySeconds * 1000),
        waitingFor: `the external CA's chain for version ${plan.toVersion} (GET /v1/keys/${key.name}/versions/${plan.toVersion}/csr, then POST …/certificate)`,
      };
    }
    const issued = await this.keyVersions.issueVersionCertificate(key, version.publicKey, now);
    const { certificate } = issued;
    await this.subjects.updateVersion(manager, version.id, {
      certificate: certificate.der,
      chain: issued.chain,
      serial: certificate.serialHex,
      issuerGenerationId: issued.issuerGenerationId,
      notBefore: certificate.notBefore,
      notAfter: certificate.notAfter,
    });
    await this.keyVersions.recordVersionCertificate(manager, certificate, {
      issuerGenerationId: issued.issuerGenerationId,
      keyVersionId: version.id,
    });
    return {
      outcome: 'done',
      detail: {
        serial: certificate.serialHex,
        issuerGeneration: issued.issuerGenerationName,
        notAfter: certificate.notAfter.toISOString(),
      },
    };
  }

  /**
   * One transaction swaps the versions: the active one becomes retiring (it stops signing, and is
   * never revoked for it), the new one active; the partial unique index allows no second active
   * version at any instant. Every replica's signing cache hears of it on commit.
   */
  private async activate(
    { manager, now }: StepContext,
    key: SigningKeyEntity,
    plan: KeyRotationPlan,
  ): Promise<StepResult> {
    await this.subjects.lockKey(manager, key.id);
    const next = await this.subjects.lockVersion(manager, key.id, plan.toVersion);
    if (!next) return { outcome: 'fail', error: `version ${plan.toVersion} is missing` };
    if (next.state === 'active')
      return { outcome: 'done', detail: { activeVersion: next.version, retiringVersion: null } };
    if ((next.state !== 'pending' && next.state !== 'published') || !next.certificate) {
      return {
        outcome: 'fail',
        error: `version ${plan.toVersion} is ${next.state}${next.certificate ? '' : ' without a certificate'}; it cannot be activated`,
      };
    }
    if (next.notAfter && next.notAfter.getTime() <= now.getTime())
      return { outcome: 'fail', error: `the certificate of version ${plan.toVersion} expired before activation` };
    const current = await this.subjects.lockActiveVersion(manager, key.id);
    if (current) await this.subjects.updateVersion(manager, current.id, { state: 'retiring' });
    await this.subjects.updateVersion(manager, next.id, { state: 'active', activatedAt: now });
    // Every replica's signing cache drops the key when this commits (src/signing: KEYS_CHANNEL).
    await this.notifier.notify(manager, KEYS_CHANNEL, key.name);
    return { outcome: 'done', detail: { activeVersion: next.version, retiringVersion: current?.version ?? null } };
  }

  /** After the overlap the previous version leaves `retiring` (it stopped signing at activation). */
  private async retire({ manager, rotation, now }: StepContext, key: SigningKeyEntity): Promise<StepResult> {
    const activation = rotation.steps.find((s) => s.name === 'activate')!;
    const target = (activation.detail?.retiringVersion as number | null | undefined) ?? null;
    if (target === null) return { outcome: 'skipped', reason: 'no version was active when the new one was activated' };
    const version = await this.subjects.lockVersion(manager, key.id, target);
    if (!version || version.state !== 'retiring')
      return { outcome: 'skipped', reason: `version ${target} is ${version?.state ?? 'missing'}` };
    const due = new Date(new Date(activation.finishedAt!).getTime() + key.rotation.overlapDays * DAY_MS);
    if (now.getTime() < due.getTime()) {
      return {
        outcome: 'wait',
        until: due,
        waitingFor: `the ${key.rotation.overlapDays}-day overlap (version ${target} stays listed and verifiable)`,
      };
    }
    await this.subjects.updateVersion(manager, version.id, { state: 'retired', retiredAt: now });
    await this.notifier.notify(manager, KEYS_CHANNEL, key.name);
    return { outcome: 'done', detail: { retiredVersion: target } };
  }

  /**
   * After the retention period the previous version's private key is destroyed in the HSM; its
   * certificate and chain stay. A key already gone (destroyed before a crash) counts as destroyed.
   */
  private async destroy(
    { manager, rotation, now }: StepContext,
    key: SigningKeyEntity,
    plan: KeyRotationPlan,
  ): Promise<StepResult> {
    const activation = rotation.steps.find((s) => s.name === 'activate')!;
    const target = (activation.detail?.retiringVersion as number | null | undefined) ?? plan.fromVersion;
    if (target === null) return { outcome: 'skipped', reason: 'there is no previous version' };
    const version = await this.subjects.lockVersion(manager, key.id, target);
    if (!version) return { outcome: 'skipped', reason: `version ${target} is missing` };
    if (version.destroyedAt) return { outcome: 'done', detail: { destroyedVersion: target } };
    if (version.state === 'retiring') {
      return {
        outcome: 'wait',
        until: new Date(now.getTime() + this.config.rotation.retrySeconds * 1000),
        waitingFor: `version ${target} to be retired`,
      };
    }
    if (version.state !== 'retired' && version.state !== 'revoked')
      return { outcome: 'skipped', reason: `version ${target} is ${version.state}; its key is kept` };
    const since = (version.state === 'revoked' ? version.revokedAt : version.retiredAt) ?? now;
    const due = new Date(since.getTime() + key.rotation.retentionDays * DAY_MS);
    if (now.getTime() < due.getTime()) {
      return {
        outcome: 'wait',
        until: due,
        waitingFor: `the ${key.rotation.retentionDays}-day retention before version ${target}'s private key is destroyed`,
      };
    }
    let alreadyGone = false;
    try {
      await this.hsmKeys.destroyKey(version.keyUri);
      this.hooks.crashPoint('destroy-hsm');
    } catch (error) {
      if (!(error instanceof DomainError && error.code === ErrorCode.NOT_FOUND)) throw error;
      alreadyGone = true;
    }
    await this.subjects.updateVersion(manager, version.id, {
      state: version.state === 'retired' ? 'destroyed' : version.state,
      destroyedAt: now,
    });
    return {
      outcome: 'done',
      detail: { destroyedVersion: target, keyUri: version.keyUri, ...(alreadyGone ? { alreadyGone: true } : {}) },
    };
  }
}

export function sameHsmId(keyUri: string, hsmId: string): boolean {
  try {
    return parsePkcs11Uri(keyUri).id.toString('hex') === hsmId;
  } catch {
    return false;
  }
}
