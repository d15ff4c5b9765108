import { Injectable, Logger } from '@nestjs/common';
import { DataSource, EntityManager } from 'typeorm';
import { AuditService } from '../audit/audit.service';
import type { AuditActor } from '../audit/audit.types';
import { DomainEventBus } from '../common/domain-events';
import { DomainError, ErrorCode } from '../common/errors';
import { DigestSigner, isKeySpec, KeySpec } from '../pki/key-spec';
import { CaKeys } from './ca-keys';
import { CaEntity, CaKind } from './ca.entity';
import { CaRepository } from './ca.repository';
import { CaService, CaView, EXTERNAL_KEY_URI } from './ca.service';
import { CaGenerationEntity } from './ca-generation.entity';
import { assertPemChainInput } from './pem-chain-input';
import {
  CaIssuer,
  CertificateSubject,
  createCertificationRequest,
  IssuedCertificate,
  issueIssuingCaCertificate,
  issueRootCaCertificate,
  issueTimestampingCertificate,
  issueTsaRootCertificate,
  validateCertificateChain,
  validateSubject,
} from '../pki';

export interface CreateCaInput {
  name: string;
  kind: CaKind;
  parent?: string;
  keySpec?: KeySpec;
  subject: unknown;
  validityDays?: number;
}

/** Published inside the transaction that stores the new CA (a failing subscriber rolls it back). */
declare module '../common/domain-events' {
  interface DomainEvents {
    'ca.created': { ca: CaEntity; generation: CaGenerationEntity; manager: EntityManager };
  }
}

const CA_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;
// A TSA signing certificate is a leaf: 460 days at most (NOTARY.md), like code-signing leaves.
const DEFAULT_VALIDITY_DAYS: Record<CaKind, number> = { root: 3650, issuing: 1825, 'tsa-root': 3650, tsa: 460 };

/**
 * Brings CAs into being: a Signet-signed root, issuing, TSA root or TSA CA with its first key
 * generation, or (offline-root mode) an issuing CA's key and CSR, then the chain its root signed.
 * It publishes `ca.created` itself; everything later (lookups, issuers, certificate rows,
 * `certificate.issued` and the generation events) is `CaService`'s;
 * renewals are the rotation module's (`rotation/ca-rollover.steps.ts`).
 */
@Injectable()
export class CaCreationService {
  // The context these messages were logged under before creation moved out of CaService.
  private readonly logger = new Logger('CaService');

  constructor(
    private readonly dataSource: DataSource,
    private readonly caKeys: CaKeys,
    private readonly cas: CaService,
    private readonly repository: CaRepository,
    private readonly audit: AuditService,
    private readonly events: DomainEventBus,
  ) {}

