import { Inject, Injectable, Logger } from '@nestjs/common';
import { DataSource, EntityManager } from 'typeorm';
import { AuditService } from '../audit/audit.service';
import type { AuditActor } from '../audit/audit.types';
import { DomainEventBus } from '../common/domain-events';
import { DomainError, ErrorCode } from '../common/errors';
import { isKeySpec, KeySpec } from '../pki/key-spec';
import { SIGNET_CONFIG, SignetConfig } from '../config/config';
import { KEY_MANAGER, type KeyManager } from '../hsm/key-manager';
import type { KeyStore } from '../hsm/key-store';
import { SIGNER_FACTORY, type SignerFactory } from '../hsm/signer-factory';
import { CaEntity, CaKind } from './ca.entity';
import { CaRepository } from './ca.repository';
import { CaGenerationEntity } from './ca-generation.entity';
import { CaEndpointUrls, caGenerationUrls } from '../pki/ca-urls';
import {
  CaIssuer,
  IssuedCertificate,
  issueIssuingCaCertificate,
  issueRootCaCertificate,
  issueTimestampingCertificate,
  issueTsaRootCertificate,
  loadCaIssuer,
} from '../pki/certificate-issuer';
import { validateCertificateChain } from '../pki/certificate-chain-validator';
import { CertificateEntity } from './certificate.entity';
import { CertificatesRepository } from './certificates.repository';
import { createCertificationRequest } from '../pki/certification-request';
import { CertificateProfile } from '../pki/certificate-profiles';
import { derToPem } from '../pki/pem-codec';
import { CertificateSubject, subjectToDn, validateSubject } from '../pki/subject-name';

export interface CreateCaInput {
  name: string;
  kind: CaKind;
  parent?: string;
  keySpec?: KeySpec;
  subject: unknown;
  validityDays?: number;
}

export interface CaGenerationView {
  generation: number;
  name: string;
  state: string;
  serial: string | null;
  notBefore: string | null;
  notAfter: string | null;
  urls: CaEndpointUrls;
  certificate: string | null;
}

export interface CaView {
  name: string;
  kind: CaKind;
  parent: string | null;
  keySpec: KeySpec;
  subject: CertificateSubject;
  validityDays: number;
  external: boolean;
  createdAt: string;
  generations: CaGenerationView[];
}

/** CA events, all published inside the changing transaction (a failing subscriber rolls it back). */
declare module '../common/domain-events' {
  interface DomainEvents {
    'ca.created': { ca: CaEntity; generation: CaGenerationEntity; manager: EntityManager };
    'certificate.issued': { certificate: CertificateEntity; manager: EntityManager };
    /**
     * A renewal (rollover) stored a new key generation of an existing CA with its certificate, still
     * `pending`: for a root, truststores add it now, before it or anything under it issues.
     */
    'ca.generation.created': { ca: CaEntity; generation: CaGenerationEntity; manager: EntityManager };
    /** A renewed generation became the one that issues; the previous one is `retired` (still serving CRL/OCSP). */
    'ca.generation.activated': { ca: CaEntity; generation: CaGenerationEntity; previous: CaGenerationEntity | null; manager: EntityManager };
  }
}

const CA_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;
/** key_uri of a generation whose key is not in our HSM (an offline root). */
export const EXTERNAL_KEY_URI = 'external:';
// A TSA signing certificate is a leaf: 460 days at most (NOTARY.md), like code-signing leaves.
const DEFAULT_VALIDITY_DAYS: Record<CaKind, number> = { root: 3650, issuing: 1825, 'tsa-root': 3650, tsa: 460 };
const PROFILE_OF: Record<CaKind, CertificateProfile> = { root: 'root-ca', issuing: 'issuing-ca', 'tsa-root': 'tsa-root', tsa: 'timestamping' };

/**
 * The CA hierarchy with keys in the HSM: roots, issuing CAs under them, and their key generations.
 * It hands out `CaIssuer`s (certificate + HSM-backed signer + URLs) to whoever issues; the pure
 * X.509 code never sees PKCS#11.
 */
@Injectable()
export class CaService {
  private readonly logger = new Logger(CaService.name);
  /** Per generation id; a generation's certificate and key never change, so this never goes stale. */
  private readonly issuers = new Map<string, Promise<CaIssuer>>();

