import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { AuditService } from '../audit/audit.service';
import type { AuditActor } from '../audit/audit.types';
import { CaEntity } from '../ca/ca.entity';
import { CaRepository } from '../ca/ca.repository';
import { DomainError, ErrorCode } from '../common/errors';
import { BUNDLE_FORMATS, BundleFormat } from './bundle-formats';
import { TruststoreEntity } from './truststore.entity';
import { TruststoreRepository } from './truststore.repository';
import { TruststoreVersionEntity, VersionReason } from './truststore-version.entity';
import {
  CertificateEntry,
  CrlEntry,
  parseCanonical,
  DEFAULT_NAMESPACE_SELECTOR,
  TRUSTSTORE_NAME,
  TrustManagerSettings,
  TrustPolicySettings,
  validateTrustManagerSettings,
  validateTrustPolicySettings,
} from './truststore-content';
import { TruststoreVersionsService } from './truststore-versions.service';

export interface CreateTruststoreInput {
  name: string;
  cas: unknown;
  trustPolicy?: unknown;
  trustManager?: unknown;
}

export interface UpdateTruststoreInput {
  cas?: unknown;
  trustPolicy?: unknown;
  /** null restores the defaults. */
  trustManager?: unknown;
}

export interface TruststoreView {
  name: string;
  cas: string[];
  trustPolicy: TrustPolicySettings;
  /** The trust-manager settings in effect (the defaults when none were set). */
  trustManager: TrustManagerSettings;
  version: number;
  digest: string;
  /** When the current version was built. */
  versionCreatedAt: string;
  reason: VersionReason;
  roots: Array<Omit<CertificateEntry, 'der'>>;
  tsaRoots: Array<Omit<CertificateEntry, 'der'>>;
  crls: Array<Omit<CrlEntry, 'der'>>;
  trustedIdentities: string[];
  formats: readonly BundleFormat[];
  createdAt: string;
}

/**
 * Truststores: a named set of root CAs, versioned by content. Creating and updating one validates
 * its settings and stores them with the version they lead to (TruststoreVersionsService decides
 * what a version holds and whether the content changed); TruststoreBundlesService renders versions.
 */
@Injectable()
export class TruststoreService {
  constructor(
    private readonly dataSource: DataSource,
    private readonly repository: TruststoreRepository,
    private readonly audit: AuditService,
    private readonly cas: CaRepository,
    private readonly versions: TruststoreVersionsService,
  ) {}

  async create(input: CreateTruststoreInput, actor?: AuditActor, now = new Date()): Promise<TruststoreView> {
    const operation = 'createTruststore';
    if (typeof input.name !== 'string' || !TRUSTSTORE_NAME.test(input.name)) {
      throw new DomainError(
        ErrorCode.VALIDATION_ERROR,
        `${operation}: 'name' must be a DNS label (${TRUSTSTORE_NAME.source}); it names the Notation trust store`,
        { field: 'name' },
      );
    }
    const cas = await this.resolveRoots(input.cas, operation);
    const trustPolicy = validateTrustPolicySettings(input.trustPolicy, operation);
    const trustManager = validateTrustManagerSettings(input.trustManager, operation) ?? null;
    if (await this.repository.nameTaken(input.name)) {
      throw new DomainError(
        ErrorCode.ALREADY_EXISTS,
        `${operation}: a truststore named '${input.name}' already exists`,
        { field: 'name' },
      );
    }
    await this.versions.prepare(cas.map((ca) => ca.id));
    await this.dataSource.transaction(async (manager) => {
      const truststore = await this.repository.insert(manager, {
        name: input.name,
        caIds: cas.map((ca) => ca.id),
        trustPolicy,
        trustManager,
        currentVersion: 0,
        currentDigest: null,
      });
      await this.audit.record({
        type: 'truststore.created',
        actor,
        subject: input.name,
        data: {
          cas: cas.map((ca) => ca.name),
          trustPolicy: { ...trustPolicy },
          ...(trustManager ? { trustManager: { ...trustManager } } : {}),
        },
      });
      await this.versions.buildVersion(manager, truststore, 'created', now, actor);
    });
    return this.get(input.name);
  }