  async create(input: CreateCaInput, actor?: AuditActor): Promise<CaView> {
    const operation = 'createCa';
    if (typeof input.name !== 'string' || !CA_NAME.test(input.name)) {
      throw new DomainError(ErrorCode.VALIDATION_ERROR, `${operation}: 'name' must match ${CA_NAME.source}`, {
        field: 'name',
      });
    }
    if (!(['root', 'issuing', 'tsa-root', 'tsa'] as const).includes(input.kind)) {
      throw new DomainError(ErrorCode.VALIDATION_ERROR, `${operation}: 'kind' must be root, issuing, tsa-root or tsa`, {
        field: 'kind',
      });
    }
    const keySpec = input.keySpec ?? 'EC-384';
    if (!isKeySpec(keySpec))
      throw new DomainError(ErrorCode.VALIDATION_ERROR, `${operation}: 'keySpec' is not a supported key spec`, {
        field: 'keySpec',
      });
    const subject = validateSubject(input.subject, operation);
    const validityDays = input.validityDays ?? DEFAULT_VALIDITY_DAYS[input.kind];
    if (!Number.isInteger(validityDays) || validityDays < 1 || validityDays > 36500) {
      throw new DomainError(
        ErrorCode.VALIDATION_ERROR,
        `${operation}: 'validityDays' must be a whole number of days (1..36500)`,
        { field: 'validityDays' },
      );
    }
    if (await this.repository.nameTaken(input.name)) {
      throw new DomainError(ErrorCode.ALREADY_EXISTS, `${operation}: a CA named '${input.name}' already exists`, {
        field: 'name',
      });
    }

    const selfSigned = input.kind === 'root' || input.kind === 'tsa-root';
    let parent: { ca: CaEntity; generation: CaGenerationEntity; issuer: CaIssuer } | undefined;
    if (selfSigned) {
      if (input.parent)
        throw new DomainError(ErrorCode.VALIDATION_ERROR, `${operation}: a ${input.kind} CA has no 'parent'`, {
          field: 'parent',
        });
    } else {
      if (!input.parent)
        throw new DomainError(ErrorCode.VALIDATION_ERROR, `${operation}: 'parent' is required for a ${input.kind} CA`, {
          field: 'parent',
        });
      const parentCa = await this.repository.byName(input.parent);
      if (!parentCa)
        throw new DomainError(ErrorCode.NOT_FOUND, `${operation}: no CA named '${input.parent}'`, { field: 'parent' });
      const expectedParent = input.kind === 'issuing' ? 'root' : 'tsa-root';
      if (parentCa.kind !== expectedParent) {
        throw new DomainError(
          ErrorCode.VALIDATION_ERROR,
          `${operation}: the parent of a ${input.kind} CA must be a ${expectedParent} CA`,
          { field: 'parent' },
        );
      }
      const generation = await this.cas.activeGeneration(parentCa.id);
      parent = { ca: parentCa, generation, issuer: await this.cas.issuerFor(generation) };
    }

    const generationName = `${input.name}-g1`;
    const key = await this.caKeys.provision(generationName, keySpec);
    try {
      const { signer } = key;
      const issued = await this.issueCaCertificate(input.kind, {
        signer,
        subject,
        validityDays,
        parent: parent?.issuer,
      });
      return await this.dataSource.transaction(async (manager) => {
        const ca = await this.repository.insertCa(manager, {
          name: input.name,
          kind: input.kind,
          parentId: parent?.ca.id ?? null,
          keySpec,
          subject,
          validityDays,
          external: false,
        });
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
        const certificate = await this.cas.recordCertificate(manager, issued, {
          issuerGenerationId: parent?.generation.id ?? null,
          caGenerationId: generation.id,
        });
        // Recorded before the CA's own commit: the log may name a CA whose commit then failed,
        // never the other way round.
        await this.audit.record({
          type: 'ca.created',
          actor,
          subject: input.name,
          data: {
            kind: input.kind,
            keySpec,
            parent: input.parent ?? null,
            generation: generationName,
            serial: issued.serialHex,
            subject: issued.subjectDn,
            notBefore: issued.notBefore.toISOString(),
            notAfter: issued.notAfter.toISOString(),
            keyUri: key.uri,
          },
        });
        await this.events.publish('ca.created', { ca, generation, manager });
        await this.cas.notifyCertificateIssued(certificate, manager);
        this.logger.log(`created ${input.kind} CA ${input.name} (${keySpec}, generation ${generationName})`);
        return this.cas.view(ca, [generation]);
      });
    } catch (error) {
      // Nothing half-written: the HSM key of a CA that was not stored is destroyed again.
      await this.caKeys.discard(key.uri);
      throw error;
    }
  }

  /**
   * Offline-root mode (`signet init --offline-root`): only the issuing CA's HSM key and a CSR are
   * created here; the root that signs it lives elsewhere. The generation stays pending (issues
   * nothing) until `importChain` accepts the chain signed by that root.
   */
  async createExternalIssuing(
    input: { name: string; keySpec?: KeySpec; subject: unknown; validityDays?: number },
    actor?: AuditActor,
  ): Promise<{ ca: CaView; csr: string }> {
    const operation = 'createExternalIssuingCa';
    if (typeof input.name !== 'string' || !CA_NAME.test(input.name)) {
      throw new DomainError(ErrorCode.VALIDATION_ERROR, `${operation}: 'name' must match ${CA_NAME.source}`, {
        field: 'name',
      });
    }
    const keySpec = input.keySpec ?? 'EC-384';
    if (!isKeySpec(keySpec))
      throw new DomainError(ErrorCode.VALIDATION_ERROR, `${operation}: 'keySpec' is not a supported key spec`, {
        field: 'keySpec',
      });
    const subject = validateSubject(input.subject, operation);
    if (await this.repository.nameTaken(input.name)) {
      throw new DomainError(ErrorCode.ALREADY_EXISTS, `${operation}: a CA named '${input.name}' already exists`, {
        field: 'name',
      });
    }
    const generationName = `${input.name}-g1`;
    const key = await this.caKeys.provision(generationName, keySpec);
    try {
      const { signer } = key;
      const csr = await createCertificationRequest({ signer, subject, profile: 'issuing-ca' });
      return await this.dataSource.transaction(async (manager) => {
        const ca = await this.repository.insertCa(manager, {
          name: input.name,
          kind: 'issuing',
          parentId: null,
          keySpec,
          subject,
          validityDays: input.validityDays ?? DEFAULT_VALIDITY_DAYS.issuing,
          external: true,
        });
        const generation = await this.repository.insertGeneration(manager, {
          caId: ca.id,
          generation: 1,
          name: generationName,
          state: 'pending',
          keyUri: key.uri,
          certificate: null,
          csr: csr.der,
          chain: [],
          serial: null,
          parentGenerationId: null,
          notBefore: null,
          notAfter: null,
          crlNumber: '0',
        });
        await this.audit.record({
          type: 'ca.csr.created',
          actor,
          subject: input.name,
          data: { kind: 'issuing', keySpec, generation: generationName, keyUri: key.uri, offlineRoot: true },
        });
        return { ca: await this.cas.view(ca, [generation]), csr: csr.pem };
      });
    } catch (error) {
      await this.caKeys.discard(key.uri);
      throw error;
    }
  }

