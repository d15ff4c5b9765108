import { Inject, Injectable, Logger } from '@nestjs/common';
import { CronExpressionParser } from 'cron-parser';
import { DataSource, EntityManager } from 'typeorm';
import { AuditService } from '../audit/audit.service';
import type { AuditActor } from '../audit/audit.types';
import { CaEntity } from '../ca/ca.entity';
import { CaService } from '../ca/ca.service';
import { IssuedCertificate, issueCodeSigningCertificate, MAX_LEAF_VALIDITY_DAYS } from '../pki/certificate-issuer';
import { CertificateEntity } from '../ca/certificate.entity';
import { CertificatesRepository } from '../ca/certificates.repository';
import { CaRepository } from '../ca/ca.repository';
import { createCertificationRequest } from '../pki/certification-request';
import { validateCertificateChain } from '../pki/certificate-chain-validator';
import { derToPem } from '../pki/pem-codec';
import { CertificateSubject, validateSubject } from '../pki/subject-name';
import { DomainEventBus } from '../common/domain-events';
import { DomainError, ErrorCode } from '../common/errors';
import { isKeySpec, KEY_SPEC_INFO, KeySpec } from '../pki/key-spec';
import { SIGNET_CONFIG, SignetConfig } from '../config/config';
import { KEY_STORE, KeyStore } from '../hsm/key-store';
import { cronOf, shortestInterval } from './rotation-schedule';
import { KeyVersionEntity, KeyVersionState } from './key-version.entity';
import { KeysRepository } from './keys.repository';
import { RotationPolicy, SigningKeyEntity } from './signing-key.entity';

export interface CreateKeyInput {
  name: string;
  keySpec: KeySpec;
  subject: unknown;
  issuer?: string;
  external?: boolean;
  certificateValidityDays?: number;
  rotation?: { schedule?: string; overlapDays?: number; retentionDays?: number };
  requires?: string[];
}

export interface KeyVersionView {
  version: number;
  state: KeyVersionState;
  keySpec: KeySpec;
  serial: string | null;
  notBefore: string | null;
  notAfter: string | null;
  issuerGeneration: string | null;
  createdAt: string;
  activatedAt: string | null;
  retiredAt: string | null;
  destroyedAt: string | null;
  revokedAt: string | null;
}

export interface KeyView {
  name: string;
  keySpec: KeySpec;
  signingAlgorithm: string;
  subject: CertificateSubject;
  issuer: string | null;
  external: boolean;
  certificateValidityDays: number;
  rotation: RotationPolicy;
  requires: string[];
  createdAt: string;
  activeVersion: number | null;
  versions: KeyVersionView[];
}

/** Key events, published inside the transaction that stores the version (a failing subscriber rolls it back). */
declare module '../common/domain-events' {
  interface DomainEvents {
    'key.created': { key: SigningKeyEntity; version: KeyVersionEntity; manager: EntityManager };
    'key.version.created': { key: SigningKeyEntity; version: KeyVersionEntity; manager: EntityManager };
  }
}

const KEY_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
export const DEFAULT_CERTIFICATE_VALIDITY_DAYS = 400;
export const DEFAULT_ROTATION: RotationPolicy = { schedule: 'quarterly', overlapDays: 14, retentionDays: 90 };
const DAY_MS = 86_400_000;

/**
 * Signing keys and their versions: each version is an HSM key pair plus its code-signing
 * certificate from an issuing CA (or, in external-CA mode, a CSR until the chain is imported).
 */
@Injectable()
export class KeysService {
  private readonly logger = new Logger(KeysService.name);

  constructor(
    private readonly dataSource: DataSource,
    private readonly cas: CaService,
    @Inject(KEY_STORE) private readonly keyStore: KeyStore,
    private readonly audit: AuditService,
    private readonly repository: KeysRepository,
    private readonly caRepository: CaRepository,
    private readonly certificates: CertificatesRepository,
    @Inject(SIGNET_CONFIG) private readonly config: SignetConfig,
    private readonly events: DomainEventBus,
  ) {}

