import { Inject, Injectable } from '@nestjs/common';
import { EntityManager } from 'typeorm';
import { DomainEventBus } from '../common/domain-events';
import { DomainError, ErrorCode } from '../common/errors';
import { KeySpec } from '../pki/key-spec';
import { SIGNET_CONFIG, SignetConfig } from '../config/config';
import { CaKeys } from './ca-keys';
import { CaEntity, CaKind } from './ca.entity';
import { CaRepository } from './ca.repository';
import { CaGenerationEntity } from './ca-generation.entity';
import {
  CaEndpointUrls,
  caGenerationUrls,
  CaIssuer,
  CertificateProfile,
  CertificateSubject,
  derToPem,
  IssuedCertificate,
  loadCaIssuer,
  subjectToDn,
} from '../pki';
import { CertificateEntity } from './certificate.entity';
import { CertificatesRepository } from './certificates.repository';

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
    'certificate.issued': { certificate: CertificateEntity; manager: EntityManager };
    /**
     * A renewal (rollover) stored a new key generation of an existing CA with its certificate, still
     * `pending`: for a root, truststores add it now, before it or anything under it issues.
     */
    'ca.generation.created': { ca: CaEntity; generation: CaGenerationEntity; manager: EntityManager };
    /** A renewed generation became the one that issues; the previous one is `retired` (still serving CRL/OCSP). */
    'ca.generation.activated': {
      ca: CaEntity;
      generation: CaGenerationEntity;
      previous: CaGenerationEntity | null;
      manager: EntityManager;
    };
  }
}

/** key_uri of a generation whose key is not in our HSM (an offline root). */
export const EXTERNAL_KEY_URI = 'external:';
const PROFILE_OF: Record<CaKind, CertificateProfile> = {
  root: 'root-ca',
  issuing: 'issuing-ca',
  'tsa-root': 'tsa-root',
  tsa: 'timestamping',
};

/**
 * The CA hierarchy with keys in the HSM: roots, issuing CAs under them, and their key generations.
 * It hands out `CaIssuer`s (certificate + HSM-backed signer + URLs) to whoever issues; the pure
 * X.509 code never sees PKCS#11. It stores the certificates they issue and tells observers; CAs
 * are created by `CaCreationService` (ca-creation.service.ts), which reads and records through here.
 */
@Injectable()
export class CaService {
  /** Per generation id; a generation's certificate and key never change, so this never goes stale. */
  private readonly issuers = new Map<string, Promise<CaIssuer>>();

  constructor(
    private readonly caKeys: CaKeys,
    @Inject(SIGNET_CONFIG) private readonly config: SignetConfig,
    private readonly repository: CaRepository,
    private readonly certificates: CertificatesRepository,
    private readonly events: DomainEventBus,
  ) {}

  urlsFor(generationName: string): CaEndpointUrls {
    return caGenerationUrls(this.config.publicUrl, generationName);
  }

  async csrPem(name: string): Promise<string> {
    const ca = await this.byName(name);
    const generation = await this.repository.latestGeneration(ca.id);
    if (!generation?.csr)
      throw new DomainError(ErrorCode.CONFLICT, `CA '${name}' has no CSR (its certificate was issued by Signet)`);
    return derToPem(generation.csr, 'CERTIFICATE REQUEST');
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

  async notifyGenerationActivated(
    ca: CaEntity,
    generation: CaGenerationEntity,
    previous: CaGenerationEntity | null,
    manager: EntityManager,
  ): Promise<void> {
    await this.events.publish('ca.generation.activated', { ca, generation, previous, manager });
  }

  async list(): Promise<CaView[]> {
    const cas = await this.repository.all();
    const generations = await this.repository.allGenerations();
    return Promise.all(
      cas.map((ca) =>
        this.view(
          ca,
          generations.filter((g) => g.caId === ca.id),
        ),
      ),
    );
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
    if (!generation || !generation.certificate)
      throw new DomainError(ErrorCode.CONFLICT, 'the CA has no active key generation with a certificate');
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
      if (!generation.certificate)
        throw new DomainError(ErrorCode.CONFLICT, `CA key generation ${generation.name} has no certificate yet`);
      const certificate = generation.certificate;
      issuer = this.caKeys
        .signer(generation.keyUri)
        .then((signer) => loadCaIssuer({ certificate, signer, urls: this.urlsFor(generation.name) }));
      issuer.catch(() => this.issuers.delete(generation.id));
      this.issuers.set(generation.id, issuer);
    }
    return issuer;
  }

  /** The API's shape of a CA and the given generations (the parent by name, certificates as PEM). */
  async view(ca: CaEntity, generations: CaGenerationEntity[]): Promise<CaView> {
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
