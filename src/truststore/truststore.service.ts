import { Injectable, Logger } from '@nestjs/common';
import { DataSource, EntityManager } from 'typeorm';
import { AuditService } from '../audit/audit.service';
import type { AuditActor } from '../audit/audit.types';
import { CaEntity } from '../ca/ca.entity';
import { CaRepository } from '../ca/ca.repository';
import { CertificatesRepository } from '../ca/certificates.repository';
import { CaGenerationEntity } from '../ca/ca-generation.entity';
import { notationTrustedIdentity } from '../pki/subject-name';
import { DomainEventBus } from '../common/domain-events';
import { DomainError, ErrorCode } from '../common/errors';
import { KeysRepository } from '../keys/keys.repository';
import { BUNDLE_FORMATS, BundleFormat, isBundleFormat, LayerKind, LAYERS, LayerSpec, renderLayer, VersionInfo } from './bundle-formats';
import { TruststoreEntity } from './truststore.entity';
import { TruststoreRepository } from './truststore.repository';
import { TruststoreVersionEntity, VersionReason } from './truststore-version.entity';
import {
  canonicalize,
  certificateEntry,
  CertificateEntry,
  contentDigest,
  CrlEntry,
  parseCanonical,
  DEFAULT_NAMESPACE_SELECTOR,
  TRUSTSTORE_NAME,
  TrustManagerSettings,
  TrustPolicySettings,
  TruststoreContent,
  validateTrustManagerSettings,
  validateTrustPolicySettings,
} from './truststore-content';

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

export interface RenderedBundle {
  truststore: string;
  version: number;
  digest: string;
  createdAt: string;
  layers: Array<{ kind: LayerKind; spec: LayerSpec; content: Buffer }>;
}

declare module '../common/domain-events' {
  interface DomainEvents {
    /** Inside the transaction that stores the version (a failing subscriber rolls it back). */
    'truststore.version.created': { truststore: TruststoreEntity; version: TruststoreVersionEntity; manager: EntityManager };
  }
}

/** Runs before content is collected, for the CA generations it will draw on (e.g. build missing CRLs). */
export type ContentPreparer = (generations: CaGenerationEntity[]) => Promise<void>;

const RENDER_CACHE_SIZE = 32;

/**
 * Truststores: a named set of root CAs, versioned by content. A version holds every usable key
 * generation of the selected roots (expired ones drop out; a retired one stays while unexpired leaves
 * remain under it, so old and new roots coexist through a rollover), the current CRLs of those
 * generations and of the CA generations beneath them, the TSA roots, and the Notation trusted
 * identities of the keys issued under the roots. `rebuild` stores a new version only when the
 * canonical content's digest changes; replicas serialise on the truststore row.
 */
@Injectable()
export class TruststoreService {
  private readonly logger = new Logger(TruststoreService.name);
  private readonly preparers: ContentPreparer[] = [];
  private readonly rendered = new Map<string, Promise<RenderedBundle>>();

  constructor(
    private readonly dataSource: DataSource,
    private readonly repository: TruststoreRepository,
    private readonly keys: KeysRepository,
    private readonly certificates: CertificatesRepository,
    private readonly audit: AuditService,
    private readonly cas: CaRepository,
    private readonly events: DomainEventBus,
  ) {}

  /** Wired in src/domain-events.wiring.ts (distribution builds missing CRLs). */
  addPreparer(preparer: ContentPreparer): void {
    this.preparers.push(preparer);
  }

  async create(input: CreateTruststoreInput, actor?: AuditActor, now = new Date()): Promise<TruststoreView> {
    const operation = 'createTruststore';
    if (typeof input.name !== 'string' || !TRUSTSTORE_NAME.test(input.name)) {
      throw new DomainError(ErrorCode.VALIDATION_ERROR, `${operation}: 'name' must be a DNS label (${TRUSTSTORE_NAME.source}); it names the Notation trust store`, { field: 'name' });
    }
    const cas = await this.resolveRoots(input.cas, operation);
    const trustPolicy = validateTrustPolicySettings(input.trustPolicy, operation);
    const trustManager = validateTrustManagerSettings(input.trustManager, operation) ?? null;
    if (await this.repository.nameTaken(input.name)) {
      throw new DomainError(ErrorCode.ALREADY_EXISTS, `${operation}: a truststore named '${input.name}' already exists`, { field: 'name' });
    }
    await this.prepare(cas.map((ca) => ca.id));
    await this.dataSource.transaction(async (manager) => {
      const truststore = await this.repository.insert(manager, { name: input.name, caIds: cas.map((ca) => ca.id), trustPolicy, trustManager, currentVersion: 0, currentDigest: null });
      await this.audit.record({ type: 'truststore.created', actor, subject: input.name, data: { cas: cas.map((ca) => ca.name), trustPolicy: { ...trustPolicy }, ...(trustManager ? { trustManager: { ...trustManager } } : {}) } });
      await this.buildVersion(manager, truststore, 'created', now, actor);
    });
    return this.get(input.name);
  }