  async create(input: CreateKeyInput, actor?: AuditActor): Promise<KeyView> {
    const operation = 'createKey';
    if (typeof input.name !== 'string' || !KEY_NAME.test(input.name)) {
      throw new DomainError(ErrorCode.VALIDATION_ERROR, `${operation}: 'name' must match ${KEY_NAME.source}`, { field: 'name' });
    }
    if (!isKeySpec(input.keySpec)) {
      throw new DomainError(ErrorCode.VALIDATION_ERROR, `${operation}: 'keySpec' must be one of EC-256, EC-384, EC-521, RSA-2048, RSA-3072, RSA-4096`, { field: 'keySpec' });
    }
    const subject = validateSubject(input.subject, operation);
    const validityDays = input.certificateValidityDays ?? DEFAULT_CERTIFICATE_VALIDITY_DAYS;
    if (!Number.isInteger(validityDays) || validityDays < 1 || validityDays > MAX_LEAF_VALIDITY_DAYS) {
      throw new DomainError(ErrorCode.VALIDATION_ERROR, `${operation}: 'certificateValidityDays' must be 1..${MAX_LEAF_VALIDITY_DAYS}`, { field: 'certificateValidityDays' });
    }
    const rotation = validateRotation(input.rotation, operation, this.config.rotation.minIntervalHours);
    const requires = [...new Set(input.requires ?? [])];
    if (requires.includes(input.name)) throw new DomainError(ErrorCode.VALIDATION_ERROR, `${operation}: a key cannot require itself`, { field: 'requires' });
    if (requires.length > 0) {
      const found = await this.repository.byNames(requires);
      const missing = requires.filter((name) => !found.some((key) => key.name === name));
      if (missing.length > 0) throw new DomainError(ErrorCode.VALIDATION_ERROR, `${operation}: 'requires' names unknown keys: ${missing.join(', ')}`, { field: 'requires', missing });
    }
    const external = input.external === true;
    const issuerCa = external && !input.issuer ? null : await this.resolveIssuer(input.issuer, operation);
    if (await this.repository.nameTaken(input.name)) {
      throw new DomainError(ErrorCode.ALREADY_EXISTS, `${operation}: a key named '${input.name}' already exists`, { field: 'name' });
    }

    const key = this.repository.newKey({
      name: input.name,
      keySpec: input.keySpec,
      subject,
      issuerCaId: issuerCa?.id ?? null,
      external,
      certificateValidityDays: validityDays,
      rotation,
      requires,
    });
    const created = await this.createVersion(key, 1, { isNewKey: true, actor });
    return this.view(created.key, [created.version]);
  }

  /**
   * A new version: HSM key pair, then (Signet's CA) its certificate or (external CA) a CSR, stored
   * in one transaction. `activate` makes it the active version at once (first version, or the
   * caller swaps states itself, e.g. rotation). A failure destroys the new HSM key again.
   */
  async createVersion(
    key: SigningKeyEntity,
    versionNumber: number,
    options: { isNewKey?: boolean; state?: KeyVersionState; now?: Date; manager?: EntityManager; actor?: AuditActor; reason?: string } = {},
  ): Promise<{ key: SigningKeyEntity; version: KeyVersionEntity }> {
    const hsmKey = await this.keyStore.createKey({ spec: key.keySpec, label: `${key.name}-v${versionNumber}`, role: 'signing' });
    try {
      const now = options.now ?? new Date();
      let certificate: IssuedCertificate | undefined;
      let csr: Buffer | null = null;
      let chain: Buffer[] = [];
      let issuerGenerationId: string | null = null;
      if (key.external) {
        const signer = await this.keyStore.getSigner(hsmKey.uri);
        csr = (await createCertificationRequest({ signer, subject: key.subject, profile: 'code-signing' })).der;
      } else {
        ({ certificate, chain, issuerGenerationId } = await this.issueVersionCertificate(key, hsmKey.publicKeySpki, now));
      }
      const state: KeyVersionState = options.state ?? (key.external ? 'pending' : 'active');
      const work = async (manager: EntityManager) => {
        const savedKey = options.isNewKey ? await this.repository.insertKey(manager, key) : key;
        const version = await this.repository.insertVersion(manager, {
          keyId: savedKey.id,
          version: versionNumber,
          state,
          keyUri: hsmKey.uri,
          publicKey: hsmKey.publicKeySpki,
          certificate: certificate?.der ?? null,
          csr,
          chain,
          serial: certificate?.serialHex ?? null,
          issuerGenerationId,
          notBefore: certificate?.notBefore ?? null,
          notAfter: certificate?.notAfter ?? null,
          activatedAt: state === 'active' ? now : null,
          retiredAt: null,
          destroyedAt: null,
          revokedAt: null,
        });
        if (certificate) await this.recordVersionCertificate(manager, certificate, { issuerGenerationId, keyVersionId: version.id });
        await this.audit.record({
          type: options.isNewKey ? 'key.created' : 'key.version.created',
          actor: options.actor,
          subject: key.name,
          data: {
            version: versionNumber,
            state,
            keySpec: key.keySpec,
            keyUri: hsmKey.uri,
            serial: certificate?.serialHex ?? null,
            subject: certificate?.subjectDn ?? null,
            notAfter: certificate?.notAfter.toISOString() ?? null,
            external: key.external,
            ...(options.isNewKey ? { requires: key.requires, rotation: key.rotation } : {}),
            ...(options.reason ? { reason: options.reason } : {}),
          },
        });
        if (options.isNewKey) await this.events.publish('key.created', { key: savedKey, version, manager });
        else await this.events.publish('key.version.created', { key: savedKey, version, manager });
        return { key: savedKey, version };
      };
      const result = options.manager ? await work(options.manager) : await this.dataSource.transaction(work);
      this.logger.log(`key ${key.name}: version ${versionNumber} created (${state})`);
      return result;
    } catch (error) {
      await this.keyStore.destroyKey(hsmKey.uri).catch((e) => this.logger.error(`could not destroy orphan key ${hsmKey.uri}: ${(e as Error).message}`));
      throw error;
    }
  }