  constructor(
    private readonly dataSource: DataSource,
    @Inject(KEY_MANAGER) private readonly hsmKeys: KeyManager,
    @Inject(SIGNER_FACTORY) private readonly signers: SignerFactory,
    @Inject(SIGNET_CONFIG) private readonly config: SignetConfig,
    private readonly repository: CaRepository,
    private readonly certificates: CertificatesRepository,
    private readonly audit: AuditService,
    private readonly events: DomainEventBus,
  ) {}

  urlsFor(generationName: string): CaEndpointUrls {
    return caGenerationUrls(this.config.publicUrl, generationName);
  }

  async create(input: CreateCaInput, actor?: AuditActor): Promise<CaView> {
    const operation = 'createCa';
    if (typeof input.name !== 'string' || !CA_NAME.test(input.name)) {
      throw new DomainError(ErrorCode.VALIDATION_ERROR, `${operation}: 'name' must match ${CA_NAME.source}`, { field: 'name' });
    }
    if (!(['root', 'issuing', 'tsa-root', 'tsa'] as const).includes(input.kind)) {
      throw new DomainError(ErrorCode.VALIDATION_ERROR, `${operation}: 'kind' must be root, issuing, tsa-root or tsa`, { field: 'kind' });
    }
    const keySpec = input.keySpec ?? 'EC-384';
    if (!isKeySpec(keySpec)) throw new DomainError(ErrorCode.VALIDATION_ERROR, `${operation}: 'keySpec' is not a supported key spec`, { field: 'keySpec' });
    const subject = validateSubject(input.subject, operation);
    const validityDays = input.validityDays ?? DEFAULT_VALIDITY_DAYS[input.kind];
    if (!Number.isInteger(validityDays) || validityDays < 1 || validityDays > 36500) {
      throw new DomainError(ErrorCode.VALIDATION_ERROR, `${operation}: 'validityDays' must be a whole number of days (1..36500)`, { field: 'validityDays' });
    }
    if (await this.repository.nameTaken(input.name)) {
      throw new DomainError(ErrorCode.ALREADY_EXISTS, `${operation}: a CA named '${input.name}' already exists`, { field: 'name' });
    }

    const selfSigned = input.kind === 'root' || input.kind === 'tsa-root';
    let parent: { ca: CaEntity; generation: CaGenerationEntity; issuer: CaIssuer } | undefined;
    if (selfSigned) {
      if (input.parent) throw new DomainError(ErrorCode.VALIDATION_ERROR, `${operation}: a ${input.kind} CA has no 'parent'`, { field: 'parent' });
    } else {
      if (!input.parent) throw new DomainError(ErrorCode.VALIDATION_ERROR, `${operation}: 'parent' is required for a ${input.kind} CA`, { field: 'parent' });
      const parentCa = await this.repository.byName(input.parent);
      if (!parentCa) throw new DomainError(ErrorCode.NOT_FOUND, `${operation}: no CA named '${input.parent}'`, { field: 'parent' });
      const expectedParent = input.kind === 'issuing' ? 'root' : 'tsa-root';
      if (parentCa.kind !== expectedParent) {
        throw new DomainError(ErrorCode.VALIDATION_ERROR, `${operation}: the parent of a ${input.kind} CA must be a ${expectedParent} CA`, { field: 'parent' });
      }
      const generation = await this.activeGeneration(parentCa.id);
      parent = { ca: parentCa, generation, issuer: await this.issuerFor(generation) };
    }

    const generationName = `${input.name}-g1`;
    const key = await this.hsmKeys.createKey({ spec: keySpec, label: `ca:${generationName}`, role: 'ca' });
    try {
      const signer = await this.signers.getSigner(key.uri);
      const issued = await this.issueCaCertificate(input.kind, { signer, subject, validityDays, parent: parent?.issuer });
      return await this.dataSource.transaction(async (manager) => {
        const ca = await this.repository.insertCa(manager, { name: input.name, kind: input.kind, parentId: parent?.ca.id ?? null, keySpec, subject, validityDays, external: false });
        const generation = await this.repository.insertGeneration(manager, {
          caId: ca.id,
          generation: 1,
          name: generationName,
          state: 'active',
          keyUri: key.uri,
          certificate: issued.der,
          csr: null,
          chain: parent ? [parent.issuer.certificate, ...parent.generation.chain] : [],
          serial: issued.serialHex,
          parentGenerationId: parent?.generation.id ?? null,
          notBefore: issued.notBefore,
          notAfter: issued.notAfter,
          crlNumber: '0',
        });
        const certificate = await this.recordCertificate(manager, issued, { issuerGenerationId: parent?.generation.id ?? null, caGenerationId: generation.id });
        // Recorded before the CA's own commit: the log may name a CA whose commit then failed,
        // never the other way round.
        await this.audit.record({
          type: 'ca.created',
          actor,
          subject: input.name,
          data: { kind: input.kind, keySpec, parent: input.parent ?? null, generation: generationName, serial: issued.serialHex, subject: issued.subjectDn, notBefore: issued.notBefore.toISOString(), notAfter: issued.notAfter.toISOString(), keyUri: key.uri },
        });
        await this.events.publish('ca.created', { ca, generation, manager });
        await this.events.publish('certificate.issued', { certificate, manager });
        this.logger.log(`created ${input.kind} CA ${input.name} (${keySpec}, generation ${generationName})`);
        return this.view(ca, [generation]);
      });
    } catch (error) {
      // Nothing half-written: the HSM key of a CA that was not stored is destroyed again.
      await this.hsmKeys.destroyKey(key.uri).catch((e) => this.logger.error(`could not destroy orphan CA key ${key.uri}: ${(e as Error).message}`));
      throw error;
    }
  }