  async update(
    name: string,
    input: UpdateTruststoreInput,
    actor?: AuditActor,
    now = new Date(),
  ): Promise<TruststoreView> {
    const operation = 'updateTruststore';
    const existing = await this.byName(name);
    const cas = input.cas === undefined ? undefined : await this.resolveRoots(input.cas, operation);
    const trustPolicy =
      input.trustPolicy === undefined ? undefined : validateTrustPolicySettings(input.trustPolicy, operation);
    // undefined: unchanged; null: back to the defaults.
    const trustManager =
      input.trustManager === undefined
        ? undefined
        : (validateTrustManagerSettings(input.trustManager, operation) ?? null);
    await this.versions.prepare(cas?.map((ca) => ca.id) ?? existing.caIds);
    await this.dataSource.transaction(async (manager) => {
      const truststore = await this.repository.lockForNewVersion(manager, existing.id);
      if (!truststore) throw new DomainError(ErrorCode.NOT_FOUND, `no truststore named '${name}'`);
      if (cas) truststore.caIds = cas.map((ca) => ca.id);
      if (trustPolicy) truststore.trustPolicy = trustPolicy;
      if (trustManager !== undefined) truststore.trustManager = trustManager;
      await this.repository.updateSettings(manager, truststore.id, {
        caIds: truststore.caIds,
        trustPolicy: truststore.trustPolicy,
        trustManager: truststore.trustManager,
      });
      await this.audit.record({
        type: 'truststore.updated',
        actor,
        subject: name,
        data: {
          ...(cas ? { cas: cas.map((ca) => ca.name) } : {}),
          ...(trustPolicy ? { trustPolicy: { ...trustPolicy } } : {}),
          ...(trustManager !== undefined ? { trustManager: trustManager ? { ...trustManager } : null } : {}),
        },
      });
      await this.versions.buildVersion(manager, truststore, 'updated', now, actor);
    });
    return this.get(name);
  }

  async list(): Promise<TruststoreView[]> {
    const truststores = await this.repository.all();
    return Promise.all(truststores.map((t) => this.view(t)));
  }

  async get(name: string): Promise<TruststoreView> {
    return this.view(await this.byName(name));
  }

  async byName(name: string): Promise<TruststoreEntity> {
    const truststore = typeof name === 'string' ? await this.repository.byName(name) : null;
    if (!truststore) throw new DomainError(ErrorCode.NOT_FOUND, `no truststore named '${name}'`);
    return truststore;
  }

  async byId(id: string): Promise<TruststoreEntity> {
    const truststore = await this.repository.byId(id);
    if (!truststore) throw new DomainError(ErrorCode.NOT_FOUND, `no truststore with id ${id}`);
    return truststore;
  }

  async versionOf(truststoreId: string, version?: number): Promise<TruststoreVersionEntity> {
    const truststore = await this.byId(truststoreId);
    const wanted = version ?? truststore.currentVersion;
    const row = await this.repository.version(truststoreId, wanted);
    if (!row) throw new DomainError(ErrorCode.NOT_FOUND, `truststore '${truststore.name}' has no version ${wanted}`);
    return row;
  }

  private async resolveRoots(input: unknown, operation: string): Promise<CaEntity[]> {
    if (!Array.isArray(input) || input.length === 0 || input.length > 32 || input.some((n) => typeof n !== 'string')) {
      throw new DomainError(
        ErrorCode.VALIDATION_ERROR,
        `${operation}: 'cas' must be a non-empty list of root CA names`,
        { field: 'cas' },
      );
    }
    const names = [...new Set(input as string[])];
    const cas = await this.cas.byNames(names);
    for (const name of names) {
      const ca = cas.find((c) => c.name === name);
      if (!ca) throw new DomainError(ErrorCode.NOT_FOUND, `${operation}: no CA named '${name}'`, { field: 'cas' });
      if (ca.kind !== 'root') {
        throw new DomainError(
          ErrorCode.VALIDATION_ERROR,
          `${operation}: '${name}' is a ${ca.kind} CA; truststores hold root CAs only (a CA-issued certificate is never a Notation trust anchor)${ca.kind === 'tsa-root' ? ', and TSA roots are included automatically' : ''}`,
          { field: 'cas' },
        );
      }
    }
    return names.map((name) => cas.find((c) => c.name === name)!);
  }

  private async view(truststore: TruststoreEntity): Promise<TruststoreView> {
    const row = await this.repository.version(truststore.id, truststore.currentVersion);
    if (!row) throw new DomainError(ErrorCode.CONFLICT, `truststore '${truststore.name}' has no version yet`);
    const content = parseCanonical(row.canonical, row.digest);
    const cas = await this.cas.byIds(truststore.caIds);
    const strip = <T extends { der: string }>({ der: _der, ...rest }: T) => rest;
    return {
      name: truststore.name,
      cas: truststore.caIds.map((id) => cas.find((c) => c.id === id)?.name ?? id),
      trustPolicy: truststore.trustPolicy,
      trustManager: truststore.trustManager ?? { namespaceSelector: DEFAULT_NAMESPACE_SELECTOR },
      version: row.version,
      digest: row.digest,
      versionCreatedAt: row.createdAt.toISOString(),
      reason: row.reason,
      roots: content.roots.map(strip),
      tsaRoots: content.tsaRoots.map(strip),
      crls: content.crls.map(strip),
      trustedIdentities: content.trustedIdentities,
      formats: BUNDLE_FORMATS,
      createdAt: truststore.createdAt.toISOString(),
    };
  }
}