  /**
   * The code-signing certificate for a version's public key from the key's issuing CA's active
   * generation, never outliving that generation. Pure issuance: nothing is stored (a caller that
   * crashes before storing it simply issues again).
   */
  async issueVersionCertificate(
    key: SigningKeyEntity,
    publicKeySpki: Buffer,
    now: Date,
  ): Promise<{ certificate: IssuedCertificate; chain: Buffer[]; issuerGenerationId: string; issuerGenerationName: string }> {
    if (!key.issuerCaId) throw new DomainError(ErrorCode.CONFLICT, `key '${key.name}' has no issuing CA in Signet (external-CA mode)`);
    const generation = await this.cas.activeGeneration(key.issuerCaId);
    const issuer = await this.cas.issuerFor(generation);
    // Never outlive the issuer: an expiring CA breaks every untimestamped signature below it.
    const remainingDays = Math.floor((issuer.notAfter.getTime() - now.getTime()) / DAY_MS);
    const validityDays = Math.min(key.certificateValidityDays, remainingDays);
    if (validityDays < 1) throw new DomainError(ErrorCode.CONFLICT, `the issuing CA generation ${generation.name} expires too soon to issue`, { issuerGeneration: generation.name });
    const certificate = await issueCodeSigningCertificate({ issuer, subject: key.subject, publicKeySpki, validityDays, now });
    return { certificate, chain: [issuer.certificate, ...generation.chain], issuerGenerationId: generation.id, issuerGenerationName: generation.name };
  }

  /** Stores a version's certificate row (the source of CRL and OCSP answers) and tells the CA's observers. */
  async recordVersionCertificate(
    manager: EntityManager,
    certificate: IssuedCertificate,
    links: { issuerGenerationId: string | null; keyVersionId: string },
  ): Promise<CertificateEntity> {
    const row = await this.cas.recordCertificate(manager, certificate, links);
    await this.cas.notifyCertificateIssued(row, manager);
    return row;
  }

  private async resolveIssuer(name: string | undefined, operation: string): Promise<CaEntity> {
    if (name !== undefined) {
      const ca = await this.caRepository.byName(name);
      if (!ca) throw new DomainError(ErrorCode.NOT_FOUND, `${operation}: no CA named '${name}'`, { field: 'issuer' });
      if (ca.kind !== 'issuing') throw new DomainError(ErrorCode.VALIDATION_ERROR, `${operation}: '${name}' is not an issuing CA`, { field: 'issuer' });
      return ca;
    }
    const issuing = await this.caRepository.ofKind('issuing');
    if (issuing.length === 1) return issuing[0];
    throw new DomainError(
      ErrorCode.VALIDATION_ERROR,
      issuing.length === 0 ? `${operation}: there is no issuing CA yet (POST /v1/cas)` : `${operation}: 'issuer' is required when several issuing CAs exist`,
      { field: 'issuer' },
    );
  }

  async list(): Promise<KeyView[]> {
    const keys = await this.repository.all();
    const versions = await this.repository.allVersions();
    return Promise.all(keys.map((key) => this.view(key, versions.filter((v) => v.keyId === key.id))));
  }

  async get(name: string): Promise<KeyView> {
    const key = await this.byName(name);
    return this.view(key, await this.versionsOf(key.id));
  }

  async byName(name: string): Promise<SigningKeyEntity> {
    const key = typeof name === 'string' ? await this.repository.byName(name) : null;
    if (!key) throw new DomainError(ErrorCode.NOT_FOUND, `no key named '${name}'`);
    return key;
  }

  versionsOf(keyId: string): Promise<KeyVersionEntity[]> {
    return this.repository.versionsOf(keyId);
  }