  /**
   * Offline-root mode (`signet init --offline-root`): only the issuing CA's HSM key and a CSR are
   * created here; the root that signs it lives elsewhere. The generation stays pending (issues
   * nothing) until `importChain` accepts the chain signed by that root.
   */
  async createExternalIssuing(input: { name: string; keySpec?: KeySpec; subject: unknown; validityDays?: number }, actor?: AuditActor): Promise<{ ca: CaView; csr: string }> {
    const operation = 'createExternalIssuingCa';
    if (typeof input.name !== 'string' || !CA_NAME.test(input.name)) {
      throw new DomainError(ErrorCode.VALIDATION_ERROR, `${operation}: 'name' must match ${CA_NAME.source}`, { field: 'name' });
    }
    const keySpec = input.keySpec ?? 'EC-384';
    if (!isKeySpec(keySpec)) throw new DomainError(ErrorCode.VALIDATION_ERROR, `${operation}: 'keySpec' is not a supported key spec`, { field: 'keySpec' });
    const subject = validateSubject(input.subject, operation);
    if (await this.repository.nameTaken(input.name)) {
      throw new DomainError(ErrorCode.ALREADY_EXISTS, `${operation}: a CA named '${input.name}' already exists`, { field: 'name' });
    }
    const generationName = `${input.name}-g1`;
    const key = await this.hsmKeys.createKey({ spec: keySpec, label: `ca:${generationName}`, role: 'ca' });
    try {
      const signer = await this.signers.getSigner(key.uri);
      const csr = await createCertificationRequest({ signer, subject, profile: 'issuing-ca' });
      return await this.dataSource.transaction(async (manager) => {
        const ca = await this.repository.insertCa(manager, { name: input.name, kind: 'issuing', parentId: null, keySpec, subject, validityDays: input.validityDays ?? DEFAULT_VALIDITY_DAYS.issuing, external: true });
        const generation = await this.repository.insertGeneration(manager, {
          caId: ca.id, generation: 1, name: generationName, state: 'pending', keyUri: key.uri, certificate: null, csr: csr.der, chain: [],
          serial: null, parentGenerationId: null, notBefore: null, notAfter: null, crlNumber: '0',
        });
        await this.audit.record({ type: 'ca.csr.created', actor, subject: input.name, data: { kind: 'issuing', keySpec, generation: generationName, keyUri: key.uri, offlineRoot: true } });
        return { ca: await this.view(ca, [generation]), csr: csr.pem };
      });
    } catch (error) {
      await this.hsmKeys.destroyKey(key.uri).catch((e) => this.logger.error(`could not destroy orphan CA key ${key.uri}: ${(e as Error).message}`));
      throw error;
    }
  }

  async csrPem(name: string): Promise<string> {
    const ca = await this.byName(name);
    const generation = await this.repository.latestGeneration(ca.id);
    if (!generation?.csr) throw new DomainError(ErrorCode.CONFLICT, `CA '${name}' has no CSR (its certificate was issued by Signet)`);
    return derToPem(generation.csr, 'CERTIFICATE REQUEST');
  }

