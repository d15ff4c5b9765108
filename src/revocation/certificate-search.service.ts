import { Injectable } from '@nestjs/common';
import { derToPem, normalizeSerialHex } from '../pki';
import { DomainError, ErrorCode } from '../common/errors';
import { SearchCertificatesDto } from './dto/search-certificates.dto';
import { CertificateSearchRow, RevocationRepository } from './revocation.repository';

export interface CertificateView {
  serial: string;
  kind: string;
  subject: string;
  notBefore: string;
  notAfter: string;
  status: 'good' | 'revoked';
  revokedAt: string | null;
  reason: string | null;
  invalidityDate: string | null;
  certificate: string;
  /** The signing key and version the certificate belongs to (null for CA and TSA certificates). */
  key: string | null;
  keyVersion: number | null;
  /** With `?artifact=`: the signatures of that artifact by this certificate's key version (from the audit log). */
  signatures?: Array<{ seq: string; time: string; auditedAs: string | null }>;
}

/**
 * GET /v1/certificates: the security team's "find a certificate" by serial, key, subject text, or
 * the artifact it signed ("what did this key sign?" read the other way: which certificates signed
 * this image). The artifact search reads the `sign` rows of the audit log (every signature has
 * one, claimed artifacts included), through the expression index of migration ConsoleSearch.
 */
@Injectable()
export class CertificateSearchService {
  constructor(private readonly certificates: RevocationRepository) {}

  async search(query: SearchCertificatesDto): Promise<CertificateView[]> {
    const given = (['key', 'serial', 'subject', 'artifact'] as const).filter((name) => query[name] !== undefined);
    if (given.length > 1)
      throw new DomainError(
        ErrorCode.VALIDATION_ERROR,
        `give one of key, serial, subject or artifact, not ${given.join(' and ')}`,
      );
    let rows: CertificateSearchRow[];
    if (query.serial !== undefined) {
      rows = await this.certificates.certificatesBySerial(normalizeSerialHex(query.serial));
    } else if (query.key !== undefined) {
      rows = await this.certificates.certificatesOfKey(query.key);
      if (rows.length === 0 && !(await this.certificates.keyExists(query.key))) {
        throw new DomainError(ErrorCode.NOT_FOUND, `no key named '${query.key}'`);
      }
    } else if (query.subject !== undefined) {
      rows = await this.certificates.certificatesWithSubject(query.subject);
    } else if (query.artifact !== undefined) {
      rows = await this.certificates.certificatesThatSigned(query.artifact);
    } else {
      rows = await this.certificates.latestCertificates();
    }
    return rows.map(view);
  }
}

function view(row: CertificateSearchRow): CertificateView {
  return {
    serial: row.serial,
    kind: row.kind,
    subject: row.subject_dn,
    notBefore: row.not_before.toISOString(),
    notAfter: row.not_after.toISOString(),
    status: row.revoked_at ? 'revoked' : 'good',
    revokedAt: row.revoked_at?.toISOString() ?? null,
    reason: row.revocation_reason,
    invalidityDate: row.invalidity_date?.toISOString() ?? null,
    certificate: derToPem(row.der, 'CERTIFICATE'),
    key: row.key_name,
    keyVersion: row.key_version,
    ...(row.signatures
      ? { signatures: row.signatures.map((s) => ({ ...s, time: new Date(s.time).toISOString() })) }
      : {}),
  };
}