  async version(name: string, versionNumber?: number): Promise<{ key: SigningKeyEntity; version: KeyVersionEntity }> {
    const key = await this.byName(name);
    const version =
      versionNumber === undefined
        ? ((await this.repository.activeVersion(key.id)) ?? (await this.repository.latestVersion(key.id)))
        : await this.repository.versionByNumber(key.id, versionNumber);
    if (!version) throw new DomainError(ErrorCode.NOT_FOUND, `key '${name}' has no version ${versionNumber ?? ''}`.trim());
    return { key, version };
  }

  /** PEM chain, leaf first, root last. */
  async certificateChainPem(name: string, versionNumber?: number): Promise<string> {
    const { version } = await this.version(name, versionNumber);
    if (!version.certificate) throw new DomainError(ErrorCode.CONFLICT, `key '${name}' version ${version.version} has no certificate yet (external CA: import its chain)`);
    return [version.certificate, ...version.chain].map((der) => derToPem(der, 'CERTIFICATE')).join('');
  }

  async view(key: SigningKeyEntity, versions: KeyVersionEntity[]): Promise<KeyView> {
    const issuer = key.issuerCaId ? (await this.cas.byId(key.issuerCaId)).name : null;
    const generationNames = new Map<string, string>();
    for (const id of new Set(versions.map((v) => v.issuerGenerationId).filter((x): x is string => !!x))) {
      generationNames.set(id, (await this.cas.generationById(id)).name);
    }
    return {
      name: key.name,
      keySpec: key.keySpec,
      signingAlgorithm: KEY_SPEC_INFO[key.keySpec].signingAlgorithm,
      subject: key.subject,
      issuer,
      external: key.external,
      certificateValidityDays: key.certificateValidityDays,
      rotation: key.rotation,
      requires: key.requires,
      createdAt: key.createdAt.toISOString(),
      activeVersion: versions.find((v) => v.state === 'active')?.version ?? null,
      versions: versions.map((v) => ({
        version: v.version,
        state: v.state,
        keySpec: key.keySpec,
        serial: v.serial,
        notBefore: v.notBefore?.toISOString() ?? null,
        notAfter: v.notAfter?.toISOString() ?? null,
        issuerGeneration: v.issuerGenerationId ? (generationNames.get(v.issuerGenerationId) ?? null) : null,
        createdAt: v.createdAt.toISOString(),
        activatedAt: v.activatedAt?.toISOString() ?? null,
        retiredAt: v.retiredAt?.toISOString() ?? null,
        destroyedAt: v.destroyedAt?.toISOString() ?? null,
        revokedAt: v.revokedAt?.toISOString() ?? null,
      })),
    };
  }

  /** External-CA mode: the CSR of a pending version (PEM). */
  async csrPem(name: string, versionNumber: number): Promise<string> {
    const { version } = await this.version(name, versionNumber);
    if (!version.csr) throw new DomainError(ErrorCode.CONFLICT, `key '${name}' version ${versionNumber} has no CSR (its certificate comes from Signet's CA)`);
    return derToPem(version.csr, 'CERTIFICATE REQUEST');
  }

  /**
   * External-CA mode: accepts the chain issued elsewhere for a pending version after validating it
   * (leaf certifies our HSM key, NOTARY.md profile, same subject as the key, chain verifies to a
   * self-signed root). The version becomes active when the key has none, else published.
   */
  async importCertificate(name: string, versionNumber: number, chain: unknown, actor?: AuditActor): Promise<KeyView> {
    const operation = 'importCertificate';
    if (!Array.isArray(chain) || chain.length < 2 || chain.length > 8 || !chain.every((pem) => typeof pem === 'string' && pem.length < 65536)) {
      throw new DomainError(ErrorCode.VALIDATION_ERROR, `${operation}: 'chain' must be 2..8 PEM certificates, leaf first, root last`, { field: 'chain' });
    }
    const { key, version } = await this.version(name, versionNumber);
    if (version.state !== 'pending') throw new DomainError(ErrorCode.CONFLICT, `${operation}: version ${versionNumber} of '${name}' is ${version.state}, not pending`);
    const validated = validateCertificateChain({ chain: chain as string[], expectedPublicKeySpki: version.publicKey, leafProfile: 'code-signing' });
    const expected = key.subject as unknown as Record<string, string | undefined>;
    const mismatch = (['C', 'ST', 'O', 'OU', 'CN'] as const).filter((field) => (validated.leaf.subject[field] ?? undefined) !== (expected[field] ?? undefined));
    if (mismatch.length > 0) {
      throw new DomainError(ErrorCode.INVALID_CERTIFICATE, `${operation}: the leaf subject differs from the key's subject in ${mismatch.join(', ')}`, { field: 'chain', mismatch });
    }
    await this.dataSource.transaction(async (manager) => {
      const active = await this.repository.activeVersion(key.id, manager);
      const now = new Date();
      const state: KeyVersionState = active ? 'published' : 'active';
      const [leaf, ...above] = validated.certificates;
      await this.repository.storeImportedCertificate(manager, version.id, {
        state,
        certificate: leaf,
        chain: above,
        serial: validated.leaf.serialHex,
        notBefore: validated.leaf.notBefore,
        notAfter: validated.leaf.notAfter,
        activatedAt: state === 'active' ? now : null,
      });
      const row = await this.cas.recordCertificate(
        manager,
        {
          der: leaf,
          pem: derToPem(leaf, 'CERTIFICATE'),
          serialHex: validated.leaf.serialHex,
          notBefore: validated.leaf.notBefore,
          notAfter: validated.leaf.notAfter,
          subjectDn: Object.entries(validated.leaf.subject).map(([k, v]) => `${k}=${v}`).join(', '),
          profile: 'code-signing',
        },
        { issuerGenerationId: null, keyVersionId: version.id },
      );
      await this.cas.notifyCertificateIssued(row, manager);
      await this.audit.record({
        type: 'key.certificate.imported',
        actor,
        subject: name,
        data: { version: versionNumber, state, serial: validated.leaf.serialHex, notAfter: validated.leaf.notAfter.toISOString(), rootSha256: validated.root.sha256Fingerprint },
      });
    });
    return this.get(name);
  }