  async update(name: string, input: UpdateTruststoreInput, actor?: AuditActor, now = new Date()): Promise<TruststoreView> {
    const operation = 'updateTruststore';
    const existing = await this.byName(name);
    const cas = input.cas === undefined ? undefined : await this.resolveRoots(input.cas, operation);
    const trustPolicy = input.trustPolicy === undefined ? undefined : validateTrustPolicySettings(input.trustPolicy, operation);
    // undefined: unchanged; null: back to the defaults.
    const trustManager = input.trustManager === undefined ? undefined : (validateTrustManagerSettings(input.trustManager, operation) ?? null);
    await this.prepare(cas?.map((ca) => ca.id) ?? existing.caIds);
    await this.dataSource.transaction(async (manager) => {
      const truststore = await this.repository.lockForNewVersion(manager, existing.id);
      if (!truststore) throw new DomainError(ErrorCode.NOT_FOUND, `no truststore named '${name}'`);
      if (cas) truststore.caIds = cas.map((ca) => ca.id);
      if (trustPolicy) truststore.trustPolicy = trustPolicy;
      if (trustManager !== undefined) truststore.trustManager = trustManager;
      await this.repository.updateSettings(manager, truststore.id, { caIds: truststore.caIds, trustPolicy: truststore.trustPolicy, trustManager: truststore.trustManager });
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
      await this.buildVersion(manager, truststore, 'updated', now, actor);
    });
    return this.get(name);
  }

  /**
   * Recomputes a truststore's content and stores a new version when its digest differs from the
   * current one. Safe to call from any replica at any time.
   */
  async rebuild(truststoreId: string, trigger: string, now = new Date()): Promise<TruststoreVersionEntity | undefined> {
    const current = await this.repository.byId(truststoreId);
    if (!current) return undefined;
    await this.prepare(current.caIds);
    return this.dataSource.transaction(async (manager) => {
      const truststore = await this.repository.lockForNewVersion(manager, truststoreId);
      if (!truststore) return undefined;
      return this.buildVersion(manager, truststore, trigger, now);
    });
  }