  /**
   * Accepts the chain an offline root signed for a pending issuing CA generation: it must certify
   * our HSM key with the issuing-CA profile and verify up to a self-signed root. The root is kept
   * as an external root CA (no key here: its CRL comes from its operator) so truststores carry it.
   */
  async importChain(name: string, chain: unknown, actor?: AuditActor, now = new Date()): Promise<CaView> {
    const operation = 'importCaChain';
    if (!Array.isArray(chain) || chain.length < 2 || chain.length > 8 || !chain.every((pem) => typeof pem === 'string' && pem.length < 65536)) {
      throw new DomainError(ErrorCode.VALIDATION_ERROR, `${operation}: 'chain' must be 2..8 PEM certificates, issuing CA first, root last`, { field: 'chain' });
    }
    const ca = await this.byName(name);
    const generation = await this.repository.latestGeneration(ca.id, { pending: true });
    if (!ca.external || !generation) throw new DomainError(ErrorCode.CONFLICT, `${operation}: CA '${name}' has no pending generation awaiting a chain`);
    const publicKey = await this.hsmKeys.getPublicKey(generation.keyUri);
    const validated = validateCertificateChain({ chain: chain as string[], expectedPublicKeySpki: publicKey, leafProfile: 'issuing-ca', now });
    const [certificate, ...above] = validated.certificates;
    const rootDer = above[above.length - 1];
    await this.dataSource.transaction(async (manager) => {
      const rootName = `${name}-root`;
      let root = await this.repository.byName(rootName, manager);
      let rootGeneration: CaGenerationEntity | null = null;
      if (!root) {
        root = await this.repository.insertCa(manager, { name: rootName, kind: 'root', parentId: null, keySpec: ca.keySpec, subject: ca.subject, validityDays: Math.ceil((validated.root.notAfter.getTime() - validated.root.notBefore.getTime()) / 86_400_000), external: true });
        rootGeneration = await this.repository.insertGeneration(manager, {
          caId: root.id, generation: 1, name: `${rootName}-g1`, state: 'active', keyUri: EXTERNAL_KEY_URI, certificate: rootDer, csr: null, chain: [],
          serial: validated.root.serialHex, parentGenerationId: null, notBefore: validated.root.notBefore, notAfter: validated.root.notAfter, crlNumber: '0',
        });
      } else {
        rootGeneration = await this.repository.activeGeneration(root.id, manager);
      }
      await this.repository.setParent(manager, ca.id, root.id);
      await this.repository.activateImportedGeneration(manager, generation.id, {
        certificate, chain: above, serial: validated.leaf.serialHex, parentGenerationId: rootGeneration?.id ?? null,
        notBefore: validated.leaf.notBefore, notAfter: validated.leaf.notAfter,
      });
      await this.audit.record({ type: 'ca.chain.imported', actor, subject: name, data: { generation: generation.name, serial: validated.leaf.serialHex, notAfter: validated.leaf.notAfter.toISOString(), rootSha256: validated.root.sha256Fingerprint } });
    });
    this.logger.log(`CA ${name}: chain from an offline root imported; generation ${generation.name} active`);
    return this.get(name);
  }

  private issueCaCertificate(
    kind: CaKind,
    params: { signer: Awaited<ReturnType<KeyStore['getSigner']>>; subject: CertificateSubject; validityDays: number; parent?: CaIssuer },
  ): Promise<IssuedCertificate> {
    switch (kind) {
      case 'root':
        return issueRootCaCertificate({ signer: params.signer, subject: params.subject, validityDays: params.validityDays });
      case 'tsa-root':
        return issueTsaRootCertificate({ signer: params.signer, subject: params.subject, validityDays: params.validityDays });
      case 'issuing':
        return issueIssuingCaCertificate({ issuer: params.parent!, subject: params.subject, publicKeySpki: params.signer.publicKeySpki, validityDays: params.validityDays });
      case 'tsa':
        return issueTimestampingCertificate({ issuer: params.parent!, subject: params.subject, publicKeySpki: params.signer.publicKeySpki, validityDays: params.validityDays });
    }
  }

  /**
   * Stores an issued certificate; its status drives CRLs and OCSP. A serial that is already
   * stored is refused (unique violation), never overwritten.
   */
  async recordCertificate(
    manager: EntityManager,
    issued: IssuedCertificate,
    links: { issuerGenerationId: string | null; caGenerationId?: string | null; keyVersionId?: string | null },
  ): Promise<CertificateEntity> {
    return this.certificates.insert(manager, {
      serial: issued.serialHex,
      kind: issued.profile,
      issuerGenerationId: links.issuerGenerationId,
      caGenerationId: links.caGenerationId ?? null,
      keyVersionId: links.keyVersionId ?? null,
      subjectDn: issued.subjectDn,
      notBefore: issued.notBefore,
      notAfter: issued.notAfter,
      der: issued.der,
      revokedAt: null,
      revocationReason: null,
      invalidityDate: null,
    });
  }

