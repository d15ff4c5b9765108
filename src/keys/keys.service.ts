import { Inject, Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { AuditService } from '../audit/audit.service';
import type { AuditActor } from '../audit/audit.types';
import { CaEntity } from '../ca/ca.entity';
import { CaService } from '../ca/ca.service';
import {
  CertificateSubject,
  derToPem,
  MAX_LEAF_VALIDITY_DAYS,
  validateCertificateChain,
  validateSubject,
} from '../pki';
import { CertificateEntity } from '../ca/certificate.entity';
import { CertificatesRepository } from '../ca/certificates.repository';
import { CaRepository } from '../ca/ca.repository';
import { assertPemChainInput } from '../ca/pem-chain-input';
import { DomainError, ErrorCode } from '../common/errors';
import { isKeySpec, KEY_SPEC_INFO, KeySpec } from '../pki/key-spec';
import { SIGNET_CONFIG, SignetConfig } from '../config/config';
import { KeyVersionEntity, KeyVersionState } from './key-version.entity';
import { KeyVersionsService } from './key-versions.service';
import { KeysRepository } from './keys.repository';
import { RotationInput, validateRotation } from './rotation-policy';
import { RotationPolicy, SigningKeyEntity } from './signing-key.entity';

export interface CreateKeyInput {
  name: string;
  keySpec: KeySpec;
  subject: unknown;
  issuer?: string;
  external?: boolean;
  certificateValidityDays?: number;
  rotation?: RotationInput;
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

const KEY_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
export const DEFAULT_CERTIFICATE_VALIDITY_DAYS = 400;

/**
 * Signing keys and their versions: each version is an HSM key pair plus its code-signing
 * certificate from an issuing CA (or, in external-CA mode, a CSR until the chain is imported).
 * This is the keys API: creating a key, importing an external CA's chain, reading and presenting
 * keys. How a version is made and certified is `KeyVersionsService`'s (key-versions.service.ts),
 * shared with rotation; it is the one that touches the HSM.
 */
@Injectable()
export class KeysService {
  constructor(
    private readonly dataSource: DataSource,
    private readonly cas: CaService,
    private readonly versions: KeyVersionsService,
    private readonly audit: AuditService,
    private readonly repository: KeysRepository,
    private readonly caRepository: CaRepository,
    private readonly certificates: CertificatesRepository,
    @Inject(SIGNET_CONFIG) private readonly config: SignetConfig,
  ) {}

  async create(input: CreateKeyInput, actor?: AuditActor): Promise<KeyView> {
    const operation = 'createKey';
    if (typeof input.name !== 'string' || !KEY_NAME.test(input.name)) {
      throw new DomainError(ErrorCode.VALIDATION_ERROR, `${operation}: 'name' must match ${KEY_NAME.source}`, {
        field: 'name',
      });
    }
    if (!isKeySpec(input.keySpec)) {
      throw new DomainError(
        ErrorCode.VALIDATION_ERROR,
        `${operation}: 'keySpec' must be one of EC-256, EC-384, EC-521, RSA-2048, RSA-3072, RSA-4096`,
        { field: 'keySpec' },
      );
    }
    const subject = validateSubject(input.subject, operation);
    const validityDays = input.certificateValidityDays ?? DEFAULT_CERTIFICATE_VALIDITY_DAYS;
    if (!Number.isInteger(validityDays) || validityDays < 1 || validityDays > MAX_LEAF_VALIDITY_DAYS) {
      throw new DomainError(
        ErrorCode.VALIDATION_ERROR,
        `${operation}: 'certificateValidityDays' must be 1..${MAX_LEAF_VALIDITY_DAYS}`,
        { field: 'certificateValidityDays' },
      );
    }
    const rotation = validateRotation(input.rotation, operation, this.config.rotation.minIntervalHours);
    const requires = [...new Set(input.requires ?? [])];
    if (requires.includes(input.name))
      throw new DomainError(ErrorCode.VALIDATION_ERROR, `${operation}: a key cannot require itself`, {
        field: 'requires',
      });
    if (requires.length > 0) {
      const found = await this.repository.byNames(requires);
      const missing = requires.filter((name) => !found.some((key) => key.name === name));
      if (missing.length > 0)
        throw new DomainError(
          ErrorCode.VALIDATION_ERROR,
          `${operation}: 'requires' names unknown keys: ${missing.join(', ')}`,
          { field: 'requires', missing },
        );
    }
    const external = input.external === true;
    const issuerCa = external && !input.issuer ? null : await this.resolveIssuer(input.issuer, operation);
    if (await this.repository.nameTaken(input.name)) {
      throw new DomainError(ErrorCode.ALREADY_EXISTS, `${operation}: a key named '${input.name}' already exists`, {
        field: 'name',
      });
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
    const created = await this.versions.createKeyWithFirstVersion(key, actor);
    return this.view(created.key, [created.version]);
  }

  private async resolveIssuer(name: string | undefined, operation: string): Promise<CaEntity> {
    if (name !== undefined) {
      const ca = await this.caRepository.byName(name);
      if (!ca) throw new DomainError(ErrorCode.NOT_FOUND, `${operation}: no CA named '${name}'`, { field: 'issuer' });
      if (ca.kind !== 'issuing')
        throw new DomainError(ErrorCode.VALIDATION_ERROR, `${operation}: '${name}' is not an issuing CA`, {
          field: 'issuer',
        });
      return ca;
    }
    const issuing = await this.caRepository.ofKind('issuing');
    if (issuing.length === 1) return issuing[0];
    throw new DomainError(
      ErrorCode.VALIDATION_ERROR,
      issuing.length === 0
        ? `${operation}: there is no issuing CA yet (POST /v1/cas)`
        : `${operation}: 'issuer' is required when several issuing CAs exist`,
      { field: 'issuer' },
    );
  }

  async list(): Promise<KeyView[]> {
    const keys = await this.repository.all();
    const versions = await this.repository.allVersions();
    return Promise.all(
      keys.map((key) =>
        this.view(
          key,
          versions.filter((v) => v.keyId === key.id),
        ),
      ),
    );
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
    if (!version)
      throw new DomainError(ErrorCode.NOT_FOUND, `key '${name}' has no version ${versionNumber ?? ''}`.trim());
    return { key, version };
  }

  /** PEM chain, leaf first, root last. */
  async certificateChainPem(name: string, versionNumber?: number): Promise<string> {
    const { version } = await this.version(name, versionNumber);
    if (!version.certificate)
      throw new DomainError(
        ErrorCode.CONFLICT,
        `key '${name}' version ${version.version} has no certificate yet (external CA: import its chain)`,
      );
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
    if (!version.csr)
      throw new DomainError(
        ErrorCode.CONFLICT,
        `key '${name}' version ${versionNumber} has no CSR (its certificate comes from Signet's CA)`,
      );
    return derToPem(version.csr, 'CERTIFICATE REQUEST');
  }

  /**
   * External-CA mode: accepts the chain issued elsewhere for a pending version after validating it
   * (leaf certifies our HSM key, NOTARY.md profile, same subject as the key, chain verifies to a
   * self-signed root). The version becomes active when the key has none, else published.
   */
  async importCertificate(name: string, versionNumber: number, chain: unknown, actor?: AuditActor): Promise<KeyView> {
    const operation = 'importCertificate';
    assertPemChainInput(chain, operation, 'leaf first, root last');
    const { key, version } = await this.version(name, versionNumber);
    if (version.state !== 'pending')
      throw new DomainError(
        ErrorCode.CONFLICT,
        `${operation}: version ${versionNumber} of '${name}' is ${version.state}, not pending`,
      );
    const validated = validateCertificateChain({
      chain,
      expectedPublicKeySpki: version.publicKey,
      leafProfile: 'code-signing',
    });
    const expected = key.subject as unknown as Record<string, string | undefined>;
    const mismatch = (['C', 'ST', 'O', 'OU', 'CN'] as const).filter(
      (field) => (validated.leaf.subject[field] ?? undefined) !== (expected[field] ?? undefined),
    );
    if (mismatch.length > 0) {
      throw new DomainError(
        ErrorCode.INVALID_CERTIFICATE,
        `${operation}: the leaf subject differs from the key's subject in ${mismatch.join(', ')}`,
        { field: 'chain', mismatch },
      );
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
      await this.versions.recordVersionCertificate(
        manager,
        {
          der: leaf,
          pem: derToPem(leaf, 'CERTIFICATE'),
          serialHex: validated.leaf.serialHex,
          notBefore: validated.leaf.notBefore,
          notAfter: validated.leaf.notAfter,
          subjectDn: Object.entries(validated.leaf.subject)
            .map(([k, v]) => `${k}=${v}`)
            .join(', '),
          profile: 'code-signing',
        },
        { issuerGenerationId: null, keyVersionId: version.id },
      );
      await this.audit.record({
        type: 'key.certificate.imported',
        actor,
        subject: name,
        data: {
          version: versionNumber,
          state,
          serial: validated.leaf.serialHex,
          notAfter: validated.leaf.notAfter.toISOString(),
          rootSha256: validated.root.sha256Fingerprint,
        },
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
