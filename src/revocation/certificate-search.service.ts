import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { derToPem } from '../pki/pem-codec';
import { normalizeSerialHex } from '../pki/serial-number';
import { DomainError, ErrorCode } from '../common/errors';
import { SearchCertificatesDto } from './dto/search-certificates.dto';

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

interface Row {
  serial: string;
  kind: string;
  subject_dn: string;
  not_before: Date;
  not_after: Date;
  der: Buffer;
  revoked_at: Date | null;
  revocation_reason: string | null;
  invalidity_date: Date | null;
  key_name: string | null;
  key_version: number | null;
  signatures?: Array<{ seq: string; time: string; auditedAs: string | null }>;
}

const LIMIT = 1000;
const SELECT = `SELECT c.serial, c.kind, c.subject_dn, c.not_before, c.not_after, c.der, c.revoked_at, c.revocation_reason, c.invalidity_date,
                       k.name AS key_name, v.version AS key_version`;
const FROM = `FROM certificates c LEFT JOIN key_versions v ON v.id = c.key_version_id LEFT JOIN signing_keys k ON k.id = v.key_id`;

/**
 * GET /v1/certificates: the security team's "find a certificate" by serial, key, subject text, or
 * the artifact it signed ("what did this key sign?" read the other way: which certificates signed
 * this image). The artifact search reads the `sign` rows of the audit log (every signature has
 * one, claimed artifacts included), through the expression index of migration ConsoleSearch.
 */
@Injectable()
export class CertificateSearchService {
  constructor(private readonly dataSource: DataSource) {}

  async search(query: SearchCertificatesDto): Promise<CertificateView[]> {
    const given = (['key', 'serial', 'subject', 'artifact'] as const).filter((name) => query[name] !== undefined);
    if (given.length > 1) throw new DomainError(ErrorCode.VALIDATION_ERROR, `give one of key, serial, subject or artifact, not ${given.join(' and ')}`);
    let rows: Row[];
    if (query.serial !== undefined) {
      rows = await this.dataSource.query(`${SELECT} ${FROM} WHERE c.serial = $1`, [normalizeSerialHex(query.serial)]);
    } else if (query.key !== undefined) {
      rows = await this.dataSource.query(`${SELECT} ${FROM} WHERE k.name = $1 ORDER BY c.not_before, c.serial LIMIT ${LIMIT}`, [query.key]);
      if (rows.length === 0 && (await this.dataSource.query('SELECT 1 FROM signing_keys WHERE name = $1', [query.key])).length === 0) {
        throw new DomainError(ErrorCode.NOT_FOUND, `no key named '${query.key}'`);
      }
    } else if (query.subject !== undefined) {
      const pattern = `%${query.subject.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
      rows = await this.dataSource.query(`${SELECT} ${FROM} WHERE c.subject_dn ILIKE $1 ORDER BY c.created_at DESC LIMIT ${LIMIT}`, [pattern]);
    } else if (query.artifact !== undefined) {
      rows = await this.dataSource.query(
        `WITH signed AS (
           SELECT e.subject AS key_name, (e.data->>'version')::int AS version,
                  json_agg(json_build_object('seq', e.seq::text, 'time', e.time, 'auditedAs', e.data->>'artifactSource') ORDER BY e.seq) AS signatures
             FROM audit_events e
            WHERE e.type = 'sign' AND e.data #>> '{artifact,digest}' = $1
            GROUP BY 1, 2)
         ${SELECT}, s.signatures
           FROM signed s JOIN signing_keys k ON k.name = s.key_name JOIN key_versions v ON v.key_id = k.id AND v.version = s.version
           JOIN certificates c ON c.key_version_id = v.id
          ORDER BY k.name, v.version LIMIT ${LIMIT}`,
        [query.artifact],
      );
    } else {
      rows = await this.dataSource.query(`${SELECT} ${FROM} ORDER BY c.created_at DESC LIMIT ${LIMIT}`);
    }
    return rows.map(view);
  }
}

function view(row: Row): CertificateView {
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
    ...(row.signatures ? { signatures: row.signatures.map((s) => ({ ...s, time: new Date(s.time).toISOString() })) } : {}),
  };
}
