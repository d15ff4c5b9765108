import { Inject, Injectable, Logger } from '@nestjs/common';
import { DataSource, EntityManager } from 'typeorm';
import { AuditService } from '../audit/audit.service';
import type { AuditActor } from '../audit/audit.types';
import { CaService } from '../ca/ca.service';
import { createCertificationRequest, issueCodeSigningCertificate, IssuedCertificate } from '../pki';
import { CertificateEntity } from '../ca/certificate.entity';
import { DomainEventBus } from '../common/domain-events';
import { DomainError, ErrorCode } from '../common/errors';
import { KEY_MANAGER, type KeyManager } from '../hsm/key-manager';
import { SIGNER_FACTORY, type SignerFactory } from '../hsm/signer-factory';
import { KeyVersionEntity, KeyVersionState } from './key-version.entity';
import { KeysRepository } from './keys.repository';
import { SigningKeyEntity } from './signing-key.entity';

/** Published inside the transaction that stores the key and its first version (a failing subscriber rolls it back). */
declare module '../common/domain-events' {
  interface DomainEvents {
    'key.created': { key: SigningKeyEntity; version: KeyVersionEntity; manager: EntityManager };
  }
}

const DAY_MS = 86_400_000;

/**
 * How a key version comes to be: its HSM key pair, its code-signing certificate from the key's
 * issuing CA (or, in external-CA mode, a CSR), and the certificate row CRLs and OCSP answer from.
 * `KeysService.create` makes a key's first version here; a rotation (rotation/key-rotation.steps.ts)
 * makes its key pair itself, adoptable after a crash, and takes only the certificate half. It holds
 * only the HSM parts it uses, the key manager and the signer factory, not the whole key store.
 */
@Injectable()
export class KeyVersionsService {
  // The context these messages were logged under before versions moved out of KeysService.
  private readonly logger = new Logger('KeysService');

  constructor(
    private readonly dataSource: DataSource,
    private readonly cas: CaService,
    @Inject(KEY_MANAGER) private readonly hsmKeys: KeyManager,
    @Inject(SIGNER_FACTORY) private readonly signers: SignerFactory,
    private readonly audit: AuditService,
    private readonly repository: KeysRepository,
    private readonly events: DomainEventBus,
  ) {}

  /**
   * A new key with its first version: HSM key pair, then (Signet's CA) its certificate, active at
   * once, or (external CA) a CSR, pending until the chain is imported; the key row, the version and
   * the certificate row in one transaction, audited and published as `key.created`. A failure
   * destroys the new HSM key again. (A rotation makes later versions in
   * rotation/key-rotation.steps.ts and takes only the certificate half, `issueVersionCertificate`.)
   */
  async createKeyWithFirstVersion(
    key: SigningKeyEntity,
    actor: AuditActor | undefined,
  ): Promise<{ key: SigningKeyEntity; version: KeyVersionEntity }> {
    const versionNumber = 1;
    const hsmKey = await this.hsmKeys.createKey({
      spec: key.keySpec,
      label: `${key.name}-v${versionNumber}`,
      role: 'signing',
    });
    try {
      const now = new Date();
      let certificate: IssuedCertificate | undefined;
      let csr: Buffer | null = null;
      let chain: Buffer[] = [];
      let issuerGenerationId: string | null = null;
      if (key.external) {
        const signer = await this.signers.getSigner(hsmKey.uri);
        csr = (await createCertificationRequest({ signer, subject: key.subject, profile: 'code-signing' })).der;
      } else {
        ({ certificate, chain, issuerGenerationId } = await this.issueVersionCertificate(
          key,
          hsmKey.publicKeySpki,
          now,
        ));
      }
      const state: KeyVersionState = key.external ? 'pending' : 'active';
      const result = await this.dataSource.transaction(async (manager) => {
        const savedKey = await this.repository.insertKey(manager, key);
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
        if (certificate)
          await this.recordVersionCertificate(manager, certificate, { issuerGenerationId, keyVersionId: version.id });
        await this.audit.record({
          type: 'key.created',
          actor,
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
            requires: key.requires,
            rotation: key.rotation,
          },
        });
        await this.events.publish('key.created', { key: savedKey, version, manager });
        return { key: savedKey, version };
      });
      this.logger.log(`key ${key.name}: version ${versionNumber} created (${state})`);
      return result;
    } catch (error) {
      await this.hsmKeys
        .destroyKey(hsmKey.uri)
        .catch((e) => this.logger.error(`could not destroy orphan key ${hsmKey.uri}: ${(e as Error).message}`));
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
  ): Promise<{
    certificate: IssuedCertificate;
    chain: Buffer[];
    issuerGenerationId: string;
    issuerGenerationName: string;
  }> {
    if (!key.issuerCaId)
      throw new DomainError(ErrorCode.CONFLICT, `key '${key.name}' has no issuing CA in Signet (external-CA mode)`);
    const generation = await this.cas.activeGeneration(key.issuerCaId);
    const issuer = await this.cas.issuerFor(generation);
    // Never outlive the issuer: an expiring CA breaks every untimestamped signature below it.
    const remainingDays = Math.floor((issuer.notAfter.getTime() - now.getTime()) / DAY_MS);
    const validityDays = Math.min(key.certificateValidityDays, remainingDays);
    if (validityDays < 1)
      throw new DomainError(
        ErrorCode.CONFLICT,
        `the issuing CA generation ${generation.name} expires too soon to issue`,
        { issuerGeneration: generation.name },
      );
    const certificate = await issueCodeSigningCertificate({
      issuer,
      subject: key.subject,
      publicKeySpki,
      validityDays,
      now,
    });
    return {
      certificate,
      chain: [issuer.certificate, ...generation.chain],
      issuerGenerationId: generation.id,
      issuerGenerationName: generation.name,
    };
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
}