  /** Rebuilds every truststore; returns the versions created. One failure does not stop the others. */
  async rebuildAll(trigger: string, now = new Date()): Promise<TruststoreVersionEntity[]> {
    const truststores = await this.repository.allIdsAndNames();
    const created: TruststoreVersionEntity[] = [];
    for (const { id, name } of truststores) {
      try {
        const version = await this.rebuild(id, trigger, now);
        if (version) created.push(version);
      } catch (error) {
        this.logger.error(`rebuilding truststore ${name} failed: ${(error as Error).message}`);
      }
    }
    return created;
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

  /** One format of a version (default: the current one) for `GET …/bundle`. */
  async bundle(name: string, format: unknown, version?: number): Promise<{ content: Buffer; spec: LayerSpec; version: number; digest: string; truststore: string }> {
    if (!isBundleFormat(format)) {
      throw new DomainError(ErrorCode.VALIDATION_ERROR, `bundle: 'format' must be one of ${BUNDLE_FORMATS.join(', ')}`, { field: 'format' });
    }
    const truststore = await this.byName(name);
    const rendered = await this.render(truststore.id, version ?? truststore.currentVersion, [format]);
    const layer = rendered.layers[0];
    return { content: layer.content, spec: layer.spec, version: rendered.version, digest: rendered.digest, truststore: truststore.name };
  }

  /** The layers of a version, rendered once per process and version (immutable). */
  async render(truststoreId: string, version: number, kinds: readonly LayerKind[]): Promise<RenderedBundle> {
    const key = `${truststoreId}:${version}`;
    let all = this.rendered.get(key);
    if (!all) {
      all = this.renderAll(truststoreId, version);
      all.catch(() => this.rendered.delete(key));
      this.rendered.set(key, all);
      while (this.rendered.size > RENDER_CACHE_SIZE) this.rendered.delete(this.rendered.keys().next().value!);
    }
    const bundle = await all;
    return { ...bundle, layers: kinds.map((kind) => bundle.layers.find((l) => l.kind === kind)!) };
  }

  private async renderAll(truststoreId: string, version: number): Promise<RenderedBundle> {
    const row = await this.versionOf(truststoreId, version);
    const truststore = await this.byId(truststoreId);
    const content = parseCanonical(row.canonical, row.digest);
    const info: VersionInfo = { version: row.version, digest: row.digest, createdAt: row.createdAt.toISOString() };
    const kinds = Object.keys(LAYERS) as LayerKind[];
    const layers = await Promise.all(kinds.map(async (kind) => ({ kind, spec: LAYERS[kind], content: await renderLayer(kind, content) })));
    return { truststore: truststore.name, version: row.version, digest: row.digest, createdAt: info.createdAt, layers };
  }

  /** The content a truststore would have now, without storing anything. */
  async collect(truststore: Pick<TruststoreEntity, 'name' | 'caIds' | 'trustPolicy'> & Partial<Pick<TruststoreEntity, 'trustManager'>>, now = new Date(), manager: EntityManager = this.dataSource.manager): Promise<TruststoreContent> {
    const cas = await this.cas.byIds(truststore.caIds, manager);
    const caName = new Map(cas.map((ca) => [ca.id, ca.name]));
    // A retired root stays while any unexpired leaf below it still needs it (NOTARY.md).
    const rootGenerations = await this.cas.trustedRootGenerations(manager, truststore.caIds, now);
    const rootIds = rootGenerations.map((g) => g.id);
    const beneath = rootIds.length ? await this.cas.certifiedGenerationsBeneath(manager, rootIds, now) : [];
    const beneathCas = beneath.length ? await this.cas.byIds([...new Set(beneath.map((g) => g.caId))], manager) : [];
    for (const ca of beneathCas) caName.set(ca.id, ca.name);

    const crls: CrlEntry[] = [];
    for (const generation of [...rootGenerations, ...beneath]) {
      if (!generation.crl || !generation.crlThisUpdate || !generation.crlNextUpdate) continue;
      crls.push({
        ca: caName.get(generation.caId) ?? '?',
        generation: generation.name,
        crlNumber: generation.crlNumber,
        thisUpdate: generation.crlThisUpdate.toISOString(),
        nextUpdate: generation.crlNextUpdate.toISOString(),
        der: generation.crl.toString('base64'),
      });
    }

    const issuingCaIds = await this.cas.childIds(truststore.caIds, manager);
    const keys = issuingCaIds.length ? await this.keys.issuedBy(issuingCaIds, manager) : [];

    const tsaRoots = await this.cas.certifiedGenerationsOfKind('tsa-root');
    return {
      format: 'signet-truststore/1',
      name: truststore.name,
      trustPolicy: truststore.trustPolicy,
      roots: rootGenerations.map((g) => certificateEntry(caName.get(g.caId) ?? '?', g.name, g.certificate!)),
      tsaRoots: tsaRoots.map((r) => certificateEntry(r.caName, r.generation.name, r.generation.certificate)),
      crls,
      trustedIdentities: keys.map((key) => notationTrustedIdentity(key.subject)),
      ...(truststore.trustManager ? { trustManager: truststore.trustManager } : {}),
    };
  }

  private async buildVersion(manager: EntityManager, truststore: TruststoreEntity, trigger: string, now: Date, actor?: AuditActor): Promise<TruststoreVersionEntity | undefined> {
    const content = await this.collect(truststore, now, manager);
    const canonical = canonicalize(content);
    const digest = contentDigest(canonical);
    if (digest === truststore.currentDigest) return undefined;

    const previousRow = truststore.currentVersion ? await this.repository.version(truststore.id, truststore.currentVersion, manager) : null;
    const previous = previousRow ? parseCanonical(previousRow.canonical) : undefined;
    const normalized = parseCanonical(canonical);
    const changes = describeChanges(previous, normalized);
    const revokedAt = await this.newlyRevokedAt(manager, previous, normalized);
    const version = truststore.currentVersion + 1;
    const row = await this.repository.insertCurrentVersion(manager, {
      truststoreId: truststore.id,
      version,
      digest,
      canonical,
      rootSha256: normalized.roots.map((r) => r.sha256),
      reason: { trigger, changes },
      revokedAt,
      convergedAt: null,
      createdAt: now,
    });
    truststore.currentVersion = version;
    truststore.currentDigest = digest;
    // Recorded before the version commits: the log may name a version whose commit failed, never the reverse.
    await this.audit.record({
      type: 'truststore.version.created',
      actor,
      subject: truststore.name,
      data: { version, digest, trigger, changes, roots: row.rootSha256, crls: normalized.crls.map((c) => `${c.generation}#${c.crlNumber}`), revokedAt: revokedAt?.toISOString() ?? null },
    });
    await this.events.publish('truststore.version.created', { truststore, version: row, manager });
    this.logger.log(`truststore ${truststore.name}: version ${version} (${digest.slice(0, 19)}…, ${trigger}: ${changes.join('; ') || 'initial'})`);
    return row;
  }

  /**
   * The earliest revocation that this version's CRLs carry and the previous version's did not:
   * revoked after the previous CRL of that generation was built and no later than the new one.
   */
  private async newlyRevokedAt(manager: EntityManager, previous: TruststoreContent | undefined, next: TruststoreContent): Promise<Date | null> {
    let earliest: Date | null = null;
    for (const crl of next.crls) {
      const before = previous?.crls.find((c) => c.generation === crl.generation);
      if (before?.crlNumber === crl.crlNumber) continue;
      const at = await this.certificates.earliestRevocation(manager, crl.generation, { upTo: crl.thisUpdate, after: before?.thisUpdate ?? (previous ? null : crl.thisUpdate) });
      if (at && (!earliest || at < earliest)) earliest = at;
    }
    return earliest;
  }

  private async prepare(caIds: string[]): Promise<void> {
    if (!this.preparers.length || !caIds.length) return;
    const generations = await this.cas.unexpiredGenerationsOfAndBeneath(caIds);
    for (const preparer of this.preparers) {
      try {
        await preparer(generations);
      } catch (error) {
        this.logger.warn(`preparing truststore content failed: ${(error as Error).message}`);
      }
    }
  }

  private async resolveRoots(input: unknown, operation: string): Promise<CaEntity[]> {
    if (!Array.isArray(input) || input.length === 0 || input.length > 32 || input.some((n) => typeof n !== 'string')) {
      throw new DomainError(ErrorCode.VALIDATION_ERROR, `${operation}: 'cas' must be a non-empty list of root CA names`, { field: 'cas' });
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

function describeChanges(previous: TruststoreContent | undefined, next: TruststoreContent): string[] {
  if (!previous) return [];
  const changes: string[] = [];
  const diff = (label: string, before: string[], after: string[]) => {
    const added = after.filter((x) => !before.includes(x));
    const removed = before.filter((x) => !after.includes(x));
    if (added.length) changes.push(`${label} added: ${added.join(', ')}`);
    if (removed.length) changes.push(`${label} removed: ${removed.join(', ')}`);
  };
  diff('roots', previous.roots.map((r) => r.generation), next.roots.map((r) => r.generation));
  diff('TSA roots', previous.tsaRoots.map((r) => r.generation), next.tsaRoots.map((r) => r.generation));
  for (const crl of next.crls) {
    const before = previous.crls.find((c) => c.generation === crl.generation);
    if (!before) changes.push(`CRL of ${crl.generation} added (#${crl.crlNumber})`);
    else if (before.crlNumber !== crl.crlNumber || before.der !== crl.der) changes.push(`CRL of ${crl.generation} #${before.crlNumber} → #${crl.crlNumber}`);
  }
  for (const crl of previous.crls) if (!next.crls.some((c) => c.generation === crl.generation)) changes.push(`CRL of ${crl.generation} removed`);
  diff('trusted identities', previous.trustedIdentities, next.trustedIdentities);
  if (JSON.stringify(previous.trustPolicy) !== JSON.stringify(next.trustPolicy)) changes.push('trust policy changed');
  if (JSON.stringify(previous.trustManager ?? null) !== JSON.stringify(next.trustManager ?? null)) changes.push('trust-manager settings changed');
  return changes;
}
