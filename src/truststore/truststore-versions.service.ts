import { Injectable, Logger } from '@nestjs/common';
import { DataSource, EntityManager } from 'typeorm';
import { AuditService } from '../audit/audit.service';
import type { AuditActor } from '../audit/audit.types';
import { CaRepository } from '../ca/ca.repository';
import { CertificatesRepository } from '../ca/certificates.repository';
import { CaGenerationEntity } from '../ca/ca-generation.entity';
import { notationTrustedIdentity } from '../pki';
import { DomainEventBus } from '../common/domain-events';
import { KeysRepository } from '../keys/keys.repository';
import { TruststoreEntity } from './truststore.entity';
import { TruststoreRepository } from './truststore.repository';
import { TruststoreVersionEntity } from './truststore-version.entity';
import {
  canonicalize,
  certificateEntry,
  contentDigest,
  CrlEntry,
  parseCanonical,
  TruststoreContent,
} from './truststore-content';

declare module '../common/domain-events' {
  interface DomainEvents {
    /** Inside the transaction that stores the version (a failing subscriber rolls it back). */
    'truststore.version.created': {
      truststore: TruststoreEntity;
      version: TruststoreVersionEntity;
      manager: EntityManager;
    };
  }
}

/** Runs before content is collected, for the CA generations it will draw on (e.g. build missing CRLs). */
export type ContentPreparer = (generations: CaGenerationEntity[]) => Promise<void>;

/**
 * A truststore's versions. A version holds every usable key generation of the selected roots
 * (expired ones drop out; a retired one stays while unexpired leaves remain under it, so old and new
 * roots coexist through a rollover), the current CRLs of those generations and of the CA
 * generations beneath them, the TSA roots, and the Notation trusted identities of the keys issued
 * under the roots. A new version is stored, audited and published only when the canonical
 * content's digest changes; replicas serialise on the truststore row.
 */
@Injectable()
export class TruststoreVersionsService {
  /** Logs under TruststoreService's context, where operators already look for new versions. */
  private readonly logger = new Logger('TruststoreService');
  private readonly preparers: ContentPreparer[] = [];

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

  /** The content a truststore would have now, without storing anything. */
  async collect(
    truststore: Pick<TruststoreEntity, 'name' | 'caIds' | 'trustPolicy'> &
      Partial<Pick<TruststoreEntity, 'trustManager'>>,
    now = new Date(),
    manager: EntityManager = this.dataSource.manager,
  ): Promise<TruststoreContent> {
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

  /**
   * Stores the next version when the content changed. Call in a transaction holding the
   * truststore's row (TruststoreRepository.lockForNewVersion, or the insert that created it).
   */
  async buildVersion(
    manager: EntityManager,
    truststore: TruststoreEntity,
    trigger: string,
    now: Date,
    actor?: AuditActor,
  ): Promise<TruststoreVersionEntity | undefined> {
    const content = await this.collect(truststore, now, manager);
    const canonical = canonicalize(content);
    const digest = contentDigest(canonical);
    if (digest === truststore.currentDigest) return undefined;

    const previousRow = truststore.currentVersion
      ? await this.repository.version(truststore.id, truststore.currentVersion, manager)
      : null;
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
      data: {
        version,
        digest,
        trigger,
        changes,
        roots: row.rootSha256,
        crls: normalized.crls.map((c) => `${c.generation}#${c.crlNumber}`),
        revokedAt: revokedAt?.toISOString() ?? null,
      },
    });
    await this.events.publish('truststore.version.created', { truststore, version: row, manager });
    this.logger.log(
      `truststore ${truststore.name}: version ${version} (${digest.slice(0, 19)}…, ${trigger}: ${changes.join('; ') || 'initial'})`,
    );
    return row;
  }

  /**
   * The earliest revocation that this version's CRLs carry and the previous version's did not:
   * revoked after the previous CRL of that generation was built and no later than the new one.
   */
  private async newlyRevokedAt(
    manager: EntityManager,
    previous: TruststoreContent | undefined,
    next: TruststoreContent,
  ): Promise<Date | null> {
    let earliest: Date | null = null;
    for (const crl of next.crls) {
      const before = previous?.crls.find((c) => c.generation === crl.generation);
      if (before?.crlNumber === crl.crlNumber) continue;
      const at = await this.certificates.earliestRevocation(manager, crl.generation, {
        upTo: crl.thisUpdate,
        after: before?.thisUpdate ?? (previous ? null : crl.thisUpdate),
      });
      if (at && (!earliest || at < earliest)) earliest = at;
    }
    return earliest;
  }

  /** Runs the preparers for the roots' generations and those beneath; call outside the version's transaction. */
  async prepare(caIds: string[]): Promise<void> {
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
  diff(
    'roots',
    previous.roots.map((r) => r.generation),
    next.roots.map((r) => r.generation),
  );
  diff(
    'TSA roots',
    previous.tsaRoots.map((r) => r.generation),
    next.tsaRoots.map((r) => r.generation),
  );
  for (const crl of next.crls) {
    const before = previous.crls.find((c) => c.generation === crl.generation);
    if (!before) changes.push(`CRL of ${crl.generation} added (#${crl.crlNumber})`);
    else if (before.crlNumber !== crl.crlNumber || before.der !== crl.der)
      changes.push(`CRL of ${crl.generation} #${before.crlNumber} → #${crl.crlNumber}`);
  }
  for (const crl of previous.crls)
    if (!next.crls.some((c) => c.generation === crl.generation)) changes.push(`CRL of ${crl.generation} removed`);
  diff('trusted identities', previous.trustedIdentities, next.trustedIdentities);
  if (JSON.stringify(previous.trustPolicy) !== JSON.stringify(next.trustPolicy)) changes.push('trust policy changed');
  if (JSON.stringify(previous.trustManager ?? null) !== JSON.stringify(next.trustManager ?? null))
    changes.push('trust-manager settings changed');
  return changes;
}