  async notifyCertificateIssued(certificate: CertificateEntity, manager: EntityManager): Promise<void> {
    await this.events.publish('certificate.issued', { certificate, manager });
  }

  async notifyGenerationCreated(ca: CaEntity, generation: CaGenerationEntity, manager: EntityManager): Promise<void> {
    await this.events.publish('ca.generation.created', { ca, generation, manager });
  }

  async notifyGenerationActivated(ca: CaEntity, generation: CaGenerationEntity, previous: CaGenerationEntity | null, manager: EntityManager): Promise<void> {
    await this.events.publish('ca.generation.activated', { ca, generation, previous, manager });
  }

  async list(): Promise<CaView[]> {
    const cas = await this.repository.all();
    const generations = await this.repository.allGenerations();
    return Promise.all(cas.map((ca) => this.view(ca, generations.filter((g) => g.caId === ca.id))));
  }

  async get(name: string): Promise<CaView> {
    const ca = await this.byName(name);
    const generations = await this.repository.generationsOf(ca.id);
    return this.view(ca, generations);
  }

  async byName(name: string): Promise<CaEntity> {
    const ca = typeof name === 'string' ? await this.repository.byName(name) : null;
    if (!ca) throw new DomainError(ErrorCode.NOT_FOUND, `no CA named '${name}'`);
    return ca;
  }

  async byId(id: string): Promise<CaEntity> {
    const ca = await this.repository.byId(id);
    if (!ca) throw new DomainError(ErrorCode.NOT_FOUND, `no CA with id ${id}`);
    return ca;
  }

  /** The generation that issues now. 409 when the CA has none (e.g. offline root not imported). */
  async activeGeneration(caId: string): Promise<CaGenerationEntity> {
    const generation = await this.repository.activeGeneration(caId);
    if (!generation || !generation.certificate) throw new DomainError(ErrorCode.CONFLICT, 'the CA has no active key generation with a certificate');
    return generation;
  }

  async generationByName(name: string): Promise<CaGenerationEntity> {
    const generation = await this.repository.generationByName(name);
    if (!generation) throw new DomainError(ErrorCode.NOT_FOUND, `no CA key generation named '${name}'`);
    return generation;
  }

  async generationById(id: string): Promise<CaGenerationEntity> {
    const generation = await this.repository.generationById(id);
    if (!generation) throw new DomainError(ErrorCode.NOT_FOUND, `no CA key generation with id ${id}`);
    return generation;
  }

  /** Certificate + HSM signer + URLs of a generation, cached per generation. */
  issuerFor(generation: CaGenerationEntity): Promise<CaIssuer> {
    let issuer = this.issuers.get(generation.id);
    if (!issuer) {
      if (!generation.certificate) throw new DomainError(ErrorCode.CONFLICT, `CA key generation ${generation.name} has no certificate yet`);
      const certificate = generation.certificate;
      issuer = this.signers.getSigner(generation.keyUri).then((signer) => loadCaIssuer({ certificate, signer, urls: this.urlsFor(generation.name) }));
      issuer.catch(() => this.issuers.delete(generation.id));
      this.issuers.set(generation.id, issuer);
    }
    return issuer;
  }

  private async view(ca: CaEntity, generations: CaGenerationEntity[]): Promise<CaView> {
    const parent = ca.parentId ? (await this.byId(ca.parentId)).name : null;
    return {
      name: ca.name,
      kind: ca.kind,
      parent,
      keySpec: ca.keySpec,
      subject: ca.subject,
      validityDays: ca.validityDays,
      external: ca.external,
      createdAt: ca.createdAt.toISOString(),
      generations: generations.map((g) => ({
        generation: g.generation,
        name: g.name,
        state: g.state,
        serial: g.serial,
        notBefore: g.notBefore?.toISOString() ?? null,
        notAfter: g.notAfter?.toISOString() ?? null,
        urls: this.urlsFor(g.name),
        certificate: g.certificate ? derToPem(g.certificate, 'CERTIFICATE') : null,
      })),
    };
  }

  /** Profile of certificates a CA of this kind holds. */
  static profileOf(kind: CaKind): CertificateProfile {
    return PROFILE_OF[kind];
  }

  static subjectDn(subject: CertificateSubject): string {
    return subjectToDn(subject);
  }
}
