import { Injectable, Logger } from '@nestjs/common';
import { DataSource, EntityManager } from 'typeorm';
import { AuditService } from '../audit/audit.service';
import type { AuditActor } from '../audit/audit.types';
import { CertificateEntity } from '../ca/certificate.entity';
import { isRevocationReason, normalizeSerialHex, REVOCATION_REASONS, RevocationReason } from '../pki';
import { DomainEventBus } from '../common/domain-events';
import { DomainError, ErrorCode } from '../common/errors';
import { CrlService } from './crl.service';
import { RevocationRepository } from './revocation.repository';

export interface RevokeInput {
  reason?: string;
  invalidityDate?: string;
}

export interface RevocationView {
  serial: string;
  kind: string;
  subject: string;
  revokedAt: string;
  reason: RevocationReason;
  invalidityDate: string | null;
  /** False when the certificate was already revoked (the call is idempotent). */
  changed: boolean;
}

declare module '../common/domain-events' {
  interface DomainEvents {
    /** Inside the revoking transaction, before its audit row: a failing subscriber rolls the revocation back. */
    'certificate.revoking': { certificate: CertificateEntity; manager: EntityManager };
    /** After commit (a failing subscriber is logged; the others still run). */
    'certificate.revoked': { certificate: CertificateEntity };
  }
}

/**
 * Revokes a certificate: the key version behind it stops signing at once (same transaction), the
 * issuing generation's CRL is rebuilt (bursts coalesced), OCSP answers change. Revoking twice is
 * idempotent. Retirement never comes through here (NOTARY.md).
 */
@Injectable()
export class RevocationService {
  private readonly logger = new Logger(RevocationService.name);

  constructor(
    private readonly dataSource: DataSource,
    private readonly crls: CrlService,
    private readonly audit: AuditService,
    private readonly certificates: RevocationRepository,
    private readonly events: DomainEventBus,
  ) {}

  async revoke(serialInput: string, input: RevokeInput, actor?: AuditActor, now = new Date()): Promise<RevocationView> {
    const operation = 'revoke';
    const serial = normalizeSerialHex(serialInput);
    const reason = input.reason ?? 'unspecified';
    if (!isRevocationReason(reason)) {
      throw new DomainError(
        ErrorCode.VALIDATION_ERROR,
        `${operation}: 'reason' must be one of ${REVOCATION_REASONS.join(', ')}`,
        { field: 'reason' },
      );
    }
    let invalidityDate: Date | null = null;
    if (input.invalidityDate !== undefined) {
      invalidityDate = new Date(input.invalidityDate);
      if (typeof input.invalidityDate !== 'string' || Number.isNaN(invalidityDate.getTime())) {
        throw new DomainError(
          ErrorCode.VALIDATION_ERROR,
          `${operation}: 'invalidityDate' must be an ISO-8601 date-time`,
          { field: 'invalidityDate' },
        );
      }
      if (invalidityDate.getTime() > now.getTime() + 60_000) {
        throw new DomainError(ErrorCode.VALIDATION_ERROR, `${operation}: 'invalidityDate' is in the future`, {
          field: 'invalidityDate',
        });
      }
    }

    const { certificate, changed } = await this.dataSource.transaction(async (manager) => {
      const certificate = await this.certificates.lockCertificate(manager, serial);
      if (!certificate)
        throw new DomainError(ErrorCode.NOT_FOUND, `${operation}: no certificate with serial ${serial}`, {
          field: 'serial',
        });
      if (certificate.revokedAt) {
        await this.audit.record({
          type: 'certificate.revoked',
          actor,
          subject: serial,
          data: { changed: false, requestedReason: reason, reason: certificate.revocationReason },
        });
        return { certificate, changed: false };
      }
      if (certificate.issuerGenerationId)
        await this.certificates.holdIssuerAgainstCrlBuild(manager, certificate.issuerGenerationId);
      certificate.revokedAt = now;
      certificate.revocationReason = reason;
      certificate.invalidityDate = invalidityDate;
      await this.certificates.markCertificateRevoked(manager, serial, { revokedAt: now, reason, invalidityDate });
      if (certificate.keyVersionId)
        await this.certificates.markKeyVersionRevoked(manager, certificate.keyVersionId, now);
      await this.events.publish('certificate.revoking', { certificate, manager });
      // Recorded before the revocation commits (an audited attempt, never an unaudited revocation).
      await this.audit.record({
        type: 'certificate.revoked',
        actor,
        subject: serial,
        data: {
          changed: true,
          kind: certificate.kind,
          certificateSubject: certificate.subjectDn,
          reason,
          invalidityDate: invalidityDate?.toISOString() ?? null,
          keyVersionId: certificate.keyVersionId,
        },
      });
      return { certificate, changed: true };
    });

    if (changed) {
      this.logger.log(`revoked certificate ${serial} (${certificate.kind}, ${reason})`);
      if (certificate.issuerGenerationId) void this.crls.scheduleRebuild(certificate.issuerGenerationId);
      await this.events.publishEach('certificate.revoked', { certificate }, (error) =>
        this.logger.error(`after-revocation step failed for ${serial}: ${(error as Error).message}`),
      );
    }
    return {
      serial,
      kind: certificate.kind,
      subject: certificate.subjectDn,
      revokedAt: certificate.revokedAt!.toISOString(),
      reason: certificate.revocationReason ?? 'unspecified',
      invalidityDate: certificate.invalidityDate?.toISOString() ?? null,
      changed,
    };
  }

  /** Status for OCSP: by issuer generation and serial. */
  async status(
    issuerGenerationId: string,
    serialHex: string,
  ): Promise<
    | { status: 'good' }
    | { status: 'revoked'; revokedAt: Date; reason?: RevocationReason; invalidityDate?: Date }
    | { status: 'unknown' }
  > {
    const certificate = await this.certificates.revocationStatus(issuerGenerationId, serialHex);
    if (!certificate) return { status: 'unknown' };
    if (!certificate.revokedAt) return { status: 'good' };
    return {
      status: 'revoked',
      revokedAt: certificate.revokedAt,
      reason: certificate.revocationReason ?? undefined,
      invalidityDate: certificate.invalidityDate ?? undefined,
    };
  }
}