  /** Certificates of a key (GET /v1/certificates?key=). */
  async certificatesOf(name: string): Promise<CertificateEntity[]> {
    const key = await this.byName(name);
    const versions = await this.versionsOf(key.id);
    if (versions.length === 0) return [];
    return this.certificates.ofKeyVersions(versions.map((v) => v.id));
  }
}

/**
 * A rotation policy from the API (key creation; any route that changes a policy must call this
 * too). A schedule firing more often than SIGNET_ROTATION_MIN_INTERVAL_HOURS is refused: each
 * rotation is a new HSM key pair and certificate, so a caller-chosen schedule must not become an
 * amplifier (`* * * * * *` would mint one every second).
 */
export function validateRotation(input: CreateKeyInput['rotation'], operation: string, minIntervalHours: number, now = new Date()): RotationPolicy {
  if (input !== undefined && (typeof input !== 'object' || input === null || Array.isArray(input))) {
    throw new DomainError(ErrorCode.VALIDATION_ERROR, `${operation}: 'rotation' must be an object`, { field: 'rotation' });
  }
  const unknown = Object.keys(input ?? {}).filter((k) => !['schedule', 'overlapDays', 'retentionDays'].includes(k));
  if (unknown.length > 0) throw new DomainError(ErrorCode.VALIDATION_ERROR, `${operation}: 'rotation' has unknown fields: ${unknown.join(', ')}`, { field: 'rotation' });
  const policy: RotationPolicy = {
    schedule: input?.schedule ?? DEFAULT_ROTATION.schedule,
    overlapDays: input?.overlapDays ?? DEFAULT_ROTATION.overlapDays,
    retentionDays: input?.retentionDays ?? DEFAULT_ROTATION.retentionDays,
  };
  if (typeof policy.schedule !== 'string' || (policy.schedule !== 'quarterly' && !isCron(policy.schedule))) {
    throw new DomainError(ErrorCode.VALIDATION_ERROR, `${operation}: 'rotation.schedule' must be "quarterly" or a cron expression`, { field: 'rotation.schedule' });
  }
  const floorMs = minIntervalHours * 3_600_000;
  const shortestMs = shortestInterval(policy.schedule, now, floorMs);
  if (shortestMs < floorMs) {
    throw new DomainError(
      ErrorCode.ROTATION_TOO_FREQUENT,
      `${operation}: 'rotation.schedule' fires ${describeGap(shortestMs)} apart at its closest; rotations must be at least ${minIntervalHours} h apart (SIGNET_ROTATION_MIN_INTERVAL_HOURS)`,
      { field: 'rotation.schedule', schedule: cronOf(policy.schedule), shortestIntervalSeconds: Math.round(shortestMs / 1000), minIntervalHours },
    );
  }
  for (const field of ['overlapDays', 'retentionDays'] as const) {
    const value = policy[field];
    if (!Number.isInteger(value) || value < 0 || value > 3650) {
      throw new DomainError(ErrorCode.VALIDATION_ERROR, `${operation}: 'rotation.${field}' must be a whole number of days (0..3650)`, { field: `rotation.${field}` });
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