  /**
   * Accepts the chain an offline root signed for a pending issuing CA generation: it must certify
   * our HSM key with the issuing-CA profile and verify up to a self-signed root. The root is kept
   * as an external root CA (no key here: its CRL comes from its operator) so truststores carry it.
   */
  async importChain(name: string, chain: unknown, actor?: AuditActor, now = new Date()): Promise<CaView> {
    const operation = 'importCaChain';
    assertPemChainInput(chain, operation, 'issuing CA first, root last');
    const ca = await this.cas.byName(name);
    const generation = await this.repository.latestGeneration(ca.id, { pending: true });
    if (!ca.external || !generation)
      throw new DomainError(
        ErrorCode.CONFLICT,
        `${operation}: CA '${name}' has no pending generation awaiting a chain`,
      );
    const publicKey = await this.caKeys.publicKey(generation.keyUri);
    const validated = validateCertificateChain({
      chain,
      expectedPublicKeySpki: publicKey,
      leafProfile: 'issuing-ca',
      now,
    });
    const [certificate, ...above] = validated.certificates;
    const rootDer = above[above.length - 1];
    await this.dataSource.transaction(async (manager) => {
      const rootName = `${name}-root`;
      let root = await this.repository.byName(rootName, manager);
      let rootGeneration: CaGenerationEntity | null = null;
      if (!root) {
        root = await this.repository.insertCa(manager, {
          name: rootName,
          kind: 'root',
          parentId: null,
          keySpec: ca.keySpec,
          subject: ca.subject,
          validityDays: Math.ceil(
            (validated.root.notAfter.getTime() - validated.root.notBefore.getTime()) / 86_400_000,
          ),
          external: true,
        });
        rootGeneration = await this.repository.insertGeneration(manager, {
          caId: root.id,
          generation: 1,
          name: `${rootName}-g1`,
          state: 'active',
          keyUri: EXTERNAL_KEY_URI,
          certificate: rootDer,
          csr: null,
          chain: [],
          serial: validated.root.serialHex,
          parentGenerationId: null,
          notBefore: validated.root.notBefore,
          notAfter: validated.root.notAfter,
          crlNumber: '0',
        });
      } else {
        rootGeneration = await this.repository.activeGeneration(root.id, manager);
      }
      await this.repository.setParent(manager, ca.id, root.id);
      await this.repository.activateImportedGeneration(manager, generation.id, {
        certificate,
        chain: above,
        serial: validated.leaf.serialHex,
        parentGenerationId: rootGeneration?.id ?? null,
        notBefore: validated.leaf.notBefore,
        notAfter: validated.leaf.notAfter,
      });
      await this.audit.record({
        type: 'ca.chain.imported',
        actor,
        subject: name,
        data: {
          generation: generation.name,
          serial: validated.leaf.serialHex,
          notAfter: validated.leaf.notAfter.toISOString(),
          rootSha256: validated.root.sha256Fingerprint,
        },
      });
    });
    this.logger.log(`CA ${name}: chain from an offline root imported; generation ${generation.name} active`);
    return this.cas.get(name);
  }

  private issueCaCertificate(
    kind: CaKind,
    params: {
      signer: DigestSigner;
      subject: CertificateSubject;
      validityDays: number;
      parent?: CaIssuer;
    },
  ): Promise<IssuedCertificate> {
    switch (kind) {
      case 'root':
        return issueRootCaCertificate({
          signer: params.signer,
          subject: params.subject,
          validityDays: params.validityDays,
        });
      case 'tsa-root':
        return issueTsaRootCertificate({
          signer: params.signer,
          subject: params.subject,
          validityDays: params.validityDays,
        });
      case 'issuing':
        return issueIssuingCaCertificate({
          issuer: params.parent!,
          subject: params.subject,
          publicKeySpki: params.signer.publicKeySpki,
          validityDays: params.validityDays,
        });
      case 'tsa':
        return issueTimestampingCertificate({
          issuer: params.parent!,
          subject: params.subject,
          publicKeySpki: params.signer.publicKeySpki,
          validityDays: params.validityDays,
        });
    }
  }
}
